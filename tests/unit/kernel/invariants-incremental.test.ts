// SPDX-License-Identifier: GPL-2.0-only
/**
 * The incremental invariant checker against the full one, on worlds built with the real stack and broken
 * on purpose by the events a defect would emit: the same findings after every step, found by the ranges the
 * step touched (the walk counters show when a whole walk ran), including findings on objects the step's
 * events never named.
 */
import { describe, expect, it } from 'vitest';
import type { Event } from '../../../src/events/events.js';
import { firstDifference } from '../../../src/kernel/invariants/checker.js';
import { IncrementalChecker } from '../../../src/kernel/invariants/incremental.js';
import { invariantFindings } from '../../../src/kernel/invariants/index.js';
import type { InvariantFinding } from '../../../src/kernel/invariants/finding.js';
import type { Area, PagesAccess } from '../../../src/state/state.js';
import { domainAttach, ioasAlloc, ioasMap, ioasUnmap } from '../../../src/kernel/ioas.js';
import { accessCreate, accessPin, accessUnpin } from '../../../src/kernel/selftest-access.js';
import { FLAG_NAMES, isMerged } from '../../../src/kernel/variants.js';
import { mmap, vaToPfn } from '../../../src/machine/memory.js';
import { createProcess } from '../../../src/machine/mm.js';
import { Sim } from '../../../src/machine/sim.js';
import type { EventSink } from '../../../src/state/emit.js';
import { Emitter } from '../../../src/state/emit.js';
import { initialState } from '../../../src/state/state.js';
import { BadInputError, CheckerDivergence } from '../../../src/lib/errors.js';
import { checkModeFromEnv, replay } from '../../../src/replay/replayer.js';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { shippedTrace } from '../../support/differential.js';

const PAGE = 4096n;
const BUF = 0x7f0000000000n;
const IOVA = 0x1000000n;

/** Feeds every event to the incremental checker, as the replayer does. */
class Tap implements EventSink {
  constructor(readonly inc: IncrementalChecker) {}
  accept(event: Event): void {
    this.inc.observe(event);
  }
}

interface World {
  sim: Sim;
  inc: IncrementalChecker;
  mm: number;
}

/** 16 pages at BUF mapped at IOVA in IOAS A with mock domains d1 (storage) and d2, and access x on pages 1..3. */
function world(): World {
  const inc = new IncrementalChecker();
  const fixes = new Set(FLAG_NAMES);
  const sim = new Sim(new Emitter(initialState(), new Tap(inc)), fixes, isMerged(fixes));
  createProcess(sim, '1', { uid: 1000, memlock: null, capIpcLock: false });
  const mm = sim.state.processes['1']?.mm ?? -1;
  sim.current = { pid: '1', mm };
  expect(mmap(sim, '1', BUF, 16n * PAGE, { huge: '4K', writable: true })).toBe(0);
  sim.emit({ type: 'CtxOpened', v: 1, ctx: 'c', pid: '1', account: 'user', vfioType1: false });
  expect(ioasAlloc(sim, 'A', 'c')).toBe(0);
  expect(domainAttach(sim, 'A', 'd1', { kind: 'mock' })).toBe(0);
  expect(domainAttach(sim, 'A', 'd2', { kind: 'mock' })).toBe(0);
  expect(ioasMap(sim, 'A', { uptr: BUF, length: 16n * PAGE, iova: IOVA, read: true, write: true }).rc).toBe(0);
  expect(accessCreate(sim, 'x', 'A', true)).toBe(0);
  expect(accessPin(sim, 'x', IOVA + PAGE, 3n * PAGE, true).rc).toBe(0);
  const w = { sim, inc, mm };
  expect(step(w)).toEqual([]);
  return w;
}

/** Check after a step: both checkers must give the same list; its keys. */
function step(w: World): string[] {
  const mine = w.inc.findings(w.sim.state);
  const oracle = invariantFindings(w.sim.state);
  expect(mine).toEqual(oracle);
  return mine.map((f) => f.key);
}

