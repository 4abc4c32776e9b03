import { describe, expect, it } from 'vitest';
import { Immer, enablePatches } from 'immer';
import { digestHex } from '../../../src/lib/digest.js';
import { reduce } from '../../../src/state/reduce.js';
import { Cursor } from '../../../src/timetravel/cursor.js';
import { stateAt } from '../../../src/timetravel/state-at.js';
import { BadRangeError } from '../../../src/lib/errors.js';
import { FIRST_PFN } from '../../../src/state/state.js';
import { scriptedRun, ids } from '../../support/recorded-runs.js';

enablePatches();
const immer = new Immer({ autoFreeze: false });

const run = scriptedRun({ snapshotEvery: 16 });
const ops = await run.source.ops(0, run.source.opCount() - 1);

describe('Cursor', () => {
  it('steps forward through every op, reaching the live state after each', async () => {
    const c = await Cursor.open(run.source, -1);
    expect(c.state).toEqual(run.live[0]);
    for (const span of ops) {
      const step = await c.forward();
      expect(step?.op).toBe(span.index);
      expect(c.op).toBe(span.index);
      expect(c.seq).toBe(span.lastSeq);
      expect(c.state, `op ${span.index}`).toEqual(run.live[span.lastSeq]);
    }
    expect(await c.forward()).toBeNull();
  });

  it('checks every step: patches turn before into after and inverse patches turn after into before', async () => {
    const c = await Cursor.open(run.source, -1);
    for (;;) {
      const before = structuredClone(c.state);
      const step = await c.forward();
      if (step === null) break;
      const after = structuredClone(c.state);
      expect(immer.applyPatches(structuredClone(before), step.patches)).toEqual(after);
      expect(immer.applyPatches(structuredClone(after), step.inversePatches)).toEqual(before);
    }
  });

  it('steps back to exactly the previous state by inverse patches, all the way to seq 0', async () => {
    const c = await Cursor.open(run.source, -1);
    while ((await c.forward()) !== null);
    for (let op = ops.length - 1; op >= 0; op--) {
      const step = await c.back();
      expect(step?.direction).toBe('back');
      expect(step?.op).toBe(op);
      const span = ops[op];
      expect(c.state, `before op ${op}`).toEqual(run.live[(span?.firstSeq ?? 1) - 1]);
    }
    expect(c.op).toBe(-1);
    expect(await c.back()).toBeNull();
  });

  it('steps back from a freshly opened cursor (no history) and forward again', async () => {
    const c = await Cursor.open(run.source, 10);
    expect(c.state).toEqual(run.live[ops[10]?.lastSeq ?? 0]);
    for (let i = 0; i < 4; i++) await c.back();
    expect(c.op).toBe(6);
    expect(c.state).toEqual(run.live[ops[6]?.lastSeq ?? 0]);
    for (let i = 0; i < 4; i++) await c.forward();
    expect(c.state).toEqual(run.live[ops[10]?.lastSeq ?? 0]);
    expect(digestHex(c.state.digest)).toBe(ops[10]?.digest);
  });

  it('leaves the states it stepped over untouched (no auto-freeze, no mutation of the base)', async () => {
    const c = await Cursor.open(run.source, 2);
    const base = c.state;
    const copy = structuredClone(base);
    await c.forward();
    expect(base).toEqual(copy);
    expect(Object.isFrozen(c.state)).toBe(false);
    // A produced state can be reduced in place by the bulk path.
    reduce(c.state, { type: 'Warned', v: 1, fn: 'f', condition: 'c', objects: {} });
    expect(c.state.counts.warns).toBe(1);
  });

  it('summarises a map op as the differences it made', async () => {
    const c = await Cursor.open(run.source, 2);
    const step = await c.forward();
    const { pages, area, heap } = ids(0);
    expect(step?.summary).toEqual([
      'next object id: 2 -> 104',
      'ops done: 3 -> 4',
      'users 1000 locked_vm: 0 -> 64',
      `frames pfn ${'0x' + FIRST_PFN.toString(16)}..0x4003f pins: 0 -> 1`,
      `heap ${heap}: (none) -> {id ${heap}, size 192, owner iommufd, tag iopt_area, fn iopt_area_alloc}`,
      'ioases i1 area_itree node 101: (none) -> {start 0x1000000, last 0x103ffff}',
      `pages ${pages}: (none) -> {id ${pages}, refs 1, npages 64, npinned 64, last_npinned 64, uptr 0x100000, writable yes, account_mode user, source_task p1, source_mm 1, source_user 1000}`,
      `pages ${pages} domains_itree node ${area}: (none) -> {start 0, last 63}`,
      `pages ${pages} pinned_pfns index 0..63: (none) -> pfn 0x40000..0x4003f`,
      `areas ${area}: (none) -> {id ${area}, ioas i1, iova 0x1000000, last_iova 0x103ffff, page_offset 0, pages_node.start 0, pages_node.last 63, read yes, write yes, pages ${pages}, storage_domain d1, num_accesses 0, prevent_access no}`,
      'domains d1 mapped bytes: 0x0 -> 0x40000',
      'domains d1 mappings iova 0x1000000..0x103ffff: (none) -> {paddr 0x40000000, size 0x40000, pgsize 0x1000, read yes, write yes, extent 103, start flag yes, last flag yes}',
    ]);
  });

  it('refuses an op outside the run', async () => {
    await expect(Cursor.open(run.source, 25)).rejects.toThrow(
      new BadRangeError('op 25 is outside the run (-1..24)', 'op', 25, -1, 24),
    );
  });

  it('seeks to any op and keeps stepping from there', async () => {
    const c = await Cursor.open(run.source, 0);
    await c.seek(20);
    expect(c.state).toEqual(await stateAt(run.source, ops[20]?.lastSeq ?? 0));
    await c.back();
    expect(c.state).toEqual(run.live[ops[19]?.lastSeq ?? 0]);
  });
});
