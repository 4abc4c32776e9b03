// SPDX-License-Identifier: GPL-2.0-only
/**
 * The access kAPI (device.c) driven by the selftest's access driver, on the whole stack: a process with
 * 16 populated pages, a context, an IOAS, real maps, real domains. Every scenario also asks the global
 * invariant checker, which must find nothing on upstream.
 */
import { describe, expect, it } from 'vitest';
import type { Event } from '../../../src/events/events.js';
import { iommufdAccessPinPages } from '../../../src/kernel/device.js';
import { invariantFindings } from '../../../src/kernel/invariants/index.js';
import { itreeEntries } from '../../../src/structures/interval-tree.js';
import { domainAttach, domainDetach, ioasAlloc, ioasMap, ioasUnmap } from '../../../src/kernel/ioas.js';
import { rangeGet } from '../../../src/structures/range-map.js';
import {
  accessCreate,
  accessDestroy,
  accessPin,
  accessReplace,
  accessRw,
  accessUnpin,
} from '../../../src/kernel/selftest-access.js';
import { FLAG_NAMES, PRE_MERGE_FLAGS, isMerged } from '../../../src/kernel/variants.js';
import { xaLoad } from '../../../src/structures/xarray.js';
import {
  EADDRINUSE,
  EFAULT,
  EINVAL,
  ENOENT,
  ENOMEM,
  EOPNOTSUPP,
  EOVERFLOW,
  EPERM,
} from '../../../src/machine/errno.js';
import { kmalloc } from '../../../src/machine/heap.js';
import { cpuRead, cpuWrite, mmap, vaToPfn } from '../../../src/machine/memory.js';
import { createProcess, exitProcess } from '../../../src/machine/mm.js';
import { KTHREAD, Sim } from '../../../src/machine/sim.js';
import { Emitter, MemorySink } from '../../../src/state/emit.js';
import { reduce } from '../../../src/state/reduce.js';
import type { State } from '../../../src/state/state.js';
import { initialState } from '../../../src/state/state.js';

const PAGE = 4096n;
const BUF = 0x7f0000000000n;
const IOVA = 0x1000000n;

interface World {
  sim: Sim;
  sink: MemorySink;
  mm: number;
}

/** Process "1" with 16 populated pages at BUF, context "c", IOAS "A" with BUF mapped at IOVA (unless told). */
function world(flags: readonly string[] = FLAG_NAMES, opts: { map?: boolean; write?: boolean } = {}): World {
  const fixes = new Set(flags);
  const sink = new MemorySink();
  const sim = new Sim(new Emitter(initialState(), sink), fixes, isMerged(fixes));
  createProcess(sim, '1', { uid: 1000, memlock: null, capIpcLock: false });
  const mm = sim.state.processes['1']?.mm ?? -1;
  sim.current = { pid: '1', mm };
  expect(mmap(sim, '1', BUF, 16n * PAGE, { huge: '4K', writable: true })).toBe(0);
  sim.emit({ type: 'CtxOpened', v: 1, ctx: 'c', pid: '1', account: 'user', vfioType1: false });
  expect(ioasAlloc(sim, 'A', 'c')).toBe(0);
  if (opts.map ?? true) {
    expect(
      ioasMap(sim, 'A', { uptr: BUF, length: 16n * PAGE, iova: IOVA, read: true, write: opts.write ?? true }).rc,
    ).toBe(0);
  }
  return { sim, sink, mm };
}

/** The PFN behind page i of the buffer. */
const pfnOf = (w: World, i: number): number => vaToPfn(w.sim.state, w.mm, Number(BUF / PAGE) + i) ?? -1;
const pinsOf = (s: State, pfn: number): number => rangeGet(s.frames, pfn)?.pins ?? 0;
const onlyPages = (s: State) => Object.values(s.pages)[0];
const onlyArea = (s: State) => Object.values(s.areas)[0];
const eventsOf = <T extends Event['type']>(w: World, type: T) =>
  w.sink.events.filter((e): e is Extract<Event, { type: T }> => e.type === type);
const findings = (w: World) =>
  eventsOf(w, 'ViolationDetected')
    .map((e) => [e.kind, e.fn])
    .concat(eventsOf(w, 'Warned').map((e) => ['warn', e.fn]));
const liveCallerBuffers = (s: State) => Object.values(s.heap).filter((a) => a.owner === 'caller');

