// SPDX-License-Identifier: GPL-2.0-only
/**
 * What each iopt_pages holds: its coverage (access_itree ∪ domains_itree) and the PFN of every covered
 * index (the xarray, else the storage domain's translation, else the source mm as a hint), with invariants 1
 * (npinned = |coverage|) and 2 (pinned_pfns keys = access_itree coverage) checked on the way. Geometry here
 * raises no WARN: the checker only reads.
 */
import type { Area, Pages, State } from '../../state/state.js';
import { mappingAt, mappingsForEachFrom } from '../../structures/mapping-table.js';
import { itreeEntries } from '../../structures/interval-tree.js';
import { xaForEachRun } from '../../structures/xarray.js';
import type { InvariantFinding } from './finding.js';
import { SMALL, U64_MASK } from './finding.js';
import type { Run } from './runs.js';
import { coverageOf, listRuns, runsSize, subtractRuns, unionRuns } from './runs.js';

export function indexToIova(area: Area, index: number, page: bigint): bigint {
  if (index === area.firstIndex) return area.iova;
  return (area.iova - BigInt(area.pageOffset) + BigInt(index - area.firstIndex) * page) & U64_MASK;
}

export function indexToIovaLast(area: Area, index: number, page: bigint): bigint {
  if (index === area.lastIndex) return area.lastIova;
  return (area.iova - BigInt(area.pageOffset) + BigInt(index - area.firstIndex + 1) * page - 1n) & U64_MASK;
}

/** The byte position inside the pages of the area's first IOVA. */
export const areaStartByte = (area: Area, page: bigint): bigint =>
  BigInt(area.firstIndex) * page + BigInt(area.pageOffset);

/**
 * PFNs of a run of indexes: from the xarray or a storage domain (known), the source mm (hint), or none.
 * Index `index + i` holds `pfn + i * step`: step 1 is a physically contiguous run; another step is a row
 * of single pages whose frames are never adjacent but advance evenly (a guest of 4 KiB pages laid out
 * every other frame is one segment, not one per page). A segment of one page, or without PFN, has step 1.
 */
export interface PfnSeg {
  index: number;
  count: number;
  pfn: number | null;
  step: number;
  known: boolean;
}

/** The PFN of index `index` of `s` (null when the segment has none). */
export const pfnAt = (s: PfnSeg, index: number): number | null =>
  s.pfn === null ? null : s.pfn + (index - s.index) * s.step;

/** The indexes [from, to] of `s`, as a new segment. */
export function subSeg(s: PfnSeg, from: number, to: number): PfnSeg {
  const count = to - from + 1;
  return { index: from, count, pfn: pfnAt(s, from), step: count === 1 ? 1 : s.step, known: s.known };
}

export interface Held {
  pages: Pages;
  access: Run[];
  domains: Run[];
  cover: Run[];
  /** Exactly `cover`, ascending. */
  pfns: PfnSeg[];
}

/**
 * Append `seg` (taken over: it may be changed or kept) to the ascending `out`, growing the last segment
 * when `seg` continues it. Runs of step 1 are exactly the maximal physically contiguous runs (what this
 * gave before segments had a step): a page whose PFN is one past the last one's always joins it, taken
 * off the end of a stepped segment if need be. Only single pages that no contiguous run takes are grouped
 * in stepped segments, greedily: a lone page takes the next page's difference as its step, and a stepped
 * segment takes what continues its step with that same step.
 */
