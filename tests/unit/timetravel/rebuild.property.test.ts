import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Immer, enablePatches } from 'immer';
import { digestHex } from '../../../src/lib/digest.js';
import { recomputeDigest } from '../../../src/state/state.js';
import { FIRST_PFN } from '../../../src/state/state.js';
import { stateAt } from '../../../src/timetravel/state-at.js';
import { verifyRebuild } from '../../../src/timetravel/rebuild.js';
import { Cursor } from '../../../src/timetravel/cursor.js';
import { diffStates } from '../../../src/state/diff.js';
import { RunBuilder } from '../../support/recorded-runs.js';

enablePatches();
const immer = new Immer({ autoFreeze: false });

type Kind =
  'process' | 'pages' | 'pin' | 'unpin' | 'store' | 'erase' | 'npinned' | 'heap' | 'free' | 'warn' | 'cow' | 'release';
interface Cmd {
  kind: Kind;
  a: number;
  b: number;
  c: number;
}

const cmd = fc.record({
  kind: fc.constantFrom<Kind>(
    'process',
    'pages',
    'pin',
    'unpin',
    'store',
    'erase',
    'npinned',
    'heap',
    'free',
    'warn',
    'cow',
    'release',
  ),
  a: fc.nat(1000),
  b: fc.nat(1000),
  c: fc.nat(1000),
});

interface Proc {
  mm: number;
  pfn: number;
  npages: number;
}

/** Interpret commands as valid events: every target is picked among the objects that exist. */
function play(ops: Cmd[][], snapshotEvery: number): ReturnType<RunBuilder['finish']> {
  const b = new RunBuilder(snapshotEvery);
  const procs: Proc[] = [];
  const pages: { id: number; npages: number; mm: number }[] = [];
  const heap: number[] = [];
  let nextPfn = FIRST_PFN;
  let nextId = 10;
  const pick = <T>(list: T[], n: number): T | undefined => list[n % Math.max(1, list.length)];
  for (const group of ops) {
    b.op('op', () => {
      for (const { kind, a, b: x, c } of group) {
        const proc = pick(procs, a);
        const pg = pick(pages, a);
        if (kind === 'process') {
          const mm = nextId++;
          const npages = 1 + (x % 64);
          b.emit({
            type: 'ProcessCreated',
            v: 1,
            pid: `p${mm}`,
            mm,
            uid: 1000 + (c % 2),
            memlock: c % 3 === 0 ? null : BigInt(c) * 4096n,
            capIpcLock: false,
          });
          b.emit({ type: 'FramesAllocated', v: 1, pfn: nextPfn, count: npages, huge: '4K' });
          b.emit({
            type: 'VmaMapped',
            v: 1,
            mm,
            vpn: 0x100,
            npages,
            writable: true,
            huge: '4K',
            runs: [[nextPfn, npages]],
          });
          procs.push({ mm, pfn: nextPfn, npages });
          nextPfn += npages;
        } else if (kind === 'pages' && proc !== undefined) {
          const id = nextId++;
          b.emit({
            type: 'PagesAllocated',
            v: 1,
            pages: id,
            uptr: 0x100000n,
            npages: proc.npages,
            writable: true,
            accountMode: 'user',
            sourcePid: `p${proc.mm}`,
            sourceMm: proc.mm,
            sourceUid: 1000,
            fn: 'f',
          });
          pages.push({ id, npages: proc.npages, mm: proc.mm });
        } else if ((kind === 'pin' || kind === 'unpin') && proc !== undefined) {
          const first = x % proc.npages;
          const count = 1 + (c % (proc.npages - first));
          if (kind === 'pin')
            b.emit({ type: 'PagesPinned', v: 1, pfn: proc.pfn + first, count, fn: 'gup', mm: proc.mm });
          else b.emit({ type: 'PagesUnpinned', v: 1, pfn: proc.pfn + first, count, dirty: c % 2 === 0, fn: 'unpin' });
        } else if ((kind === 'store' || kind === 'erase') && pg !== undefined) {
          const index = x % pg.npages;
          const count = 1 + (c % (pg.npages - index));
          if (kind === 'store')
            b.emit({ type: 'XaStored', v: 1, pages: pg.id, index, pfn: FIRST_PFN + (c % 200), count });
          else b.emit({ type: 'XaErased', v: 1, pages: pg.id, index, count });
        } else if (kind === 'npinned' && pg !== undefined) {
          b.emit({ type: 'NpinnedChanged', v: 1, pages: pg.id, delta: (x % 9) - 4, fn: 'f' });
          if (c % 2 === 0) b.emit({ type: 'LastNpinnedSet', v: 1, pages: pg.id, value: x % 50, fn: 'f' });
          b.emit({
            type: 'AccountingCharged',
            v: 1,
            counter: 'mm.pinned_vm',
            owner: pg.mm,
            pages: pg.id,
            delta: c % 5,
            fn: 'f',
          });
        } else if (kind === 'heap') {
          const id = nextId++;
          b.emit({
            type: 'HeapAllocated',
            v: 1,
            alloc: id,
            size: 8 + (x % 256),
            owner: 'iommufd',
            tag: 't',
            fn: 'kmalloc',
          });
          heap.push(id);
        } else if (kind === 'free' && heap.length > 0) {
          const id = heap.splice(a % heap.length, 1)[0] as number;
          b.emit({ type: 'HeapFreed', v: 1, alloc: id, fn: 'kfree' });
        } else if (kind === 'warn') {
          b.emit(
            x % 2 === 0
              ? { type: 'Warned', v: 1, fn: 'f', condition: 'c', objects: {} }
              : { type: 'ViolationDetected', v: 1, kind: 'leak', fn: 'f', detail: 'd', objects: {} },
          );
        } else if (kind === 'cow' && proc !== undefined) {
          const at = x % proc.npages;
          b.emit({ type: 'FramesAllocated', v: 1, pfn: nextPfn, count: 1, huge: '4K' });
          b.emit({
            type: 'CowBroken',
            v: 1,
            mm: proc.mm,
            vpn: 0x100 + at,
            oldPfn: proc.pfn + at,
            newPfn: nextPfn,
            fn: 'wp',
          });
          b.emit({ type: 'MemoryWritten', v: 1, pfn: nextPfn, offset: c % 4000, data: 'ab' });
          nextPfn += 1;
        } else if (kind === 'release' && pg !== undefined) {
          pages.splice(pages.indexOf(pg), 1);
          b.emit({ type: 'PagesReleased', v: 1, pages: pg.id, fn: 'f' });
        }
      }
    });
  }
  return b.finish();
}