describe('iommufd_access_pin_pages through the selftest driver', () => {
  it('pins 3 pages and reports their PFNs: one pin each, 3 in npinned and in locked_vm, an item', () => {
    const w = world();
    expect(accessCreate(w.sim, 'x', 'A', true)).toBe(0);
    const r = accessPin(w.sim, 'x', IOVA + PAGE, 3n * PAGE, true);
    expect(r.rc).toBe(0);
    // The default layout leaves a PFN gap between 4K pages (page i at 0x40000 + 2i): three runs of one.
    expect(r.pfns).toEqual([
      [0x40002, 1],
      [0x40004, 1],
      [0x40006, 1],
    ]);
    expect([1, 2, 3].map((i) => pfnOf(w, i))).toEqual([0x40002, 0x40004, 0x40006]);
    const s = w.sim.state;
    expect([0, 1, 2, 3, 4].map((i) => pinsOf(s, pfnOf(w, i)))).toEqual([0, 1, 1, 1, 0]);
    expect(onlyPages(s)).toMatchObject({ npinned: 3, lastNpinned: 3 });
    expect(
      [0, 1, 2, 3, 4].map((i) =>
        xaLoad(onlyPages(s)?.xa ?? { runs: null as never, digest: null as never, count: 0 }, i),
      ),
    ).toEqual([undefined, pfnOf(w, 1), pfnOf(w, 2), pfnOf(w, 3), undefined]);
    expect(s.users[1000]?.lockedVm).toBe(3);
    expect(onlyArea(s)?.numAccesses).toBe(1);
    expect(Object.values(s.accesses.x?.items ?? {})).toMatchObject([{ iova: IOVA + PAGE, length: 3n * PAGE }]);
    // The page array was the caller's and is gone again.
    expect(liveCallerBuffers(s)).toEqual([]);
    expect(
      eventsOf(w, 'HeapAllocated')
        .filter((e) => e.tag === 'out_pages')
        .map((e) => e.size),
    ).toEqual([24]);
    expect(invariantFindings(s)).toEqual([]);
    expect(findings(w)).toEqual([]);
  });

  it('shares the access for a second identical pin: users 2, num_accesses 2, no new pin', () => {
    const w = world();
    accessCreate(w.sim, 'x', 'A', true);
    const first = accessPin(w.sim, 'x', IOVA + PAGE, 3n * PAGE, true);
    const pinsBefore = eventsOf(w, 'PagesPinned').length;
    const second = accessPin(w.sim, 'x', IOVA + PAGE, 3n * PAGE, true);
    expect(second).toEqual(first);
    const s = w.sim.state;
    expect(eventsOf(w, 'PagesPinned').length).toBe(pinsBefore);
    expect(Object.values(s.pagesAccesses).map((a) => [a.index, a.last, a.users])).toEqual([[1, 3, 2]]);
    expect(onlyArea(s)?.numAccesses).toBe(2);
    expect([1, 2, 3].map((i) => pinsOf(s, pfnOf(w, i)))).toEqual([1, 1, 1]);
    expect(onlyPages(s)?.npinned).toBe(3);
    expect(Object.keys(s.accesses.x?.items ?? {}).length).toBe(2);
    expect(invariantFindings(s)).toEqual([]);
  });

  it('keeps an overlapping but different range as its own access, pinning only the new page', () => {
    const w = world();
    accessCreate(w.sim, 'x', 'A', true);
    accessPin(w.sim, 'x', IOVA + PAGE, 3n * PAGE, true);
    expect(accessPin(w.sim, 'x', IOVA + 2n * PAGE, 3n * PAGE, true).rc).toBe(0);
    const s = w.sim.state;
    expect(Object.values(s.pagesAccesses).map((a) => [a.index, a.last, a.users])).toEqual([
      [1, 3, 1],
      [2, 4, 1],
    ]);
    expect([1, 2, 3, 4, 5].map((i) => pinsOf(s, pfnOf(w, i)))).toEqual([1, 1, 1, 1, 0]);
    expect(onlyPages(s)?.npinned).toBe(4);
    expect(invariantFindings(s)).toEqual([]);
  });

  it('unpins to nothing: pins, xarray, npinned, locked_vm and num_accesses back to zero; a third unpin is -ENOENT', () => {
    const w = world();
    accessCreate(w.sim, 'x', 'A', true);
    accessPin(w.sim, 'x', IOVA + PAGE, 3n * PAGE, true);
    accessPin(w.sim, 'x', IOVA + PAGE, 3n * PAGE, true);
    expect(accessUnpin(w.sim, 'x', IOVA + PAGE, 3n * PAGE)).toBe(0);
    expect([1, 2, 3].map((i) => pinsOf(w.sim.state, pfnOf(w, i)))).toEqual([1, 1, 1]);
    expect(accessUnpin(w.sim, 'x', IOVA + PAGE, 3n * PAGE)).toBe(0);
    const s = w.sim.state;
    expect([1, 2, 3].map((i) => pinsOf(s, pfnOf(w, i)))).toEqual([0, 0, 0]);
    expect(onlyPages(s)).toMatchObject({ npinned: 0, lastNpinned: 0 });
    expect(onlyPages(s)?.xa.count).toBe(0);
    expect(
      itreeEntries(
        onlyPages(s)?.accessTree ?? { root: null, byId: null, count: 0, nextSeq: 0, digest: { lo: 0, hi: 0 } },
      ),
    ).toEqual([]);
    expect(s.users[1000]?.lockedVm).toBe(0);
    expect(s.mms[w.mm]?.pinnedVm).toBe(0);
    expect(onlyArea(s)?.numAccesses).toBe(0);
    expect(s.pagesAccesses).toEqual({});
    expect(accessUnpin(w.sim, 'x', IOVA + PAGE, 3n * PAGE)).toBe(-ENOENT);
    // The selftest matches items exactly: a sub-range is not an item.
    accessPin(w.sim, 'x', IOVA, 2n * PAGE, true);
    expect(accessUnpin(w.sim, 'x', IOVA, PAGE)).toBe(-ENOENT);
    expect(invariantFindings(w.sim.state)).toEqual([]);
    expect(findings(w)).toEqual([]);
  });

  it('pins across two contiguous areas, one access per area piece', () => {
    const w = world(FLAG_NAMES, { map: false });
    expect(ioasMap(w.sim, 'A', { uptr: BUF, length: 4n * PAGE, iova: IOVA, read: true, write: true }).rc).toBe(0);
    expect(
      ioasMap(w.sim, 'A', { uptr: BUF + 8n * PAGE, length: 4n * PAGE, iova: IOVA + 4n * PAGE, read: true, write: true })
        .rc,
    ).toBe(0);
    accessCreate(w.sim, 'x', 'A', true);
    const r = accessPin(w.sim, 'x', IOVA + 2n * PAGE, 4n * PAGE, false);
    expect(r.rc).toBe(0);
    expect(r.pfns.map(([p]) => p)).toEqual([pfnOf(w, 2), pfnOf(w, 3), pfnOf(w, 8), pfnOf(w, 9)]);
    expect(Object.values(w.sim.state.areas).map((a) => a.numAccesses)).toEqual([1, 1]);
    expect(invariantFindings(w.sim.state)).toEqual([]);
    expect(accessUnpin(w.sim, 'x', IOVA + 2n * PAGE, 4n * PAGE)).toBe(0);
    expect([2, 3, 8, 9].map((i) => pinsOf(w.sim.state, pfnOf(w, i)))).toEqual([0, 0, 0, 0]);
  });

  it('undoes the pieces already added when the range runs into a hole (-ENOENT)', () => {
    const w = world(FLAG_NAMES, { map: false });
    expect(ioasMap(w.sim, 'A', { uptr: BUF, length: 4n * PAGE, iova: IOVA, read: true, write: true }).rc).toBe(0);
    accessCreate(w.sim, 'x', 'A', true);
    expect(accessPin(w.sim, 'x', IOVA + 2n * PAGE, 4n * PAGE, true)).toEqual({ rc: -ENOENT, pfns: [] });
    const s = w.sim.state;
    expect(eventsOf(w, 'PagesPinned').map((e) => e.pfn)).toEqual([pfnOf(w, 2), pfnOf(w, 3)]);
    expect([2, 3].map((i) => pinsOf(s, pfnOf(w, i)))).toEqual([0, 0]);
    expect(onlyArea(s)?.numAccesses).toBe(0);
    expect(s.accesses.x?.items).toEqual({});
    expect(liveCallerBuffers(s)).toEqual([]);
    expect(invariantFindings(s)).toEqual([]);
    expect(findings(w)).toEqual([]);
  });

  it('refuses bad arguments: length 0, a wrap, an unaligned IOVA, a write to a read-only area', () => {
    const w = world(FLAG_NAMES, { write: false });
    accessCreate(w.sim, 'x', 'A', true);
    expect(accessPin(w.sim, 'x', IOVA, 0n, false).rc).toBe(-EINVAL);
    expect(accessPin(w.sim, 'x', (1n << 64n) - PAGE, 2n * PAGE, false).rc).toBe(-EOVERFLOW);
    expect(accessPin(w.sim, 'x', IOVA + 0x800n, PAGE, false).rc).toBe(-EINVAL);
    expect(accessPin(w.sim, 'x', IOVA, PAGE, true).rc).toBe(-EPERM);
    expect(accessPin(w.sim, 'x', IOVA + 32n * PAGE, PAGE, false).rc).toBe(-ENOENT);
    expect(accessPin(w.sim, 'x', IOVA, PAGE, false).rc).toBe(0);
    expect(liveCallerBuffers(w.sim.state)).toEqual([]);
    expect(findings(w)).toEqual([]);
  });

  it('fails with -ENOMEM (and the kvmalloc WARN) when the page array would exceed INT_MAX bytes', () => {
    const w = world();
    accessCreate(w.sim, 'x', 'A', true);
    expect(accessPin(w.sim, 'x', IOVA, 1n << 40n, true)).toEqual({ rc: -ENOMEM, pfns: [] });
    expect(findings(w)).toEqual([['warn', 'kvmalloc_node']]);
    expect(eventsOf(w, 'HeapAllocated').filter((e) => e.tag === 'out_pages')).toEqual([]);
  });

  it('refuses to pin through an access created without NEEDS_PIN_PAGES (-EOPNOTSUPP), which v3 does not know', () => {
    const up = world();
    accessCreate(up.sim, 'x', 'A', false);
    expect(accessPin(up.sim, 'x', IOVA, PAGE, true)).toEqual({ rc: -EOPNOTSUPP, pfns: [] });
    // (8 pages: below that the v3 fill-xarray capacity bug makes every pin fail.)
    const v3 = world([]);
    accessCreate(v3.sim, 'x', 'A', false);
    expect(accessPin(v3.sim, 'x', IOVA, 8n * PAGE, true).rc).toBe(0);
  });

  it('WARNs and fails with -EINVAL when the kAPI itself is asked to pin for an access that cannot (merged, test)', () => {
    const w = world();
    accessCreate(w.sim, 'x', 'A', false);
    const out = { slots: [] };
    const ptr = kmalloc(w.sim, 8, { owner: 'caller', tag: 'out_pages', fn: 'test' });
    if (ptr === null) throw new Error('kmalloc');
    expect(iommufdAccessPinPages(w.sim, 'x', IOVA, PAGE, out, ptr, false)).toBe(-EINVAL);
    expect(findings(w)).toEqual([['warn', 'iommufd_access_pin_pages']]);
  });

  it('reads the PFNs back from a domain instead of pinning again', () => {
    const w = world();
    expect(domainAttach(w.sim, 'A', 'd', { kind: 'mock' })).toBe(0);
    const pinsBefore = eventsOf(w, 'PagesPinned').length;
    accessCreate(w.sim, 'x', 'A', true);
    const r = accessPin(w.sim, 'x', IOVA + 4n * PAGE, 2n * PAGE, true);
    expect(r).toEqual({
      rc: 0,
      pfns: [
        [pfnOf(w, 4), 1],
        [pfnOf(w, 5), 1],
      ],
    });
    expect(eventsOf(w, 'PagesPinned').length).toBe(pinsBefore);
    expect(onlyPages(w.sim.state)?.npinned).toBe(16);
    expect(invariantFindings(w.sim.state)).toEqual([]);
    // Detaching the last domain keeps exactly the accessed pages pinned.
    expect(domainDetach(w.sim, 'd')).toBe(0);
    expect([3, 4, 5, 6].map((i) => pinsOf(w.sim.state, pfnOf(w, i)))).toEqual([0, 1, 1, 0]);
    expect(invariantFindings(w.sim.state)).toEqual([]);
    expect(findings(w)).toEqual([]);
  });

  it('fails every pin cleanly wherever a fault is injected (no pin, no charge, no buffer left)', () => {
    let fired = 0;
    for (let n = 1; n < 50; n++) {
      const w = world();
      accessCreate(w.sim, 'x', 'A', true);
      w.sim.runFailNth = n;
      const r = accessPin(w.sim, 'x', IOVA + PAGE, 3n * PAGE, true);
      w.sim.runFailNth = null;
      if (eventsOf(w, 'FaultInjected').length === 0) {
        expect(r.rc).toBe(0);
        break;
      }
      fired += 1;
      expect(r.rc).toBeLessThan(0);
      const s = w.sim.state;
      expect([1, 2, 3].map((i) => pinsOf(s, pfnOf(w, i)))).toEqual([0, 0, 0]);
      expect(s.users[1000]?.lockedVm).toBe(0);
      expect(liveCallerBuffers(s)).toEqual([]);
      expect(s.accesses.x?.items).toEqual({});
      expect(invariantFindings(s)).toEqual([]);
      expect(findings(w)).toEqual([]);
    }
    // The page array, the access node, the pin, the charge and the item are all fault points.
    expect(fired).toBeGreaterThanOrEqual(4);
  });

  it('fails with -ENOMEM when the item cannot be allocated, after unpinning', () => {
    const w = world();
    accessCreate(w.sim, 'x', 'A', true);
    // Count the kmalloc sites of one pin, then fail the last one (the item).
    const probe = world();
    accessCreate(probe.sim, 'x', 'A', true);
    const before = eventsOf(probe, 'HeapAllocated').length;
    accessPin(probe.sim, 'x', IOVA + PAGE, 3n * PAGE, true);
    const kmallocs = eventsOf(probe, 'HeapAllocated').length - before;
    w.sim.emit({ type: 'FaultArmed', v: 1, nth: kmallocs, site: 'kmalloc' });
    expect(accessPin(w.sim, 'x', IOVA + PAGE, 3n * PAGE, true).rc).toBe(-ENOMEM);
    expect(eventsOf(w, 'FaultInjected').map((e) => e.fn)).toEqual(['iommufd_test_access_pages']);
    expect([1, 2, 3].map((i) => pinsOf(w.sim.state, pfnOf(w, i)))).toEqual([0, 0, 0]);
    expect(eventsOf(w, 'PagesUnpinned').length).toBeGreaterThan(0);
  });
});