export function pushSeg(out: PfnSeg[], seg: PfnSeg): void {
  if (seg.count === 1) seg.step = 1;
  let prev = out[out.length - 1];
  if (
    prev === undefined ||
    prev.known !== seg.known ||
    prev.index + prev.count !== seg.index ||
    (prev.pfn === null) !== (seg.pfn === null)
  ) {
    out.push(seg);
    return;
  }
  if (prev.pfn === null) {
    prev.count += seg.count;
    return;
  }
  const first = seg.pfn as number;
  const last = prev.pfn + (prev.count - 1) * prev.step;
  if (first === last + 1) {
    if (prev.step !== 1 && prev.count > 1) {
      // The stepped segment's last page belongs to the contiguous run that starts here.
      prev.count -= 1;
      if (prev.count === 1) prev.step = 1;
      prev = { index: seg.index - 1, count: 1, pfn: last, step: 1, known: seg.known };
      out.push(prev);
    }
    if (seg.step === 1) {
      prev.count += seg.count;
    } else {
      // Only the first page of a stepped `seg` is contiguous with `prev`: the rest stays a stepped row.
      prev.count += 1;
      out.push(subSeg(seg, seg.index + 1, seg.index + seg.count - 1));
    }
    return;
  }
  if (prev.count === 1) {
    if (seg.count === 1 || (seg.step !== 1 && first - last === seg.step)) {
      prev.step = first - last;
      prev.count += seg.count;
      return;
    }
  } else if (prev.step !== 1 && first === last + prev.step && (seg.count === 1 || seg.step === prev.step)) {
    prev.count += seg.count;
    return;
  }
  out.push(seg);
}

/**
 * The maximal physically contiguous runs of `segs[lo..hi)` (each as pushSeg gave segments before they
 * had a step): what the findings' texts are cut by, so that they do not depend on how pages are grouped.
 */
export function forEachContiguous(
  segs: readonly PfnSeg[],
  fn: (index: number, count: number, pfn: number | null, known: boolean) => void,
  lo = 0,
  hi = segs.length,
): void {
  let index = 0;
  let count = 0;
  let pfn: number | null = null;
  let known = false;
  const take = (i: number, n: number, p: number | null, k: boolean): void => {
    if (count > 0 && known === k && index + count === i && (pfn === null ? p === null : p === pfn + count)) {
      count += n;
      return;
    }
    if (count > 0) fn(index, count, pfn, known);
    index = i;
    count = n;
    pfn = p;
    known = k;
  };
  for (let k = lo; k < hi; k++) {
    const s = segs[k] as PfnSeg;
    if (s.count <= 0) continue;
    if (s.step === 1 || s.pfn === null) take(s.index, s.count, s.pfn, s.known);
    else for (let i = 0; i < s.count; i++) take(s.index + i, 1, s.pfn + i * s.step, s.known);
  }
  if (count > 0) fn(index, count, pfn, known);
}

/** PFNs of [first, last] from the source mm's page table (a hint), the rest unknown. */
export function fromSourceMm(state: State, p: Pages, first: number, last: number, out: PfnSeg[]): void {
  const mm = state.mms[p.sourceMm];
  const base = Number(p.uptr / BigInt(state.config.pageSize));
  let next = first;
  if (mm !== undefined) {
    xaForEachRun(mm.pt, base + first, base + last, (vpn, pfn, count) => {
      const index = vpn - base;
      if (index > next) pushSeg(out, { index: next, count: index - next, pfn: null, step: 1, known: false });
      pushSeg(out, { index, count, pfn, step: 1, known: false });
      next = index + count;
    });
  }
  if (next <= last) pushSeg(out, { index: next, count: last - next + 1, pfn: null, step: 1, known: false });
}

/**
 * PFNs of [first, last] of an area as its storage domain translates them, run by run over the mapping
 * pieces; indexes the domain does not map come from the source mm (hint). A piece whose physical offset
 * is not the page offset gives the PFN of the page the index's start would fall in.
 */
