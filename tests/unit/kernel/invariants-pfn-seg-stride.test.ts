// SPDX-License-Identifier: GPL-2.0-only
/**
 * PFN segments with a step: pushSeg against a per-page reference (the PFNs it holds, the contiguous runs
 * the segments had before they had a step, and how few segments a stepped row takes), then the
 * incremental checker against the full one on a guest of 4 KiB pages whose frames are never adjacent:
 * the same findings after every op, a corruption both find, and one segment for the whole guest.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_GUEST, Rng, guestTrace } from '../../../bench/generate.js';
import type { Event } from '../../../src/events/events.js';
import type { PfnSeg } from '../../../src/kernel/invariants/held.js';
import { forEachContiguous, pushSeg } from '../../../src/kernel/invariants/held.js';
import { IncrementalChecker } from '../../../src/kernel/invariants/incremental.js';
import { invariantFindings } from '../../../src/kernel/invariants/index.js';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { replay } from '../../../src/replay/replayer.js';
import type { EventSink } from '../../../src/state/emit.js';
import { Emitter } from '../../../src/state/emit.js';
import type { State } from '../../../src/state/state.js';
import { initialState } from '../../../src/state/state.js';
import { mappingAt } from '../../../src/structures/mapping-table.js';

/** One page: its index, its PFN (null: none known) and whether the PFN is authoritative. */
type Page = [number, number | null, boolean];

const seg = (index: number, count: number, pfn: number | null, step: number, known = true): PfnSeg => ({
  index,
  count,
  pfn,
  step,
  known,
});

function pagesOf(segs: readonly PfnSeg[]): Page[] {
  const out: Page[] = [];
  for (const s of segs)
    for (let i = 0; i < s.count; i++) out.push([s.index + i, s.pfn === null ? null : s.pfn + i * s.step, s.known]);
  return out;
}

/** The segments pages were cut in before segments had a step: runs of PFNs one apart (or all null). */
function contiguousReference(pages: readonly Page[]): [number, number, number | null, boolean][] {
  const out: [number, number, number | null, boolean][] = [];
  for (const [index, pfn, known] of pages) {
    const prev = out[out.length - 1];
    if (
      prev !== undefined &&
      prev[3] === known &&
      prev[0] + prev[1] === index &&
      (prev[2] === null ? pfn === null : pfn === prev[2] + prev[1])
    )
      prev[1] += 1;
    else out.push([index, 1, pfn, known]);
  }
  return out;
}

function contiguousOf(segs: readonly PfnSeg[]): [number, number, number | null, boolean][] {
  const out: [number, number, number | null, boolean][] = [];
  forEachContiguous(segs, (index, count, pfn, known) => out.push([index, count, pfn, known]));
  return out;
}

function pushAll(segs: readonly PfnSeg[]): PfnSeg[] {
  const out: PfnSeg[] = [];
  for (const s of segs) pushSeg(out, { ...s });
  return out;
}

/** Pages as blocks: contiguous runs, stepped rows (steps 2, 3, -1, 0, 7), runs without PFN, hints, gaps. */
function randomPages(rng: Rng): Page[] {
  const pages: Page[] = [];
  let index = rng.int(0, 3);
  let pfn = 1000;
  for (let b = rng.int(1, 12); b > 0; b--) {
    const n = rng.int(1, 6);
    const kind = rng.int(0, 5);
    const known = rng.int(0, 3) > 0;
    const step = [1, 2, 3, -1, 0, 7][kind] as number;
    if (rng.int(0, 4) === 0) {
      for (let i = 0; i < n; i++) pages.push([index++, null, known]);
      continue;
    }
    // The next block may continue the last page's PFN by one, by its step, or jump.
    pfn += [1, step, rng.int(5, 40)][rng.int(0, 2)] as number;
    for (let i = 0; i < n; i++) pages.push([index++, pfn + i * step, known]);
    pfn += (n - 1) * step;
    if (rng.int(0, 5) === 0) index += rng.int(1, 3);
  }
  return pages;
}

/** `pages` pushed as segments of random length, each a valid row (one step, one `known`, adjacent indexes). */
function pushedInPieces(pages: readonly Page[], rng: Rng): PfnSeg[] {
  const out: PfnSeg[] = [];
  let k = 0;
  while (k < pages.length) {
    const [index, pfn, known] = pages[k] as Page;
    const next = pages[k + 1];
    const step = next === undefined || pfn === null || next[1] === null || next[0] !== index + 1 ? 1 : next[1] - pfn;
    let n = 1;
    const most = rng.int(1, 5);
    while (n < most && k + n < pages.length) {
      const [i2, p2, k2] = pages[k + n] as Page;
      if (i2 !== index + n || k2 !== known || (pfn === null) !== (p2 === null)) break;
      if (pfn !== null && p2 !== pfn + n * step) break;
      n++;
    }
    pushSeg(out, seg(index, n, pfn, n === 1 ? 1 : step, known));
    k += n;
  }
  return out;
}