describe('the BAD_FREE of the v3 posting (bad-free.jsonl)', () => {
  const run = (flags: readonly string[]) => {
    const w = world(flags);
    accessCreate(w.sim, 'x', 'A', true);
    exitProcess(w.sim, '1');
    w.sim.current = KTHREAD;
    return { w, r: accessPin(w.sim, 'x', IOVA, PAGE, true) };
  };

  it('v3: the exited mm makes the pin kfree the borrowed page array, which the driver then frees again', () => {
    const { w, r } = run([]);
    expect(r.rc).toBe(-EFAULT);
    expect(eventsOf(w, 'ViolationDetected').map((e) => [e.kind, e.fn])).toEqual([
      ['bad_free', 'pfn_reader_user_pin'],
      ['mmput_underflow', 'pfn_reader_user_destroy'],
      ['double_free', 'iommufd_test_access_pages'],
    ]);
  });

  it('merged and upstream: -EFAULT and nothing else', () => {
    for (const flags of [PRE_MERGE_FLAGS, FLAG_NAMES]) {
      const { w, r } = run(flags);
      expect(r.rc).toBe(-EFAULT);
      expect(findings(w)).toEqual([]);
      expect(liveCallerBuffers(w.sim.state)).toEqual([]);
    }
  });
});

describe('unmap and destroy with pins held', () => {
  it('IOAS_UNMAP runs the unmap callback: the items are unpinned and dropped, and the area goes', () => {
    const w = world();
    accessCreate(w.sim, 'x', 'A', true);
    accessPin(w.sim, 'x', IOVA + PAGE, 2n * PAGE, true);
    accessPin(w.sim, 'x', IOVA + 8n * PAGE, PAGE, true);
    expect(ioasUnmap(w.sim, 'A', { iova: IOVA, length: 16n * PAGE })).toEqual({ rc: 0, unmapped: 16n * PAGE });
    const s = w.sim.state;
    expect(s.accesses.x?.items).toEqual({});
    expect(s.areas).toEqual({});
    expect(s.pages).toEqual({});
    expect([1, 2, 8].map((i) => pinsOf(s, pfnOf(w, i)))).toEqual([0, 0, 0]);
    expect(eventsOf(w, 'AccessItemRemoved').length).toBe(2);
    expect(invariantFindings(s)).toEqual([]);
    expect(findings(w)).toEqual([]);
  });

  it('access_destroy unpins what is still pinned and leaves the IOAS without accesses', () => {
    const w = world();
    accessCreate(w.sim, 'x', 'A', true);
    accessPin(w.sim, 'x', IOVA, 4n * PAGE, true);
    accessPin(w.sim, 'x', IOVA, 4n * PAGE, true);
    expect(accessDestroy(w.sim, 'x')).toBe(0);
    const s = w.sim.state;
    expect(s.accesses).toEqual({});
    expect(s.ioases.A?.accesses).toEqual([]);
    expect(onlyPages(s)?.npinned).toBe(0);
    expect(Object.values(s.heap).filter((a) => a.tag === 'selftest_access_item')).toEqual([]);
    expect(invariantFindings(s)).toEqual([]);
  });

  it('refuses an access whose PAGE_SIZE alignment an existing area does not meet (-EADDRINUSE, merged)', () => {
    const w = world(FLAG_NAMES, { map: false });
    expect(domainAttach(w.sim, 'A', 'd', { kind: 'mock' })).toBe(0);
    expect(ioasMap(w.sim, 'A', { uptr: BUF, length: PAGE, iova: IOVA + 0x800n, read: true, write: true }).rc).toBe(0);
    expect(accessCreate(w.sim, 'x', 'A', true)).toBe(-EADDRINUSE);
    expect(w.sim.state.accesses).toEqual({});
    expect(w.sim.state.ioases.A?.accesses).toEqual([]);
    expect(accessCreate(w.sim, 'y', 'A', false)).toBe(0);
    expect(accessCreate(w.sim, 'y', 'A', false)).toBeLessThan(0);
    expect(accessCreate(w.sim, 'z', 'nope', false)).toBe(-ENOENT);
  });
});