export function fromDomain(
  state: State,
  p: Pages,
  area: Area,
  domain: string,
  first: number,
  last: number,
  out: PfnSeg[],
): void {
  const d = state.domains[domain];
  if (d === undefined) {
    fromSourceMm(state, p, first, last, out);
    return;
  }
  const pageSize = state.config.pageSize;
  const page = BigInt(pageSize);
  const lo = indexToIova(area, first, page);
  const hi = indexToIovaLast(area, last, page);
  const byteOf = (iova: bigint): bigint => iova - area.iova + areaStartByte(area, page);
  let next = first;
  const emit = (b0: number, b1: number, shift: number): void => {
    const i0 = Math.max(Math.floor(b0 / pageSize), next);
    const i1 = Math.floor(b1 / pageSize);
    if (i1 < i0) return;
    if (i0 > next) fromSourceMm(state, p, next, i0 - 1, out);
    pushSeg(out, { index: i0, count: i1 - i0 + 1, pfn: i0 + shift, step: 1, known: true });
    next = i1 + 1;
  };
  // Small addresses are walked as numbers (exact below 2^52; bigint arithmetic is slow).
  const small = area.lastIova < SMALL;
  const areaIova = Number(area.iova);
  const startByte = Number(areaStartByte(area, page));
  const loN = Number(lo);
  const hiN = Number(hi);
  const take = (mIova: bigint, mSize: bigint, mPaddr: bigint): void => {
    if (small && mIova < SMALL && mSize < SMALL && mPaddr < SMALL) {
      const iova = Number(mIova);
      const x0 = iova > loN ? iova : loN;
      const x1 = Math.min(iova + Number(mSize) - 1, hiN);
      if (x0 > x1) return;
      const b0 = x0 - areaIova + startByte;
      emit(b0, x1 - areaIova + startByte, Math.floor((Number(mPaddr) + (x0 - iova) - b0) / pageSize));
      return;
    }
    const x0 = mIova > lo ? mIova : lo;
    const x1 = mIova + mSize - 1n < hi ? mIova + mSize - 1n : hi;
    if (x0 > x1) return;
    const b0 = byteOf(x0);
    const delta = mPaddr + (x0 - mIova) - b0;
    // floor(delta / page), also for a negative delta (a garbage translation).
    const shift = delta >= 0n ? delta / page : -((-delta + page - 1n) / page);
    emit(Number(b0), Number(byteOf(x1)), Number(shift));
  };
  const head = mappingAt(d.mappings, lo);
  if (head !== undefined && head.iova < lo) take(head.iova, head.size, head.paddr);
  mappingsForEachFrom(d.mappings, lo, (m) => {
    if (m.iova > hi) return false;
    take(m.iova, m.size, m.paddr);
    return true;
  });
  if (next <= last) fromSourceMm(state, p, next, last, out);
}

/**
 * The area of a domains_itree node that really holds pins for `p`: it lives, belongs to `p` and is filled
 * (node id = area id). A node left behind by a split or a free covers nothing the unfill would find.
 */
export function filledAreaOf(state: State, p: Pages, node: number): (Area & { storageDomain: string }) | undefined {
  const area = state.areas[node];
  if (area === undefined || area.pages !== p.id || area.storageDomain === null) return undefined;
  return area as Area & { storageDomain: string };
}

/**
 * The held-pins rule: the indexes an iopt_pages must hold pinned are what its accesses and its filled areas
 * cover (access_itree ∪ the nodes of filled areas in domains_itree). Pins beyond that are pins nobody can
 * release. Nodes of freed, foreign or unfilled areas go to `stale`. Invariant 1 instead compares npinned
 * with the trees as they are (what the kernel's unpin consults); the two differ by the stale nodes, which
 * the domains_itree invariant reports on its own.
 */
export function mustHoldPinned(state: State, p: Pages, stale: number[] = []): Run[] {
  const filled: Run[] = [];
  for (const e of itreeEntries(p.domainsTree)) {
    if (filledAreaOf(state, p, e.id) === undefined) stale.push(e.id);
    else if (e.last >= e.start) filled.push([e.start, e.last]);
  }
  return unionRuns(coverageOf(p.accessTree), filled);
}

/** PFNs of the covered gap [first, last] that the xarray does not hold: from the covering areas' domains. */
export function fromDomains(state: State, p: Pages, first: number, last: number, out: PfnSeg[]): void {
  let next = first;
  for (const node of itreeEntries(p.domainsTree)) {
    if (node.last < next || node.start > last) continue;
    const area = filledAreaOf(state, p, node.id);
    if (area === undefined) continue;
    const from = Math.max(next, node.start, area.firstIndex);
    const to = Math.min(last, node.last, area.lastIndex);
    if (from > to) continue;
    if (from > next) fromSourceMm(state, p, next, from - 1, out);
    fromDomain(state, p, area, area.storageDomain, from, to, out);
    next = to + 1;
    if (next > last) return;
  }
  if (next <= last) fromSourceMm(state, p, next, last, out);
}

