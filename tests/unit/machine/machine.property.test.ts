import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { rangeForEachAll, rangeGet } from '../../../src/structures/range-map.js';
import { xaForEachRun } from '../../../src/structures/xarray.js';
import { pinUserPagesRemote, unpinUserPages } from '../../../src/machine/gup.js';
import { cpuWrite, mmap, munmap } from '../../../src/machine/memory.js';
import { createProcess, exitProcess } from '../../../src/machine/mm.js';
import type { State } from '../../../src/state/state.js';
import { expectRebuildEqual, world } from '../../support/world.js';

const VA = 0x10000000n;
const PAGE = 4096n;
const POOL = 0x50000;

type Op =
  | { k: 'mmap'; p: number; at: number; n: number; writable: boolean; shared: number | null }
  | { k: 'munmap'; p: number; at: number; n: number }
  | { k: 'write'; p: number; at: number; byte: number }
  | { k: 'pin'; p: number; at: number; n: number; write: boolean; longterm: boolean }
  | { k: 'unpin'; which: number }
  | { k: 'stray'; pfn: number }
  | { k: 'exit'; p: number };

const proc = fc.integer({ min: 1, max: 2 });
const at = fc.integer({ min: 0, max: 11 });
const n = fc.integer({ min: 1, max: 4 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('mmap' as const),
      p: proc,
      at,
      n,
      writable: fc.boolean(),
      shared: fc.option(fc.integer({ min: 0, max: 6 })),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('munmap' as const), p: proc, at, n }) },
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant('write' as const), p: proc, at, byte: fc.integer({ min: 0, max: 255 }) }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('pin' as const),
      p: proc,
      at,
      n,
      write: fc.boolean(),
      longterm: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('unpin' as const), which: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant('stray' as const), pfn: fc.integer({ min: POOL, max: POOL + 12 }) }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('exit' as const), p: proc }) },
);

/** Every live frame is mapped or pinned; maps equal the page-table entries that name it. */
function checkFrames(s: State, held: number[]): void {
  const mapsOf = new Map<number, number>();
  for (const mm of Object.values(s.mms)) {
    xaForEachRun(mm.pt, 0, Number.MAX_SAFE_INTEGER, (_index, pfn, count) => {
      for (let i = 0; i < count; i++) mapsOf.set(pfn + i, (mapsOf.get(pfn + i) ?? 0) + 1);
    });
  }
  const pinsOf = new Map<number, number>();
  for (const pfn of held) pinsOf.set(pfn, (pinsOf.get(pfn) ?? 0) + 1);
  rangeForEachAll(s.frames, (start, count, frame) => {
    for (let i = 0; i < count; i++) {
      const pfn = start + i;
      expect(frame.pins > 0 || frame.maps > 0).toBe(true);
      expect([pfn, frame.maps]).toEqual([pfn, mapsOf.get(pfn) ?? 0]);
      expect([pfn, frame.pins]).toEqual([pfn, pinsOf.get(pfn) ?? 0]);
    }
  });
  for (const pfn of [...mapsOf.keys(), ...pinsOf.keys()]) expect(rangeGet(s.frames, pfn)).toBeDefined();
}

describe('the machine under random operations', () => {
  it('keeps pins equal to the pins held, maps equal to page-table entries, and the log rebuilds the state', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), fc.subarray(['gup-unshare-flags']), (ops, flags) => {
        const h = world(flags, { merged: true });
        createProcess(h.sim, '1', { uid: 1000, memlock: null, capIpcLock: false });
        createProcess(h.sim, '2', { uid: 1000, memlock: null, capIpcLock: false });
        const held: number[] = [];
        for (const o of ops) {
          const pid = 'p' in o ? String(o.p) : '';
          switch (o.k) {
            case 'mmap': {
              const pfns: [number, number][] | undefined = o.shared === null ? undefined : [[POOL + o.shared, o.n]];
              mmap(h.sim, pid, VA + BigInt(o.at) * PAGE, BigInt(o.n) * PAGE, {
                huge: '4K',
                writable: o.writable,
                ...(pfns ? { pfns } : {}),
              });
              break;
            }
            case 'munmap':
              munmap(h.sim, pid, VA + BigInt(o.at) * PAGE, BigInt(o.n) * PAGE);
              break;
            case 'write':
              cpuWrite(h.sim, pid, VA + BigInt(o.at) * PAGE + 7n, new Uint8Array([o.byte]));
              break;
            case 'pin': {
              const out = { slots: [] as number[] };
              const rc = pinUserPagesRemote(
                h.sim,
                o.p,
                VA + BigInt(o.at) * PAGE,
                o.n,
                { write: o.write, longterm: o.longterm, force: false },
                out,
                0,
              );
              if (rc > 0) held.push(...out.slots.slice(0, rc));
              break;
            }
            case 'unpin': {
              if (held.length === 0) break;
              const [pfn] = held.splice(o.which % held.length, 1);
              unpinUserPages(h.sim, [pfn as number], 'test');
              break;
            }
            case 'stray': {
              if (held.includes(o.pfn)) break;
              const before = h.sim.state.counts.violations;
              unpinUserPages(h.sim, [o.pfn], 'test');
              expect(h.sim.state.counts.violations).toBe(before + 1);
              break;
            }
            case 'exit':
              exitProcess(h.sim, pid);
              break;
          }
          checkFrames(h.sim.state, held);
        }
        expectRebuildEqual(h);
      }),
      { numRuns: 200 },
    );
  });
});