describe('iommufd_access_replace (IOMMU_TEST_OP_ACCESS_REPLACE_IOAS)', () => {
  /** Given A (the buffer at IOVA) with access x pinning 3 pages, and B with the same buffer at IOVA + 64 pages. */
  function givenPinnedAccessAndSecondIoas(flags: readonly string[] = FLAG_NAMES): World {
    const w = world(flags);
    expect(ioasAlloc(w.sim, 'B', 'c')).toBe(0);
    expect(
      ioasMap(w.sim, 'B', { uptr: BUF, length: 16n * PAGE, iova: IOVA + 64n * PAGE, read: true, write: true }).rc,
    ).toBe(0);
    expect(accessCreate(w.sim, 'x', 'A', true)).toBe(0);
    expect(accessPin(w.sim, 'x', IOVA + PAGE, 3n * PAGE, true).rc).toBe(0);
    return w;
  }
  const pagesOfIoas = (s: State, ioas: string): State['pages'][number] | undefined => {
    const area = Object.values(s.areas).find((a) => a.ioas === ioas);
    return area?.pages == null ? undefined : s.pages[area.pages];
  };

  it('moves the access to B: the unmap callback drops its pins first, then A lets it go', () => {
    const w = givenPinnedAccessAndSecondIoas();
    const from = w.sink.events.length;
    expect(accessReplace(w.sim, 'x', 'B')).toBe(0);
    const s = w.sim.state;
    const types = w.sink.events.slice(from).map((e) => e.type);
    expect(types.filter((t) => t.startsWith('Access'))).toEqual(['AccessItemRemoved', 'AccessIoasReplaced']);
    // The unpin (the pages access goes) happens inside the callback, before A lets the access go.
    expect(types.indexOf('PagesAccessFreed')).toBeGreaterThan(types.indexOf('AccessItemRemoved'));
    expect(types.indexOf('PagesAccessFreed')).toBeLessThan(types.indexOf('AccessIoasReplaced'));
    expect(w.sink.events.at(-1)).toMatchObject({ type: 'AccessIoasReplaced', access: 'x', from: 'A', to: 'B' });
    expect(s.accesses.x?.ioas).toBe('B');
    expect(s.accesses.x?.items).toEqual({});
    expect(s.ioases.A?.accesses).toEqual([]);
    expect(s.ioases.B?.accesses).toEqual(['x']);
    expect([1, 2, 3].map((i) => pinsOf(s, pfnOf(w, i)))).toEqual([0, 0, 0]);
    expect(pagesOfIoas(s, 'A')?.npinned).toBe(0);
    expect(Object.values(s.users).map((u) => u.lockedVm)).toEqual([0]);
    // Pinning now goes through B's areas: B's pages hold the pin.
    const pin = accessPin(w.sim, 'x', IOVA + 64n * PAGE + 2n * PAGE, PAGE, true);
    expect(pin.rc).toBe(0);
    expect(pinsOf(w.sim.state, pfnOf(w, 2))).toBe(1);
    expect(pagesOfIoas(w.sim.state, 'B')?.npinned).toBe(1);
    expect(pagesOfIoas(w.sim.state, 'A')?.npinned).toBe(0);
    expect(accessPin(w.sim, 'x', IOVA + PAGE, PAGE, true).rc).toBe(-ENOENT);
    expect(invariantFindings(w.sim.state)).toEqual([]);
    expect(findings(w)).toEqual([]);
  });

  it('answers 0 and changes nothing for the IOAS it is already on; -ENOENT for an IOAS or access that does not exist', () => {
    const w = givenPinnedAccessAndSecondIoas();
    const from = w.sink.events.length;
    expect(accessReplace(w.sim, 'x', 'A')).toBe(0);
    expect(accessReplace(w.sim, 'x', 'nope')).toBe(-ENOENT);
    expect(accessReplace(w.sim, 'nope', 'B')).toBe(-ENOENT);
    expect(w.sink.events.length).toBe(from);
    expect(pinsOf(w.sim.state, pfnOf(w, 1))).toBe(1);
  });

  it('is refused by the alignment of the new IOAS (-EADDRINUSE) with the pins and the old IOAS untouched', () => {
    const w = givenPinnedAccessAndSecondIoas();
    expect(ioasAlloc(w.sim, 'C', 'c')).toBe(0);
    expect(domainAttach(w.sim, 'C', 'dc', { kind: 'mock' })).toBe(0);
    expect(ioasMap(w.sim, 'C', { uptr: BUF, length: PAGE, iova: IOVA + 0x800n, read: true, write: true }).rc).toBe(0);
    const from = w.sink.events.length;
    expect(accessReplace(w.sim, 'x', 'C')).toBe(-EADDRINUSE);
    expect(w.sink.events.slice(from).filter((e) => e.type.startsWith('Access'))).toEqual([]);
    expect(w.sim.state.accesses.x?.ioas).toBe('A');
    expect(w.sim.state.ioases.C?.accesses).toEqual([]);
    expect(pinsOf(w.sim.state, pfnOf(w, 1))).toBe(1);
  });

  it('is an unknown command (-EOPNOTSUPP) on a kernel before v6.6: merged has no access replace', () => {
    const w = givenPinnedAccessAndSecondIoas(PRE_MERGE_FLAGS);
    const from = w.sink.events.length;
    expect(accessReplace(w.sim, 'x', 'B')).toBe(-EOPNOTSUPP);
    expect(accessReplace(w.sim, 'nope', 'nope')).toBe(-EOPNOTSUPP);
    expect(w.sink.events.length).toBe(from);
  });

  it('rebuilds from its events to the live state', () => {
    const w = givenPinnedAccessAndSecondIoas();
    accessReplace(w.sim, 'x', 'B');
    accessPin(w.sim, 'x', IOVA + 64n * PAGE, 2n * PAGE, true);
    accessDestroy(w.sim, 'x');
    const fresh = initialState();
    for (const e of w.sink.events) reduce(fresh, e);
    expect(fresh.digest).toEqual(w.sim.state.digest);
    expect(fresh).toEqual(w.sim.state);
    expect(fresh.ioases.B?.accesses).toEqual([]);
  });
});