/** Invariant 1 within a pages: npinned against the `size` indexes of its coverage `cover`. */
export function npinnedFinding(p: Pages, cover: readonly Run[], size: number): InvariantFinding | null {
  if (p.npinned === size) return null;
  return {
    key: `npinned:${p.id}`,
    kind: 'invariant',
    detail: `iopt_pages ${p.id}: npinned is ${p.npinned} but access_itree and domains_itree cover ${size} indexes (${listRuns(cover) || 'none'})`,
    objects: { pages: p.id, npinned: p.npinned, covered: size },
  };
}

/** Coverage of one pages, with invariants 1 (npinned) and 2 (xarray keys); no PFNs (see pfnsOver). */
export function heldCover(
  state: State,
  p: Pages,
  out: InvariantFinding[],
): { access: Run[]; domains: Run[]; cover: Run[] } {
  const access = coverageOf(p.accessTree);
  const domains = coverageOf(p.domainsTree);
  const cover = unionRuns(access, domains);
  const npinned = npinnedFinding(p, cover, runsSize(cover));
  if (npinned !== null) out.push(npinned);

  const xaCover: Run[] = [];
  xaForEachRun(p.xa, 0, Number.MAX_SAFE_INTEGER, (index, _pfn, count) => {
    const prev = xaCover[xaCover.length - 1];
    if (prev !== undefined && prev[1] + 1 === index) prev[1] = index + count - 1;
    else xaCover.push([index, index + count - 1]);
  });
  const extra = subtractRuns(xaCover, access);
  const missing = subtractRuns(access, xaCover);
  if (extra.length > 0 || missing.length > 0) {
    const parts: string[] = [];
    if (extra.length > 0) parts.push(`${runsSize(extra)} entries no access covers (${listRuns(extra)})`);
    if (missing.length > 0) parts.push(`${runsSize(missing)} accessed indexes without an entry (${listRuns(missing)})`);
    out.push({
      key: `xarray:${p.id}`,
      kind: 'invariant',
      detail: `iopt_pages ${p.id}: pinned_pfns differs from access_itree coverage: ${parts.join('; ')}`,
      objects: {
        pages: p.id,
        extra: runsSize(extra),
        missing: runsSize(missing),
        index: (extra[0] ?? missing[0] ?? [0])[0],
      },
    });
  }
  return { access, domains, cover };
}

/**
 * The PFNs of the covered indexes of `p` inside [first, last] (all of them by default), ascending, in the
 * canonical form pushSeg gives (adjacent segments that continue each other are one). The PFN of an index
 * does not depend on the window it is asked in, so a window's answer spliced into the whole one (and
 * merged at its two edges) is what the whole computation gives.
 */
export function pfnsOver(
  state: State,
  p: Pages,
  cover: readonly Run[],
  pfns: PfnSeg[],
  first = -Infinity,
  last = Infinity,
): void {
  for (const [s0, l0] of cover) {
    if (l0 < first) continue;
    if (s0 > last) break;
    const s = Math.max(s0, first);
    const l = Math.min(l0, last);
    let next = s;
    xaForEachRun(p.xa, s, l, (index, pfn, count) => {
      if (index > next) fromDomains(state, p, next, index - 1, pfns);
      pushSeg(pfns, { index, count, pfn, step: 1, known: true });
      next = index + count;
    });
    if (next <= l) fromDomains(state, p, next, l, pfns);
  }
}

/** Coverage and PFNs of one pages, with invariants 1 (npinned) and 2 (xarray keys). */
export function heldBy(state: State, p: Pages, out: InvariantFinding[]): Held {
  const { access, domains, cover } = heldCover(state, p, out);
  const pfns: PfnSeg[] = [];
  pfnsOver(state, p, cover, pfns);
  return { pages: p, access, domains, cover, pfns };
}
