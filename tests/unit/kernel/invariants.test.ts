// SPDX-License-Identifier: GPL-2.0-only
/**
 * The global invariant checker and the teardown checks. Worlds are built with the real stack (clean by
 * construction on upstream), then one invariant is broken on purpose by emitting the event a defect
 * would have emitted, and the checker must report exactly that, once, with the right kind.
 */
import { describe, expect, it } from 'vitest';
import type { Event } from '../../../src/events/events.js';
import { checkInvariants, checkTeardown, invariantFindings } from '../../../src/kernel/invariants/index.js';
import { mustHoldPinned } from '../../../src/kernel/invariants/held.js';
import { heldIndexes } from '../../../src/audit/reconcile.js';
import { domainAttach, domainDetach, ioasAlloc, ioasCopy, ioasMap, ioasUnmap } from '../../../src/kernel/ioas.js';
import { accessCreate, accessDestroy, accessPin, accessRw } from '../../../src/kernel/selftest-access.js';
import { FLAG_NAMES, isMerged } from '../../../src/kernel/variants.js';
import { kmalloc } from '../../../src/machine/heap.js';
import { mmap, vaToPfn } from '../../../src/machine/memory.js';
import { createProcess, exitProcess } from '../../../src/machine/mm.js';
import { KTHREAD, Sim } from '../../../src/machine/sim.js';
import { Emitter, MemorySink } from '../../../src/state/emit.js';
import type { State } from '../../../src/state/state.js';
import { initialState } from '../../../src/state/state.js';
import { allowStateTampering } from '../../support/tamper.js';

const PAGE = 4096n;
const BUF = 0x7f0000000000n;
const IOVA = 0x1000000n;

interface World {
  sim: Sim;
  sink: MemorySink;
  mm: number;
}

/**
 * Process "1" with 16 pages at BUF, IOAS "A" mapping them at IOVA with the given mock domains attached,
 * and access "x" holding pages 1..3. Checked clean before it is handed out.
 */
function world(domains: string[], opts: { account?: 'user' | 'mm'; pin?: boolean } = {}): World {
  const fixes = new Set(FLAG_NAMES);
  const sink = new MemorySink();
  const sim = new Sim(new Emitter(initialState(), sink), fixes, isMerged(fixes));
  createProcess(sim, '1', { uid: 1000, memlock: null, capIpcLock: false });
  const mm = sim.state.processes['1']?.mm ?? -1;
  sim.current = { pid: '1', mm };
  expect(mmap(sim, '1', BUF, 16n * PAGE, { huge: '4K', writable: true })).toBe(0);
  sim.emit({ type: 'CtxOpened', v: 1, ctx: 'c', pid: '1', account: opts.account ?? 'user', vfioType1: false });
  expect(ioasAlloc(sim, 'A', 'c')).toBe(0);
  for (const d of domains) expect(domainAttach(sim, 'A', d, { kind: 'mock' })).toBe(0);
  expect(ioasMap(sim, 'A', { uptr: BUF, length: 16n * PAGE, iova: IOVA, read: true, write: true }).rc).toBe(0);
  if (opts.pin ?? true) {
    expect(accessCreate(sim, 'x', 'A', true)).toBe(0);
    expect(accessPin(sim, 'x', IOVA + PAGE, 3n * PAGE, true).rc).toBe(0);
  }
  const w = { sim, sink, mm };
  expect(reported(w)).toEqual([]);
  return w;
}

const pfnOf = (w: World, i: number): number => vaToPfn(w.sim.state, w.mm, Number(BUF / PAGE) + i) ?? -1;
const pagesId = (s: State): number => Number(Object.keys(s.pages)[0]);
const areaId = (s: State): number => Number(Object.keys(s.areas)[0]);
const eventsOf = <T extends Event['type']>(w: World, type: T) =>
  w.sink.events.filter((e): e is Extract<Event, { type: T }> => e.type === type);

/** Run the checker; the violations it reported, as [kind, detail]. */
function reported(w: World): [string, string][] {
  const before = w.sink.events.length;
  checkInvariants(w.sim);
  return w.sink.events
    .slice(before)
    .filter((e): e is Extract<Event, { type: 'ViolationDetected' }> => e.type === 'ViolationDetected')
    .map((e) => [e.kind, e.detail]);
}