const pfnOf = (w: World, i: number): number => vaToPfn(w.sim.state, w.mm, Number(BUF / PAGE) + i) ?? -1;
const pagesId = (w: World): number => Number(Object.keys(w.sim.state.pages)[0]);

describe('IncrementalChecker', () => {
  it('checks a sound access pin and unpin by their ranges: no whole walk', () => {
    const w = world();
    const before = { ...w.inc.walks };
    expect(accessPin(w.sim, 'x', IOVA + 8n * PAGE, 4n * PAGE, true).rc).toBe(0);
    expect(step(w)).toEqual([]);
    expect(accessUnpin(w.sim, 'x', IOVA + 8n * PAGE, 4n * PAGE)).toBe(0);
    expect(step(w)).toEqual([]);
    expect(w.inc.walks).toEqual(before);
  });

  it('takes the own checks of a pages no event touched from what it found last time, and redoes them once one does', () => {
    const w = world();
    // A second iopt_pages: 16 more pages of the process at another IOVA; the access pins stay on the first.
    const buf2 = BUF + 64n * PAGE;
    expect(mmap(w.sim, '1', buf2, 16n * PAGE, { huge: '4K', writable: true })).toBe(0);
    expect(
      ioasMap(w.sim, 'A', { uptr: buf2, length: 16n * PAGE, iova: IOVA + 64n * PAGE, read: true, write: true }).rc,
    ).toBe(0);
    expect(step(w)).toEqual([]);
    const [first, second] = Object.keys(w.sim.state.pages).map(Number);
    expect(second).toBeDefined();
    const reused = w.inc.reused.pages;
    expect(accessPin(w.sim, 'x', IOVA + 8n * PAGE, 4n * PAGE, true).rc).toBe(0);
    expect(step(w)).toEqual([]);
    expect(w.inc.reused.pages).toBe(reused + 1); // the second pages only
    // A stale pinned_pfns entry in the second pages, emitted as a defect would: found at once, as the oracle finds it.
    w.sim.emit({ type: 'XaStored', v: 1, pages: second as number, index: 5, pfn: 0x1234, count: 1 });
    const keys = step(w);
    expect(keys).toContain(`xarray:${second}`);
    expect(keys).not.toContain(`xarray:${first}`);
    expect(w.inc.reused.pages).toBe(reused + 2); // the first pages, untouched by that event
    // Untouched again: the finding is kept from the memo, word for word the oracle's.
    expect(accessUnpin(w.sim, 'x', IOVA + 8n * PAGE, 4n * PAGE)).toBe(0);
    expect(step(w)).toEqual(keys);
    expect(w.inc.reused.pages).toBe(reused + 3);
  });

  it('reports a pin leak introduced by one step and clears it when another step releases the pin', () => {
    const w = world();
    const pfn = pfnOf(w, 7); // covered by the domains: its one pin is theirs
    w.sim.emit({ type: 'PagesPinned', v: 1, pfn, count: 1, fn: 'test', mm: w.mm });
    expect(step(w)).toEqual(['pins:surplus']);
    // Still there after an unrelated step, with a whole walk (it is broken, so its text is rebuilt).
    const pinsWalks = w.inc.walks.pins;
    expect(accessPin(w.sim, 'x', IOVA + 10n * PAGE, PAGE, true).rc).toBe(0);
    expect(step(w)).toEqual(['pins:surplus']);
    expect(w.inc.walks.pins).toBe(pinsWalks + 1);
    w.sim.emit({ type: 'PagesUnpinned', v: 1, pfn, count: 1, dirty: false, fn: 'test' });
    expect(step(w)).toEqual([]);
  });

  it('finds what a storage domain remap does to the other domain and to the pins (objects the events never named)', () => {
    const w = world();
    const iova = IOVA + 12n * PAGE;
    const wrong = BigInt(pfnOf(w, 0)) * PAGE;
    // Only d1, the storage domain, is named: index 12 now reads a different PFN from it.
    w.sim.emit({
      type: 'IommuUnmapped',
      v: 1,
      domain: 'd1',
      iova,
      size: PAGE,
      unmapped: PAGE,
      removed: [[iova, PAGE]],
      fn: 'test',
    });
    w.sim.emit({
      type: 'IommuMapped',
      v: 1,
      domain: 'd1',
      extent: 999,
      iova,
      paddr: wrong,
      size: PAGE,
      read: true,
      write: true,
      fn: 'test',
    });
    expect(step(w)).toEqual(['pins:surplus', 'pins:deficit', 'mappings:A:d2']);
    // Put back: everything clears.
    w.sim.emit({
      type: 'IommuUnmapped',
      v: 1,
      domain: 'd1',
      iova,
      size: PAGE,
      unmapped: PAGE,
      removed: [[iova, PAGE]],
      fn: 'test',
    });
    w.sim.emit({
      type: 'IommuMapped',
      v: 1,
      domain: 'd1',
      extent: 1000,
      iova,
      paddr: BigInt(pfnOf(w, 12)) * PAGE,
      size: PAGE,
      read: true,
      write: true,
      fn: 'test',
    });
    expect(step(w)).toEqual([]);
  });

  it('finds a user counter broken by a charge that names no pages, and a stale xarray entry', () => {
    const w = world();
    w.sim.emit({
      type: 'AccountingCharged',
      v: 1,
      counter: 'user.locked_vm',
      owner: 1000,
      pages: null,
      delta: 2,
      fn: 'test',
    });
    expect(step(w)).toEqual(['user.locked_vm:1000']);
    w.sim.emit({ type: 'XaStored', v: 1, pages: pagesId(w), index: 9, pfn: pfnOf(w, 9), count: 1 });
    expect(step(w)).toEqual(['xarray:' + String(pagesId(w)), 'user.locked_vm:1000']);
    w.sim.emit({ type: 'XaErased', v: 1, pages: pagesId(w), index: 9, count: 1 });
    w.sim.emit({
      type: 'AccountingUncharged',
      v: 1,
      counter: 'user.locked_vm',
      owner: 1000,
      pages: null,
      delta: 2,
      fn: 'test',
    });
    expect(step(w)).toEqual([]);
  });

  it('keeps the accounting and mapping findings over access ops, and redoes them once a PFN or a counter moves', () => {
    const w = world();
    const iova = IOVA + 14n * PAGE;
    // d2 alone loses a page (a mappings finding) and the user counter is overcharged (an accounting one).
    w.sim.emit({
      type: 'IommuUnmapped',
      v: 1,
      domain: 'd2',
      iova,
      size: PAGE,
      unmapped: PAGE,
      removed: [[iova, PAGE]],
      fn: 'test',
    });
    w.sim.emit({
      type: 'AccountingCharged',
      v: 1,
      counter: 'user.locked_vm',
      owner: 1000,
      pages: null,
      delta: 1,
      fn: 'test',
    });
    const broken = step(w);
    expect(broken).toEqual(['user.locked_vm:1000', 'mappings:A:d2']);
    // Access ops touch neither check's inputs: both findings come from what was kept, as the oracle gives them.
    const reused = w.inc.reused.objects;
    expect(accessPin(w.sim, 'x', IOVA + 8n * PAGE, 4n * PAGE, true).rc).toBe(0);
    expect(step(w)).toEqual(broken);
    expect(accessUnpin(w.sim, 'x', IOVA + 8n * PAGE, 4n * PAGE)).toBe(0);
    expect(step(w)).toEqual(broken);
    expect(w.inc.reused.objects).toBe(reused + 2);
    // A stale xarray entry changes the PFN the pages hold at index 5: the domains are compared again there.
    w.sim.emit({ type: 'XaStored', v: 1, pages: pagesId(w), index: 5, pfn: pfnOf(w, 9), count: 1 });
    expect(step(w)).toContain('mappings:A:d1');
    expect(w.inc.reused.objects).toBe(reused + 2);
    w.sim.emit({ type: 'XaErased', v: 1, pages: pagesId(w), index: 5, count: 1 });
    w.sim.emit({
      type: 'AccountingUncharged',
      v: 1,
      counter: 'user.locked_vm',
      owner: 1000,
      pages: null,
      delta: 1,
      fn: 'test',
    });
    expect(step(w)).toEqual(['mappings:A:d2']);
  });

  it('follows an unmap of the whole IOAS and a second map', () => {
    const w = world();
    expect(accessUnpin(w.sim, 'x', IOVA + PAGE, 3n * PAGE)).toBe(0);
    expect(step(w)).toEqual([]);
    expect(ioasUnmap(w.sim, 'A', { all: true }).rc).toBe(0);
    expect(step(w)).toEqual([]);
    expect(
      ioasMap(w.sim, 'A', { uptr: BUF + 4n * PAGE, length: 8n * PAGE, iova: IOVA, read: true, write: true }).rc,
    ).toBe(0);
    expect(step(w)).toEqual([]);
  });
});