const runs = fc.record({
  ops: fc.array(fc.array(cmd, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 25 }),
  every: fc.integer({ min: 1, max: 12 }),
});

describe('rebuild from the log', () => {
  it('equals the live state at every seq, from snapshot + tail, for random runs', async () => {
    await fc.assert(
      fc.asyncProperty(runs, async ({ ops, every }) => {
        const run = play(ops, every);
        for (let seq = 0; seq < run.live.length; seq++) {
          const s = await stateAt(run.source, seq);
          expect(s).toEqual(run.live[seq]);
          expect(digestHex(s.digest)).toBe(run.recorder.digests[seq]);
          expect(digestHex(recomputeDigest(s))).toBe(run.recorder.digests[seq]);
        }
        expect((await verifyRebuild(run.source)).ok).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('steps forward and back by patches through random runs, each inverse exact', async () => {
    await fc.assert(
      fc.asyncProperty(runs, async ({ ops, every }) => {
        const run = play(ops, every);
        const c = await Cursor.open(run.source, -1);
        const seen = [structuredClone(c.state)];
        for (;;) {
          const before = seen[seen.length - 1];
          const step = await c.forward();
          if (step === null) break;
          const after = structuredClone(c.state);
          expect(after).toEqual(run.live[c.seq]);
          expect(immer.applyPatches(structuredClone(after), step.inversePatches)).toEqual(before);
          expect(step.diff.differences).toEqual(diffStates(before as never, after).differences);
          seen.push(after);
        }
        for (let i = seen.length - 2; i >= 0; i--) {
          await c.back();
          expect(c.state).toEqual(seen[i]);
        }
      }),
      { numRuns: 40 },
    );
  });
});