function teardownFindings(w: World): [string, string][] {
  const before = w.sink.events.length;
  checkTeardown(w.sim);
  return w.sink.events
    .slice(before)
    .filter((e): e is Extract<Event, { type: 'ViolationDetected' }> => e.type === 'ViolationDetected')
    .map((e) => [e.kind, e.detail]);
}

describe('checkInvariants on clean upstream states', () => {
  it('finds nothing through maps at page offsets, copies, two domains, accesses, rw, unmaps and detaches', () => {
    const w = world(['d1', 'd2'], { pin: false });
    const { sim } = w;
    const steps: (() => unknown)[] = [
      () => accessCreate(sim, 'x', 'A', true),
      () => accessPin(sim, 'x', IOVA + 2n * PAGE, 5n * PAGE, true),
      () => ioasAlloc(sim, 'B', 'c'),
      () => domainAttach(sim, 'B', 'e', { kind: 'mock' }),
      // B allows 2 KiB alignment (no access that pins): an area at a page offset, and a copy of A's pages.
      () => ioasMap(sim, 'B', { uptr: BUF + 0x800n, length: 3n * PAGE, iova: 0x2000800n, read: true, write: true }),
      () =>
        ioasCopy(sim, {
          src: 'A',
          dst: 'B',
          srcIova: IOVA + PAGE,
          length: 2n * PAGE,
          dstIova: 0x3000000n,
          read: true,
          write: true,
        }),
      () => accessCreate(sim, 'y', 'B', false),
      () =>
        accessRw(sim, 'y', 0x2000800n + 100n, 5000n, {
          write: true,
          data: new Uint8Array(5000).fill(3),
          kthread: false,
        }),
      () => domainDetach(sim, 'd1'),
      () => ioasUnmap(sim, 'B', { iova: 0x2000800n, length: 3n * PAGE }),
      () => ioasUnmap(sim, 'A', { all: true }),
      () => domainDetach(sim, 'd2'),
      () => accessDestroy(sim, 'x'),
      () => ioasUnmap(sim, 'B', { all: true }),
      () => domainDetach(sim, 'e'),
      () => accessDestroy(sim, 'y'),
    ];
    for (const step of steps) {
      const r = step();
      expect(typeof r === 'number' ? r : (r as { rc: number }).rc).toBe(0);
      expect(invariantFindings(sim.state)).toEqual([]);
    }
    expect(eventsOf(w, 'Warned')).toEqual([]);
    expect(teardownFindings(w)).toEqual([]);
  });

  it('finds nothing for 2 MiB pages in a generic domain with an access in the middle of one', () => {
    const fixes = new Set(FLAG_NAMES);
    const sim = new Sim(new Emitter(initialState(), new MemorySink()), fixes, isMerged(fixes));
    createProcess(sim, '1', { uid: 1000, memlock: null, capIpcLock: false });
    sim.current = { pid: '1', mm: sim.state.processes['1']?.mm ?? -1 };
    expect(mmap(sim, '1', BUF, 8n << 20n, { huge: '2M', writable: true })).toBe(0);
    sim.emit({ type: 'CtxOpened', v: 1, ctx: 'c', pid: '1', account: 'user', vfioType1: false });
    ioasAlloc(sim, 'A', 'c');
    expect(domainAttach(sim, 'A', 'g', { kind: 'generic' })).toBe(0);
    expect(ioasMap(sim, 'A', { uptr: BUF, length: 8n << 20n, iova: 1n << 32n, read: true, write: true }).rc).toBe(0);
    accessCreate(sim, 'x', 'A', true);
    expect(accessPin(sim, 'x', (1n << 32n) + (3n << 20n), 2n << 20n, true).rc).toBe(0);
    expect(invariantFindings(sim.state)).toEqual([]);
    domainDetach(sim, 'g');
    expect(invariantFindings(sim.state)).toEqual([]);
  });

  it('does not hold MM-mode pages of an exited process to a charge nobody can return', () => {
    const w = world(['d1'], { account: 'mm', pin: false });
    exitProcess(w.sim, '1');
    // Unmapped by a kernel thread: the uncharge needs mmget_not_zero on the dead mm and fails.
    w.sim.current = KTHREAD;
    expect(ioasUnmap(w.sim, 'A', { all: true }).rc).toBe(0);
    expect(w.sim.state.mms[w.mm]?.lockedVm).toBe(16);
    expect(reported(w)).toEqual([]);
    domainDetach(w.sim, 'd1');
    expect(teardownFindings(w)).toEqual([]);
  });
});