describe('IncrementalChecker, invariant 5 and the IOAS-level self-checks from what it kept', () => {
  const areaOf = (w: World): Area => Object.values(w.sim.state.areas)[0] as Area;
  const recordOf = (w: World): PagesAccess => Object.values(w.sim.state.pagesAccesses)[0] as PagesAccess;

  it('follows an area count broken and mended, and an item over IOVA no area maps', () => {
    const w = world();
    const area = areaOf(w).id;
    w.sim.emit({ type: 'AreaAccessesChanged', v: 1, area, delta: 1, fn: 'test' });
    // The pages' own sum is not reported again while its area's count is.
    expect(step(w)).toEqual([`num_accesses:${area}`]);
    w.sim.emit({ type: 'AreaLocksChanged', v: 1, area, delta: 1, fn: 'test' });
    expect(step(w)).toEqual([`num_locks:${area}`, `num_accesses:${area}`]);
    w.sim.emit({ type: 'AreaAccessesChanged', v: 1, area, delta: -1, fn: 'test' });
    expect(step(w)).toEqual([`num_locks:${area}`]);
    w.sim.emit({ type: 'AreaLocksChanged', v: 1, area, delta: -1, fn: 'test' });
    expect(step(w)).toEqual([]);
    w.sim.emit({ type: 'AccessItemAdded', v: 1, access: 'x', item: 9998, iova: IOVA + 64n * PAGE, length: PAGE });
    expect(step(w)).toEqual(['item-unmapped:x:9998']);
    // An item inside the area: one pin more than num_accesses counts.
    w.sim.emit({ type: 'AccessItemAdded', v: 1, access: 'x', item: 9997, iova: IOVA + 9n * PAGE, length: PAGE });
    expect(step(w)).toEqual(['item-unmapped:x:9998', `num_accesses:${area}`]);
    w.sim.emit({ type: 'AccessItemRemoved', v: 1, access: 'x', item: 9998 });
    expect(step(w)).toEqual([`num_accesses:${area}`]);
    w.sim.emit({ type: 'AccessItemRemoved', v: 1, access: 'x', item: 9997 });
    expect(step(w)).toEqual([]);
  });

  it("follows a pages' access records against its access_itree and its areas' counts", () => {
    const w = world();
    const p = pagesId(w);
    const n = recordOf(w);
    const tree = { kind: 'access' as const, pages: p };
    w.sim.emit({ type: 'PagesAccessUsersChanged', v: 1, node: n.id, delta: -1 });
    expect(step(w)).toEqual([`accesses:${p}`]);
    // Still broken, in other words: the text follows.
    w.sim.emit({ type: 'PagesAccessUsersChanged', v: 1, node: n.id, delta: 2 });
    expect(step(w)).toEqual([`accesses:${p}`]);
    w.sim.emit({ type: 'PagesAccessUsersChanged', v: 1, node: n.id, delta: -1 });
    expect(step(w)).toEqual([]);
    w.sim.emit({ type: 'ItreeRemoved', v: 1, tree, node: n.id, start: n.index, last: n.last });
    expect(step(w)).toEqual([`xarray:${p}`, `accesses:${p}`]);
    w.sim.emit({ type: 'ItreeInserted', v: 1, tree, node: n.id, start: n.index, last: n.last, owner: null });
    expect(step(w)).toEqual([]);
    // A record of no users outside the tree, then in it, then a node whose record is gone.
    w.sim.emit({ type: 'PagesAccessAllocated', v: 1, node: 9999, pages: p, index: 1, last: 2 });
    expect(step(w)).toEqual([`accesses:${p}`]);
    w.sim.emit({ type: 'ItreeInserted', v: 1, tree, node: 9999, start: 1, last: 2, owner: null });
    expect(step(w)).toEqual([`accesses:${p}`]);
    w.sim.emit({ type: 'PagesAccessFreed', v: 1, node: 9999 });
    expect(step(w)).toEqual([`accesses:${p}`]);
    w.sim.emit({ type: 'ItreeRemoved', v: 1, tree, node: 9999, start: 1, last: 2 });
    expect(step(w)).toEqual([]);
    // A sound pin after all that: answered from the records it named.
    expect(accessPin(w.sim, 'x', IOVA + 8n * PAGE, 4n * PAGE, true).rc).toBe(0);
    expect(step(w)).toEqual([]);
  });

  it("updates a pages' coverage over the touched windows, while npinned and pinned_pfns are off and once they mend", () => {
    const w = world();
    const p = pagesId(w);
    const a = areaOf(w);
    const domains = { kind: 'domains' as const, pages: p };
    // The area's node leaves domains_itree: the coverage is the access's alone, and follows its pins.
    w.sim.emit({ type: 'ItreeRemoved', v: 1, tree: domains, node: a.id, start: a.firstIndex, last: a.lastIndex });
    expect(step(w)).toContain(`npinned:${p}`);
    expect(accessPin(w.sim, 'x', IOVA + 8n * PAGE, 2n * PAGE, true).rc).toBe(0);
    expect(step(w)).toContain(`npinned:${p}`);
    expect(accessPin(w.sim, 'x', IOVA + 4n * PAGE, 4n * PAGE, true).rc).toBe(0);
    expect(step(w)).toContain(`npinned:${p}`);
    w.sim.emit({ type: 'NpinnedChanged', v: 1, pages: p, delta: -1, fn: 'test' });
    expect(step(w)).toContain(`npinned:${p}`);
    w.sim.emit({ type: 'XaErased', v: 1, pages: p, index: 5, count: 1 });
    expect(step(w)).toContain(`xarray:${p}`);
    w.sim.emit({ type: 'XaStored', v: 1, pages: p, index: 5, pfn: pfnOf(w, 5), count: 1 });
    w.sim.emit({ type: 'NpinnedChanged', v: 1, pages: p, delta: 1, fn: 'test' });
    w.sim.emit({
      type: 'ItreeInserted',
      v: 1,
      tree: domains,
      node: a.id,
      start: a.firstIndex,
      last: a.lastIndex,
      owner: null,
    });
    // The pins taken meanwhile moved npinned as the model does: whatever is left, the oracle's findings.
    expect(step(w)).not.toContain(`xarray:${p}`);
    expect(accessUnpin(w.sim, 'x', IOVA + 4n * PAGE, 4n * PAGE)).toBe(0);
    step(w);
  });

  it('keeps the IOAS-level self-checks while no event touches an area_itree, and redoes them once one does', () => {
    const w = world();
    const a = areaOf(w);
    expect(accessPin(w.sim, 'x', IOVA + 8n * PAGE, 4n * PAGE, true).rc).toBe(0);
    expect(step(w)).toEqual([]);
    const reused = w.inc.reused.layout;
    expect(accessUnpin(w.sim, 'x', IOVA + 8n * PAGE, 4n * PAGE)).toBe(0);
    expect(step(w)).toEqual([]);
    expect(w.inc.reused.layout).toBe(reused + 1);
    const tree = { kind: 'area' as const, ioas: 'A' };
    w.sim.emit({ type: 'ItreeRemoved', v: 1, tree, node: a.id, start: a.iova, last: a.lastIova });
    const keys = step(w);
    expect(keys).toContain(`area-orphan:${a.id}`);
    expect(w.inc.reused.layout).toBe(reused + 1);
    // An event elsewhere: the finding is kept, word for word the oracle's.
    w.sim.emit({ type: 'AreaLocksChanged', v: 1, area: a.id, delta: 1, fn: 'test' });
    const next = step(w);
    expect(next.filter((k) => k !== `num_locks:${a.id}`)).toEqual(keys);
    expect(next).toContain(`num_locks:${a.id}`);
    expect(w.inc.reused.layout).toBe(reused + 2);
    w.sim.emit({ type: 'AreaLocksChanged', v: 1, area: a.id, delta: -1, fn: 'test' });
    w.sim.emit({ type: 'ItreeInserted', v: 1, tree, node: a.id, start: a.iova, last: a.lastIova, owner: null });
    expect(step(w)).toEqual([]);
  });
});