describe('iommufd_access_rw', () => {
  const pattern = (n: number, seed: number): Uint8Array =>
    Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

  it('reads and writes exact bytes across a page boundary on the fast path (the source process)', () => {
    const w = world();
    accessCreate(w.sim, 'x', 'A', false);
    expect(cpuWrite(w.sim, '1', BUF + PAGE - 16n, pattern(32, 1))).toBe(0);
    expect(accessRw(w.sim, 'x', IOVA + PAGE - 16n, 32n, { write: false, data: null, kthread: false })).toEqual({
      rc: 0,
      data: pattern(32, 1),
    });
    expect(accessRw(w.sim, 'x', IOVA + PAGE - 8n, 16n, { write: true, data: pattern(16, 9), kthread: false })).toEqual({
      rc: 0,
      data: null,
    });
    expect(cpuRead(w.sim, '1', BUF + PAGE - 8n, 16n).data).toEqual(pattern(16, 9));
    expect(eventsOf(w, 'PagesPinned')).toEqual([]);
    expect(liveCallerBuffers(w.sim.state)).toEqual([]);
    expect(invariantFindings(w.sim.state)).toEqual([]);
  });

  it('reads and writes exact bytes on the slow paths (another process: rw_page for one page, rw_slow for several) and leaves no pin', () => {
    const w = world();
    createProcess(w.sim, 'other', { uid: 1001, memlock: null, capIpcLock: false });
    accessCreate(w.sim, 'x', 'A', false);
    expect(cpuWrite(w.sim, '1', BUF + 3n * PAGE, pattern(3 * 4096, 5))).toBe(0);
    w.sim.current = { pid: 'other', mm: w.sim.state.processes.other?.mm ?? -1 };
    // One page: iopt_pages_rw_page.
    expect(
      accessRw(w.sim, 'x', IOVA + 3n * PAGE + 100n, 50n, { write: false, data: null, kthread: false }).data,
    ).toEqual(pattern(3 * 4096, 5).subarray(100, 150));
    // Three pages: iopt_pages_rw_slow through a pfn_reader.
    const read = accessRw(w.sim, 'x', IOVA + 3n * PAGE, 3n * PAGE, { write: false, data: null, kthread: false });
    expect(read).toEqual({ rc: 0, data: pattern(3 * 4096, 5) });
    expect(
      accessRw(w.sim, 'x', IOVA + 4n * PAGE - 3n, 6n, { write: true, data: pattern(6, 77), kthread: false }).rc,
    ).toBe(0);
    expect(
      accessRw(w.sim, 'x', IOVA + 2n * PAGE, 2n * PAGE + 1n, { write: true, data: pattern(8193, 3), kthread: false })
        .rc,
    ).toBe(0);
    expect(cpuRead(w.sim, '1', BUF + 2n * PAGE, 2n * PAGE + 1n).data).toEqual(pattern(8193, 3));
    // Pins were taken and all dropped again.
    expect(eventsOf(w, 'PagesPinned').length).toBeGreaterThan(0);
    expect(Object.values(w.sim.state.pages)[0]?.npinned).toBe(0);
    expect([2, 3, 4, 5].map((i) => pinsOf(w.sim.state, pfnOf(w, i)))).toEqual([0, 0, 0, 0]);
    expect(invariantFindings(w.sim.state)).toEqual([]);
    expect(findings(w)).toEqual([]);
  });

  it('copies from a kernel thread that borrows the mm (KTHREAD flag) and from the xarray of a pinned range', () => {
    const w = world();
    accessCreate(w.sim, 'x', 'A', true);
    expect(cpuWrite(w.sim, '1', BUF, pattern(64, 2))).toBe(0);
    accessPin(w.sim, 'x', IOVA, 2n * PAGE, true);
    w.sim.current = KTHREAD;
    expect(accessRw(w.sim, 'x', IOVA + 10n, 20n, { write: false, data: null, kthread: true }).data).toEqual(
      pattern(64, 2).subarray(10, 30),
    );
    // Without the flag a kernel thread takes the slow path; the pinned pages come from the xarray.
    expect(accessRw(w.sim, 'x', IOVA + PAGE - 4n, 8n, { write: true, data: pattern(8, 4), kthread: false }).rc).toBe(0);
    expect(cpuRead(w.sim, '1', BUF + PAGE - 4n, 8n).data).toEqual(pattern(8, 4));
    expect([0, 1].map((i) => pinsOf(w.sim.state, pfnOf(w, i)))).toEqual([1, 1]);
    expect(invariantFindings(w.sim.state)).toEqual([]);
    expect(findings(w)).toEqual([]);
  });

  it('refuses length 0, a wrap, a hole, and a write to a read-only area', () => {
    const w = world(FLAG_NAMES, { write: false });
    accessCreate(w.sim, 'x', 'A', false);
    const rw = (iova: bigint, length: bigint, write: boolean) =>
      accessRw(w.sim, 'x', iova, length, { write, data: write ? new Uint8Array(Number(length)) : null, kthread: false })
        .rc;
    expect(rw(IOVA, 0n, false)).toBe(-EINVAL);
    expect(rw((1n << 64n) - 8n, 16n, false)).toBe(-EOVERFLOW);
    expect(rw(IOVA + 16n * PAGE - 8n, 16n, false)).toBe(-ENOENT);
    expect(rw(0x100n, 16n, false)).toBe(-ENOENT);
    expect(rw(IOVA, 16n, true)).toBe(-EPERM);
    expect(rw(IOVA, 16n, false)).toBe(0);
    expect(liveCallerBuffers(w.sim.state)).toEqual([]);
  });
});

describe('the event log', () => {
  it('rebuilds the live state of an access scenario', () => {
    const w = world();
    domainAttach(w.sim, 'A', 'd', { kind: 'mock' });
    accessCreate(w.sim, 'x', 'A', true);
    accessPin(w.sim, 'x', IOVA + PAGE, 5n * PAGE, true);
    accessRw(w.sim, 'x', IOVA + 100n, 10n, { write: true, data: new Uint8Array(10).fill(1), kthread: false });
    accessUnpin(w.sim, 'x', IOVA + PAGE, 5n * PAGE);
    accessDestroy(w.sim, 'x');
    const fresh = initialState();
    for (const e of w.sink.events) reduce(fresh, e);
    expect(fresh.digest).toEqual(w.sim.state.digest);
    expect(fresh).toEqual(w.sim.state);
  });
});