describe('checkInvariants on broken states', () => {
  it('1: reports an npinned that disagrees with the trees (charged consistently), once', () => {
    const w = world([]);
    const pages = pagesId(w.sim.state);
    w.sim.emit({ type: 'NpinnedChanged', v: 1, pages, delta: 1, fn: 'test' });
    w.sim.emit({ type: 'LastNpinnedSet', v: 1, pages, value: 4, fn: 'test' });
    w.sim.emit({
      type: 'AccountingCharged',
      v: 1,
      counter: 'user.locked_vm',
      owner: 1000,
      pages,
      delta: 1,
      fn: 'test',
    });
    w.sim.emit({ type: 'AccountingCharged', v: 1, counter: 'mm.pinned_vm', owner: w.mm, pages, delta: 1, fn: 'test' });
    expect(reported(w)).toEqual([
      ['invariant', `iopt_pages ${pages}: npinned is 4 but access_itree and domains_itree cover 3 indexes (1..3)`],
    ]);
  });

  it('1: reports a pin that no access and no filled area holds as a pin_leak, naming the index', () => {
    const w = world([]);
    const pfn = pfnOf(w, 7);
    w.sim.emit({ type: 'PagesPinned', v: 1, pfn, count: 1, fn: 'test', mm: w.mm });
    const got = reported(w);
    expect(got).toHaveLength(1);
    expect(got[0]?.[0]).toBe('pin_leak');
    expect(got[0]?.[1]).toBe(
      `1 pin on 1 page that no access or filled area holds: pfn 0x${pfn.toString(16)} (1 pin); ` +
        `iopt_pages ${pagesId(w.sim.state)} index 7 (pfn 0x${pfn.toString(16)}) is pinned but neither an access nor a filled area covers it`,
    );
  });

  it('1: reports a covered index whose pin is gone (a double unpin) as a missing pin', () => {
    const w = world(['d1']);
    const pfn = pfnOf(w, 2);
    w.sim.emit({ type: 'PagesUnpinned', v: 1, pfn, count: 1, dirty: false, fn: 'test' });
    const got = reported(w);
    expect(got.map(([k]) => k)).toEqual(['invariant']);
    expect(got[0]?.[1]).toMatch(
      new RegExp(
        `^1 pin missing on 1 page that covered indexes hold: pfn 0x${pfn.toString(16)} \\(1 pin\\); first held by iopt_pages \\d+ index 2$`,
      ),
    );
  });

  it('2: reports an xarray entry no access covers, and one missing under an access', () => {
    const w = world([]);
    const pages = pagesId(w.sim.state);
    w.sim.emit({ type: 'XaStored', v: 1, pages, index: 9, pfn: pfnOf(w, 9), count: 1 });
    expect(reported(w)).toEqual([
      [
        'invariant',
        `iopt_pages ${pages}: pinned_pfns differs from access_itree coverage: 1 entries no access covers (9)`,
      ],
    ]);
    w.sim.emit({ type: 'XaErased', v: 1, pages, index: 9, count: 1 });
    w.sim.emit({ type: 'XaErased', v: 1, pages, index: 2, count: 1 });
    expect(reported(w)).toEqual([
      [
        'invariant',
        `iopt_pages ${pages}: pinned_pfns differs from access_itree coverage: 1 accessed indexes without an entry (2)`,
      ],
    ]);
  });

  it('3: reports a counter that holds more than the pages charged, and a stale last_npinned', () => {
    const w = world([]);
    const pages = pagesId(w.sim.state);
    w.sim.emit({
      type: 'AccountingCharged',
      v: 1,
      counter: 'user.locked_vm',
      owner: 1000,
      pages: null,
      delta: 2,
      fn: 'test',
    });
    expect(reported(w)).toEqual([
      ['accounting_mismatch', 'user 1000: locked_vm is 5 pages but its pages in user accounting charged 3'],
    ]);
    w.sim.emit({
      type: 'AccountingUncharged',
      v: 1,
      counter: 'user.locked_vm',
      owner: 1000,
      pages: null,
      delta: 2,
      fn: 'test',
    });
    w.sim.emit({
      type: 'AccountingCharged',
      v: 1,
      counter: 'mm.pinned_vm',
      owner: w.mm,
      pages: null,
      delta: 1,
      fn: 'test',
    });
    expect(reported(w)).toEqual([
      ['accounting_mismatch', `mm ${w.mm} (process 1): pinned_vm is 4 pages but its pages charged 3`],
    ]);
    w.sim.emit({
      type: 'AccountingUncharged',
      v: 1,
      counter: 'mm.pinned_vm',
      owner: w.mm,
      pages: null,
      delta: 1,
      fn: 'test',
    });
    // The charge of one unpin never happened: last_npinned and the counters still say 3.
    w.sim.emit({ type: 'NpinnedChanged', v: 1, pages, delta: -1, fn: 'test' });
    w.sim.emit({ type: 'PagesUnpinned', v: 1, pfn: pfnOf(w, 3), count: 1, dirty: false, fn: 'test' });
    w.sim.emit({ type: 'XaErased', v: 1, pages, index: 3, count: 1 });
    const node = Object.values(w.sim.state.pagesAccesses)[0];
    if (node === undefined) throw new Error('no access');
    w.sim.emit({ type: 'ItreeRemoved', v: 1, tree: { kind: 'access', pages }, node: node.id, start: 1, last: 3 });
    w.sim.emit({
      type: 'ItreeInserted',
      v: 1,
      tree: { kind: 'access', pages },
      node: node.id,
      start: 1,
      last: 2,
      owner: null,
    });
    w.sim.emit({ type: 'PagesAccessFreed', v: 1, node: node.id });
    w.sim.emit({ type: 'PagesAccessAllocated', v: 1, node: node.id, pages, index: 1, last: 2 });
    w.sim.emit({ type: 'PagesAccessUsersChanged', v: 1, node: node.id, delta: 1 });
    expect(reported(w)).toEqual([
      ['accounting_mismatch', `iopt_pages ${pages}: last_npinned is 3 but npinned is 2 (user accounting)`],
    ]);
  });

  it('4: reports a domain that maps IOVA no filled area has', () => {
    const w = world(['d1']);
    w.sim.emit({
      type: 'IommuMapped',
      v: 1,
      domain: 'd1',
      extent: w.sim.newId(),
      iova: 0x4000000n,
      paddr: 0x1000n,
      size: 0x800n,
      read: true,
      write: true,
      fn: 'test',
    });
    expect(reported(w)).toEqual([
      [
        'invariant',
        "domain d1 of IOAS A does not map exactly the pages' PFNs: maps 0x4000000..0x40007ff (to phys 0x1000) where no filled area is (2048 bytes in all)",
      ],
    ]);
  });

  it('4: reports a second domain that maps a page of an area to the wrong PFN', () => {
    const w = world(['d1', 'd2']);
    const wrong = BigInt(pfnOf(w, 9)) * PAGE;
    w.sim.emit({
      type: 'IommuMapped',
      v: 1,
      domain: 'd2',
      extent: w.sim.newId(),
      iova: IOVA + 5n * PAGE,
      paddr: wrong,
      size: PAGE,
      read: true,
      write: true,
      fn: 'test',
    });
    const right = BigInt(pfnOf(w, 5)) * PAGE;
    expect(reported(w)).toEqual([
      [
        'invariant',
        `domain d2 of IOAS A does not map exactly the pages' PFNs: maps 0x${(IOVA + 5n * PAGE).toString(16)} to phys 0x${wrong.toString(16)} where the pages hold 0x${right.toString(16)} (4096 bytes in all)`,
      ],
    ]);
  });

  it('the held-pins rule counts the accesses and filled areas only, naming the domains_itree nodes that count for nothing', () => {
    const w = world(['d1']);
    const area = areaId(w.sim.state);
    const pages = pagesId(w.sim.state);
    const held = (): { runs: [number, number][]; stale: number[]; audit: number } => {
      const p = w.sim.state.pages[pages];
      if (p === undefined) throw new Error('no pages');
      const stale: number[] = [];
      return { runs: mustHoldPinned(w.sim.state, p, stale), stale, audit: heldIndexes(w.sim.state, p) };
    };
    expect(held()).toEqual({ runs: [[0, 15]], stale: [], audit: 16 });
    w.sim.emit({ type: 'AreaStorageDomainSet', v: 1, area, domain: null });
    expect(held()).toEqual({ runs: [[1, 3]], stale: [area], audit: 3 });
    w.sim.emit({
      type: 'ItreeInserted',
      v: 1,
      tree: { kind: 'domains', pages },
      node: 99999,
      start: 4,
      last: 6,
      owner: null,
    });
    expect(held()).toEqual({ runs: [[1, 3]], stale: [area, 99999], audit: 3 });
  });

  it('4: reports a filled area that lost its storage domain, a stale domains_itree node and a domain left mapped after detach', () => {
    const w = world(['d1']);
    const area = areaId(w.sim.state);
    w.sim.emit({ type: 'AreaStorageDomainSet', v: 1, area, domain: null });
    expect(reported(w)).toEqual([
      [
        'invariant',
        `area ${area} of IOAS A (1 domain): in domains_itree of iopt_pages ${pagesId(w.sim.state)}, storage domain none`,
      ],
    ]);
    w.sim.emit({ type: 'AreaStorageDomainSet', v: 1, area, domain: 'd1' });
    const pages = pagesId(w.sim.state);
    w.sim.emit({
      type: 'ItreeInserted',
      v: 1,
      tree: { kind: 'domains', pages },
      node: 99999,
      start: 4,
      last: 6,
      owner: null,
    });
    expect(reported(w)).toEqual([
      ['invariant', `domains_itree of iopt_pages ${pages} holds node 99999 [4, 6] of a freed area`],
    ]);
    w.sim.emit({ type: 'ItreeRemoved', v: 1, tree: { kind: 'domains', pages }, node: 99999, start: 4, last: 6 });
    w.sim.emit({
      type: 'DomainAllocated',
      v: 1,
      domain: 'z',
      kind: 'mock',
      pgsizes: [2048n],
      aperture: [0n, 1n << 40n],
    });
    w.sim.emit({
      type: 'IommuMapped',
      v: 1,
      domain: 'z',
      extent: w.sim.newId(),
      iova: 0x5000n,
      paddr: 0x2000n,
      size: 0x800n,
      read: true,
      write: true,
      fn: 'test',
    });
    expect(reported(w)).toEqual([
      ['invariant', 'domain z is attached to no IOAS but still maps 2048 bytes (first at 0x5000)'],
    ]);
  });

  it('5: reports num_accesses that disagrees with the pins taken through the area, and users that disagree with the areas', () => {
    const w = world([]);
    const area = areaId(w.sim.state);
    w.sim.emit({ type: 'AreaAccessesChanged', v: 1, area, delta: 1, fn: 'test' });
    expect(reported(w)).toEqual([
      ['invariant', `area ${area} of IOAS A: num_accesses is 2 but 1 access pin went through it`],
    ]);
    w.sim.emit({ type: 'AreaAccessesChanged', v: 1, area, delta: -1, fn: 'test' });
    const node = Object.values(w.sim.state.pagesAccesses)[0];
    if (node === undefined) throw new Error('no access');
    w.sim.emit({ type: 'PagesAccessUsersChanged', v: 1, node: node.id, delta: 1 });
    expect(reported(w)).toEqual([
      ['invariant', `iopt_pages ${pagesId(w.sim.state)}: its accesses have 2 users but its areas count 1 num_accesses`],
    ]);
  });

  it('reports a corrupted interval tree and xarray as itree_corruption', () => {
    allowStateTampering();
    const w = world([]);
    const p = w.sim.state.pages[pagesId(w.sim.state)];
    if (p === undefined) throw new Error('no pages');
    p.accessTree.count += 1;
    expect(reported(w)).toEqual([['itree_corruption', `access_itree of iopt_pages ${p.id}: count 2, but 1 nodes`]]);
    p.accessTree.count -= 1;
    p.xa.count += 1;
    expect(reported(w)).toEqual([
      ['itree_corruption', `pinned_pfns of iopt_pages ${p.id}: count is 4 but runs hold 3 entries`],
    ]);
  });

  it('reports a breach when it appears, not again while it persists, and again after it cleared', () => {
    const w = world([]);
    const area = areaId(w.sim.state);
    w.sim.emit({ type: 'AreaAccessesChanged', v: 1, area, delta: 1, fn: 'test' });
    expect(reported(w)).toHaveLength(1);
    expect(reported(w)).toEqual([]);
    w.sim.emit({ type: 'AreaAccessesChanged', v: 1, area, delta: 1, fn: 'test' });
    expect(reported(w).map(([, d]) => d)).toEqual([
      `area ${area} of IOAS A: num_accesses is 3 but 1 access pin went through it`,
    ]);
    w.sim.emit({ type: 'AreaAccessesChanged', v: 1, area, delta: -2, fn: 'test' });
    expect(reported(w)).toEqual([]);
    w.sim.emit({ type: 'AreaAccessesChanged', v: 1, area, delta: 1, fn: 'test' });
    expect(reported(w)).toHaveLength(1);
    expect(eventsOf(w, 'ViolationDetected').map((e) => e.fn)).toEqual(['invariants', 'invariants', 'invariants']);
  });
});