describe('pushSeg on rows of pages in arithmetic progression', () => {
  it('keeps a stepped row in one segment (steps 2, 3, -1), as many pages as it has', () => {
    const row = (first: number, step: number, n: number): PfnSeg[] =>
      Array.from({ length: n }, (_, i) => seg(10 + i, 1, first + i * step, 1));
    expect(pushAll(row(100, 2, 8))).toEqual([seg(10, 8, 100, 2)]);
    expect(pushAll(row(100, 3, 5))).toEqual([seg(10, 5, 100, 3)]);
    expect(pushAll(row(50, -1, 4))).toEqual([seg(10, 4, 50, -1)]);
  });

  it('leaves contiguous runs what they were: a stepped row gives up a page that a run continues', () => {
    // 10 13 16 17 18 25 28: 16 starts the run 16..18, though it continues the step of 10, 13.
    const pfns = [10, 13, 16, 17, 18, 25, 28];
    const out = pushAll(pfns.map((p, i) => seg(i, 1, p, 1)));
    expect(out).toEqual([seg(0, 2, 10, 3), seg(2, 3, 16, 1), seg(5, 2, 25, 3)]);
    expect(contiguousOf(out)).toEqual([
      [0, 1, 10, true],
      [1, 1, 13, true],
      [2, 3, 16, true],
      [5, 1, 25, true],
      [6, 1, 28, true],
    ]);
    // Whole segments: a stepped row then a run its last page starts, and a run then a row it continues.
    expect(pushAll([seg(0, 3, 10, 2), seg(3, 2, 15, 1)])).toEqual([seg(0, 2, 10, 2), seg(2, 3, 14, 1)]);
    expect(pushAll([seg(0, 2, 5, 1), seg(2, 3, 7, 2)])).toEqual([seg(0, 3, 5, 1), seg(3, 2, 9, 2)]);
    // A row whose step another row continues with its own step: two rows.
    expect(pushAll([seg(0, 3, 10, 2), seg(3, 3, 16, 3)])).toEqual([seg(0, 3, 10, 2), seg(3, 3, 16, 3)]);
    expect(pushAll([seg(0, 3, 10, 2), seg(3, 3, 16, 2)])).toEqual([seg(0, 6, 10, 2)]);
  });

  it('groups pages without PFN and hints apart from known PFNs', () => {
    const out = pushAll([
      seg(0, 2, null, 1, false),
      seg(2, 1, null, 1, false),
      seg(3, 1, 7, 1, false),
      seg(4, 1, 9, 1, false),
      seg(5, 1, 11, 1, true),
      seg(6, 1, 13, 1, true),
      seg(8, 1, 15, 1, true),
    ]);
    expect(out).toEqual([
      seg(0, 3, null, 1, false),
      seg(3, 2, 7, 2, false),
      seg(5, 2, 11, 2, true),
      seg(8, 1, 15, 1, true),
    ]);
  });

  it('holds the PFNs of every page and cuts the same contiguous runs as before, however the pages come', () => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 400; trial++) {
      const pages = randomPages(rng);
      const reference = contiguousReference(pages);
      const onePerPage = pushAll(pages.map(([index, pfn, known]) => seg(index, 1, pfn, 1, known)));
      for (const out of [onePerPage, pushedInPieces(pages, rng)]) {
        expect(pagesOf(out)).toEqual(pages);
        expect(contiguousOf(out)).toEqual(reference);
        // Runs of step 1 are the contiguous runs of two pages or more, exactly; everything else is a single.
        const runs = out.filter((s) => s.step === 1 && s.count > 1).map((s) => [s.index, s.count, s.pfn, s.known]);
        expect(runs).toEqual(reference.filter((r) => r[1] > 1));
        for (const s of out) if (s.count === 1) expect(s.step).toBe(1);
        expect(out.length).toBeLessThanOrEqual(reference.length);
      }
    }
  });
});

const MiB = 1024 * 1024;
const PAGE = 4096n;

/**
 * The guest trace replayed (differential mode: its own two checkers must agree), its events mirrored into a
 * second state with an incremental checker of the test's own, checked against the full checker after every
 * op; `afterOp` may emit more events into the mirror (then return true to stop mirroring).
 */