describe('check modes of the replayer', () => {
  it('give the same findings, teardown ones included, on a trace whose v3 run leaks (access_domain_destory)', async () => {
    const trace = await shippedTrace('replays/selftest/iommufd_ioas.access_domain_destory.jsonl');
    const { fixes } = resolveVariant('v3');
    const runs = (['full', 'incremental', 'differential'] as const).map((check) =>
      replay(trace, { variant: 'v3', fixes, check }),
    );
    const [full, incremental, differential] = runs.map((r) => ({
      digest: r.digest,
      findings: r.violations.map((v) => `${v.op} ${v.fn} ${v.kind}: ${v.detail}`),
    }));
    expect(incremental).toEqual(full);
    expect(differential).toEqual(full);
    expect(full?.findings.filter((f) => f.includes(' teardown '))).toHaveLength(3);
    expect(full?.findings.filter((f) => f.includes(' invariants '))).toHaveLength(10);
  });

  it('reads IOPTRACE_CHECK, refusing an unknown value by name', () => {
    expect(checkModeFromEnv({})).toBe('incremental');
    expect(checkModeFromEnv({ IOPTRACE_CHECK: '' })).toBe('incremental');
    expect(checkModeFromEnv({ IOPTRACE_CHECK: 'full' })).toBe('full');
    expect(checkModeFromEnv({ IOPTRACE_CHECK: 'differential' })).toBe('differential');
    expect(() => checkModeFromEnv({ IOPTRACE_CHECK: 'fast' })).toThrow(BadInputError);
    expect(() => checkModeFromEnv({ IOPTRACE_CHECK: 'fast' })).toThrow(
      'IOPTRACE_CHECK is "fast"; expected one of incremental, full, differential',
    );
  });

  it('names the op, the finding and both answers of a divergence', () => {
    const f = (key: string, detail: string): InvariantFinding => ({ key, kind: 'invariant', detail, objects: {} });
    expect(firstDifference([f('a', 'x')], [f('a', 'x')])).toBeNull();
    const diff = firstDifference([f('a', 'x')], [f('a', 'x'), f('b', 'y')]);
    expect(diff).toEqual({ key: 'b', incremental: null, full: '{"kind":"invariant","detail":"y","objects":{}}' });
    const err = new CheckerDivergence(7, 'b', diff?.incremental ?? null, diff?.full ?? null);
    expect(err.message).toBe(
      'the incremental invariant checker diverges from the full one after op 7 on finding b: incremental (none); ' +
        'full {"kind":"invariant","detail":"y","objects":{}}',
    );
  });
});