describe('checkTeardown', () => {
  /** What the replayer's teardown does: accesses, then IOASes, then domains. */
  const closeAll = (w: World): void => {
    for (const a of Object.keys(w.sim.state.accesses)) accessDestroy(w.sim, a);
    for (const io of Object.keys(w.sim.state.ioases)) ioasUnmap(w.sim, io, { all: true });
    for (const d of Object.keys(w.sim.state.domains)) domainDetach(w.sim, d);
  };

  it('finds nothing after everything was closed', () => {
    const w = world(['d1', 'd2']);
    closeAll(w);
    expect(teardownFindings(w)).toEqual([]);
    expect(reported(w)).toEqual([]);
  });

  it('finds a leaked iommufd allocation and a leaked pin, with its PFN run', () => {
    const w = world(['d1']);
    closeAll(w);
    const leak = kmalloc(w.sim, 48, { tag: 'iopt_pages_list', fn: 'iopt_get_pages' });
    if (leak === null || leak.space !== 'heap') throw new Error('kmalloc');
    kmalloc(w.sim, 16, { owner: 'caller', tag: 'not ours', fn: 'test' });
    const pfn = pfnOf(w, 4);
    w.sim.emit({ type: 'PagesPinned', v: 1, pfn, count: 1, fn: 'test', mm: w.mm });
    w.sim.emit({ type: 'PagesPinned', v: 1, pfn: pfnOf(w, 5), count: 1, fn: 'test', mm: w.mm });
    expect(teardownFindings(w)).toEqual([
      ['leak', `iopt_pages_list (48 bytes, allocation ${leak.alloc}) allocated in iopt_get_pages was never freed`],
      ['pin_leak', `pfn 0x${pfn.toString(16)} still holds 1 pin after everything was closed`],
      ['pin_leak', `pfn 0x${pfnOf(w, 5).toString(16)} still holds 1 pin after everything was closed`],
    ]);
  });

  it('finds a charge that was never returned and an iopt_pages still alive', () => {
    const w = world([], { pin: false });
    w.sim.emit({
      type: 'AccountingCharged',
      v: 1,
      counter: 'user.locked_vm',
      owner: 1000,
      pages: null,
      delta: 5,
      fn: 'test',
    });
    const got = teardownFindings(w);
    const pages = pagesId(w.sim.state);
    expect(got[0]).toEqual(['leak', `iopt_pages ${pages} (16 pages, 1 reference, npinned 0) is still allocated`]);
    expect(got.filter(([k]) => k === 'leak').map(([, d]) => d.split(' ')[0])).toEqual([`iopt_pages`, 'iopt_area']);
    expect(got.filter(([k]) => k === 'accounting_mismatch')).toEqual([
      ['accounting_mismatch', 'user 1000: locked_vm is 5 pages after everything was closed'],
    ]);
  });
});