function mirrorGuest(afterOp: (op: number, mirror: Emitter, inc: IncrementalChecker) => boolean) {
  const guest = guestTrace({
    ...DEFAULT_GUEST,
    guestBytes: 8 * MiB,
    accessOps: 400,
    chunkBytes: null,
    smallPages: true,
  });
  const inc = new IncrementalChecker();
  const mirror = new Emitter(initialState(), { accept: (e: Event) => inc.observe(e) });
  let ops = 0;
  let mostSegments = 0;
  let stopped = false;
  const sink: EventSink = {
    accept: (e: Event) => {
      if (stopped) return;
      mirror.emit(e);
      if (e.type !== 'OpFinished') return;
      expect(inc.findings(mirror.state)).toEqual(invariantFindings(mirror.state));
      mostSegments = Math.max(mostSegments, inc.pfnSegments());
      ops += 1;
      stopped = afterOp(ops, mirror, inc);
    },
  };
  const { fixes } = resolveVariant('upstream');
  const run = replay(parseTraceText(guest.text, 'guest'), { variant: 'upstream', fixes, check: 'differential', sink });
  return { run, ops, mostSegments, inc };
}

/** Check the mirror now: both checkers' findings (equal), as keys. */
function checkNow(mirror: Emitter, inc: IncrementalChecker): string[] {
  const mine = inc.findings(mirror.state);
  expect(mine).toEqual(invariantFindings(mirror.state));
  return mine.map((f) => f.key);
}

/** Remap one page of a domain to `paddr`, as a defect would: the events alone. */
function remap(mirror: Emitter, domain: string, iova: bigint, paddr: bigint, extent: number): void {
  mirror.emit({
    type: 'IommuUnmapped',
    v: 1,
    domain,
    iova,
    size: PAGE,
    unmapped: PAGE,
    removed: [[iova, PAGE]],
    fn: 'test',
  });
  mirror.emit({
    type: 'IommuMapped',
    v: 1,
    domain,
    extent,
    iova,
    paddr,
    size: PAGE,
    read: true,
    write: true,
    fn: 'test',
  });
}

const paddrAt = (state: State, domain: string, iova: bigint): bigint => {
  const m = mappingAt(state.domains[domain]?.mappings ?? (undefined as never), iova);
  if (m === undefined || m.iova + m.size <= iova) throw new Error(`no mapping at ${iova}`);
  return m.paddr + (iova - m.iova);
};

describe('the incremental checker on a guest of 4 KiB pages with every frame apart', () => {
  it('gives the full checker findings after every op, holding the whole guest in one segment', () => {
    const { run, ops, mostSegments, inc } = mirrorGuest(() => false);
    expect(run.violations).toEqual([]);
    expect(ops).toBe(run.opCount);
    // 2,048 pages, one stepped row: one segment (one per page before segments had a step).
    expect(mostSegments).toBe(1);
    // The PFNs were walked whole once per pages the run made (its setup map); every access op by its ranges.
    expect(inc.walks.pagesPfns).toBe(1);
  });

  it('finds a page of the storage domain remapped to its neighbour frame, as the full checker does, and its repair', () => {
    const rng = new Rng(5);
    const at = 150 + rng.int(0, 100);
    let found: string[] = [];
    let repaired: string[] = [];
    let segments: number[] = [];
    mirrorGuest((op, mirror, inc) => {
      if (op !== at) return false;
      const area = Object.values(mirror.state.areas)[0];
      if (area === undefined || area.storageDomain === null) throw new Error('no filled area');
      const index = rng.int(1, area.lastIndex - 2);
      const iova = area.iova + BigInt(index) * PAGE;
      const own = paddrAt(mirror.state, area.storageDomain, iova);
      remap(mirror, area.storageDomain, iova, paddrAt(mirror.state, area.storageDomain, iova + PAGE), 90_001);
      found = checkNow(mirror, inc);
      segments = [inc.pfnSegments()];
      remap(mirror, area.storageDomain, iova, own, 90_002);
      repaired = checkNow(mirror, inc);
      segments.push(inc.pfnSegments());
      return true;
    });
    // The frame the page held lost its pin, its neighbour's has one too many, and the other domain maps
    // the old frame where the pages now hold the neighbour's.
    expect(found).toEqual(['pins:surplus', 'pins:deficit', 'mappings:A:generic']);
    expect(repaired).toEqual([]);
    // The row breaks around the page (it holds its neighbour's frame, a step of 0), and joins again.
    expect(segments).toEqual([3, 1]);
  });
});
