// SPDX-License-Identifier: GPL-2.0-only
/**
 * The global invariants at rest (spec section 1), checked between two top-level operations, and the
 * teardown checks run once everything was closed. This is what KASAN, kmemleak, the refcount checks and
 * the selftest's MD_CHECK_REFS / MD_CHECK_MAP would catch, asked of the whole state at once.
 *
 * Invariants, per iopt_pages P, area A, domain D (numbers as in the spec):
 * 1. The indexes P holds pinned are access_itree ∪ domains_itree coverage; each of them holds exactly one
 *    pin (globally: every frame's pin count equals the number of covered indexes of all pages whose PFN
 *    it is); npinned = |coverage|. A pin nobody covers is a 'pin_leak'.
 * 2. pinned_pfns keys = access_itree coverage.
 * 3. last_npinned = npinned, and each counter (user.locked_vm, mm.locked_vm, mm.pinned_vm) holds exactly
 *    what the pages charged to it: 'accounting_mismatch'.
 * 4. A in domains_itree ⇔ A.storage_domain set ⇔ its IOAS has domains (and A has pages); every domain of
 *    the IOAS maps each such area's IOVA range to P's PFNs (page_offset on the first page) and nothing else.
 * 5. A.num_accesses = the access users taken through A (one per selftest item piece on A); per pages, the
 *    users of its access nodes add up to its areas' num_accesses.
 * Plus the self-checks of every interval tree and xarray ('itree_corruption').
 *
 * The PFN of a covered index is the one the kernel itself would use: the xarray's entry, else the storage
 * domain's translation (iova_to_phys at the index's IOVA). Other domains are compared against that. The
 * source mm's page table is only a hint (for indexes whose PFN nothing else gives, so that their pins
 * still balance): after munmap or exit it no longer maps what is pinned, so it is never authoritative.
 *
 * Cost: everything is run-length (coverage runs, xarray runs, mapping pieces, frame segments); no walk is
 * per page. A 16 GiB guest of 8192 physically discontiguous 2 MiB pages in a domain checks in about 20 ms,
 * one of contiguous memory in well under 1 ms. Addresses below 2^52 are compared as numbers.
 *
 * Reporting: one finding per broken invariant and object (aggregated over runs, with the first few runs
 * in the text). A finding is reported when it appears or what it says changes, not again after every op
 * while it persists; once it clears it is armed again.
 *
 * Deliberate exemptions (upstream behaviour, not defects): an mm whose address space is gone cannot be
 * uncharged (update_mm_locked_vm needs mmget_not_zero), so MM-mode pages of such an mm may keep a stale
 * last_npinned, and that mm's counters are not checked, at rest or at teardown.
 */
import { hex } from '../lib/format.js';
import type { ViolationKind } from '../events/events.js';
import type { FindingObjects, Sim } from '../machine/sim.js';
import type { Area, Pages, State } from '../state/state.js';
import { btreeFloorValue, btreeForEachFrom } from './btree.js';
import { ioptAreaContigDone, ioptAreaContigInit, ioptAreaContigNext } from './io-pagetable.js';
import type { IntervalTree } from './interval-tree.js';
import { itreeCheck, itreeEntries, itreeFind } from './interval-tree.js';
import { xaCheck, xaForEachRun } from './xarray.js';

export interface InvariantFinding {
  /** Identity of the breach (what it is about), for reporting it once while it persists. */
  key: string;
  kind: ViolationKind;
  detail: string;
  objects: FindingObjects;
  /** What must change for the finding to be reported again (default: the detail). */
  signature?: string;
}

const U64_MASK = (1n << 64n) - 1n;
/** Addresses below this are exact as numbers, and so are their differences. */
const SMALL = 1n << 52n;
/** How many runs a finding's text lists before it says "and N more". */
const LIST_MAX = 4;
/** Teardown reports this many runs or allocations one by one, then one summary. */
const TEARDOWN_MAX = 16;

// ---- index runs ----------------------------------------------------------------------------------------

/** Disjoint, ascending, inclusive index runs [first, last]. */
type Run = [number, number];

/** The union of a tree's intervals as disjoint runs (overlapping or adjacent nodes merge). */
function coverageOf(tree: IntervalTree<number>): Run[] {
  const out: Run[] = [];
  for (const e of itreeEntries(tree)) {
    // A node with last < start is reported by the tree's self-check; it covers nothing.
    if (e.last < e.start) continue;
    const prev = out[out.length - 1];
    if (prev !== undefined && e.start <= prev[1] + 1) prev[1] = Math.max(prev[1], e.last);
    else out.push([e.start, e.last]);
  }
  return out;
}

function unionRuns(a: readonly Run[], b: readonly Run[]): Run[] {
  const all = [...a, ...b].sort((x, y) => x[0] - y[0]);
  const out: Run[] = [];
  for (const [s, l] of all) {
    const prev = out[out.length - 1];
    if (prev !== undefined && s <= prev[1] + 1) prev[1] = Math.max(prev[1], l);
    else out.push([s, l]);
  }
  return out;
}

/** a − b. */
function subtractRuns(a: readonly Run[], b: readonly Run[]): Run[] {
  const out: Run[] = [];
  let j = 0;
  for (const [s0, l] of a) {
    let s = s0;
    while (j < b.length && (b[j] as Run)[1] < s) j++;
    let k = j;
    while (s <= l && k < b.length && (b[k] as Run)[0] <= l) {
      const [bs, bl] = b[k] as Run;
      if (bs > s) out.push([s, bs - 1]);
      s = Math.max(s, bl + 1);
      k++;
    }
    if (s <= l) out.push([s, l]);
  }
  return out;
}

const runsSize = (runs: readonly Run[]): number => runs.reduce((n, [s, l]) => n + l - s + 1, 0);

function listRuns(runs: readonly Run[]): string {
  const shown = runs.slice(0, LIST_MAX).map(([s, l]) => (s === l ? `${s}` : `${s}..${l}`));
  return shown.join(', ') + (runs.length > LIST_MAX ? ` and ${runs.length - LIST_MAX} more` : '');
}

// ---- step functions over ranges ------------------------------------------------------------------------

/** A value over [start, end) (end exclusive). Lists are ascending and, for a sound state, disjoint. */
interface Step<K extends number | bigint, V> {
  start: K;
  end: K;
  value: V;
}

/**
 * Walk two step lists together: `fn` gets each piece of their union where either has a value, with both
 * values (undefined where a list has none), ascending.
 */
function zipSteps<K extends number | bigint, A, B>(
  as: readonly Step<K, A>[],
  bs: readonly Step<K, B>[],
  fn: (start: K, end: K, a: A | undefined, b: B | undefined) => void,
): void {
  let i = 0;
  let j = 0;
  let a = as[0];
  let b = bs[0];
  if (a === undefined && b === undefined) return;
  let pos: K = a === undefined ? (b as Step<K, B>).start : b === undefined || a.start < b.start ? a.start : b.start;
  for (;;) {
    while (a !== undefined && a.end <= pos) a = as[++i];
    while (b !== undefined && b.end <= pos) b = bs[++j];
    if (a === undefined && b === undefined) return;
    const aIn = a !== undefined && a.start <= pos;
    const bIn = b !== undefined && b.start <= pos;
    // The next boundary: the end of what covers pos, or the start of what comes next.
    let next: K | undefined;
    if (a !== undefined) next = aIn ? a.end : a.start;
    if (b !== undefined) {
      const nb = bIn ? b.end : b.start;
      if (next === undefined || nb < next) next = nb;
    }
    const to = next as K;
    if (aIn || bIn) fn(pos, to, aIn ? (a as Step<K, A>).value : undefined, bIn ? (b as Step<K, B>).value : undefined);
    pos = to;
  }
}

// ---- geometry without WARNs (the checker only reads) ---------------------------------------------------

function indexToIova(area: Area, index: number, page: bigint): bigint {
  if (index === area.firstIndex) return area.iova;
  return (area.iova - BigInt(area.pageOffset) + BigInt(index - area.firstIndex) * page) & U64_MASK;
}

function indexToIovaLast(area: Area, index: number, page: bigint): bigint {
  if (index === area.lastIndex) return area.lastIova;
  return (area.iova - BigInt(area.pageOffset) + BigInt(index - area.firstIndex + 1) * page - 1n) & U64_MASK;
}

/** The byte position inside the pages of the area's first IOVA. */
const areaStartByte = (area: Area, page: bigint): bigint => BigInt(area.firstIndex) * page + BigInt(area.pageOffset);

// ---- what each pages holds ---------------------------------------------------------------------------

/** PFNs of a run of indexes: from the xarray or a storage domain (known), the source mm (hint), or none. */
interface PfnSeg {
  index: number;
  count: number;
  pfn: number | null;
  known: boolean;
}

interface Held {
  pages: Pages;
  access: Run[];
  domains: Run[];
  cover: Run[];
  /** Exactly `cover`, ascending. */
  pfns: PfnSeg[];
}

function pushSeg(out: PfnSeg[], seg: PfnSeg): void {
  const prev = out[out.length - 1];
  if (
    prev !== undefined &&
    prev.known === seg.known &&
    prev.index + prev.count === seg.index &&
    (prev.pfn === null ? seg.pfn === null : seg.pfn === prev.pfn + prev.count)
  ) {
    prev.count += seg.count;
  } else {
    out.push(seg);
  }
}

/** PFNs of [first, last] from the source mm's page table (a hint), the rest unknown. */
function fromSourceMm(state: State, p: Pages, first: number, last: number, out: PfnSeg[]): void {
  const mm = state.mms[p.sourceMm];
  const base = Number(p.uptr / BigInt(state.config.pageSize));
  let next = first;
  if (mm !== undefined) {
    xaForEachRun(mm.pt, base + first, base + last, (vpn, pfn, count) => {
      const index = vpn - base;
      if (index > next) pushSeg(out, { index: next, count: index - next, pfn: null, known: false });
      pushSeg(out, { index, count, pfn, known: false });
      next = index + count;
    });
  }
  if (next <= last) pushSeg(out, { index: next, count: last - next + 1, pfn: null, known: false });
}

/**
 * PFNs of [first, last] of an area as its storage domain translates them, run by run over the mapping
 * pieces; indexes the domain does not map come from the source mm (hint). A piece whose physical offset
 * is not the page offset gives the PFN of the page the index's start would fall in.
 */
function fromDomain(
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
    pushSeg(out, { index: i0, count: i1 - i0 + 1, pfn: i0 + shift, known: true });
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
  const head = btreeFloorValue(d.mappings.tree, lo);
  if (head !== undefined && head.iova < lo) take(head.iova, head.size, head.paddr);
  btreeForEachFrom(d.mappings.tree, lo, (iova, m) => {
    if (iova > hi) return false;
    take(m.iova, m.size, m.paddr);
    return true;
  });
  if (next <= last) fromSourceMm(state, p, next, last, out);
}

/** PFNs of the covered gap [first, last] that the xarray does not hold: from the covering areas' domains. */
function fromDomains(state: State, p: Pages, first: number, last: number, out: PfnSeg[]): void {
  let next = first;
  for (const node of itreeEntries(p.domainsTree)) {
    if (node.last < next || node.start > last) continue;
    const area = state.areas[node.id];
    if (area === undefined || area.pages !== p.id || area.storageDomain === null) continue;
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

/** Coverage and PFNs of one pages, with invariants 1 (npinned) and 2 (xarray keys). */
function heldBy(state: State, p: Pages, out: InvariantFinding[]): Held {
  const access = coverageOf(p.accessTree);
  const domains = coverageOf(p.domainsTree);
  const cover = unionRuns(access, domains);
  const size = runsSize(cover);
  if (p.npinned !== size) {
    out.push({
      key: `npinned:${p.id}`,
      kind: 'invariant',
      detail: `iopt_pages ${p.id}: npinned is ${p.npinned} but access_itree and domains_itree cover ${size} indexes (${listRuns(cover) || 'none'})`,
      objects: { pages: p.id, npinned: p.npinned, covered: size },
    });
  }

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

  const pfns: PfnSeg[] = [];
  for (const [s, l] of cover) {
    let next = s;
    xaForEachRun(p.xa, s, l, (index, pfn, count) => {
      if (index > next) fromDomains(state, p, next, index - 1, pfns);
      pushSeg(pfns, { index, count, pfn, known: true });
      next = index + count;
    });
    if (next <= l) fromDomains(state, p, next, l, pfns);
  }
  return { pages: p, access, domains, cover, pfns };
}

// ---- invariant 1: pins --------------------------------------------------------------------------------

interface Expected {
  pfn: number;
  count: number;
  pages: number;
  index: number;
}

/** Who expects a pin on `pfn` (for the text), by binary search over runs sorted by pfn. */
function holderOf(exp: readonly Expected[], pfn: number): Expected | undefined {
  let lo = 0;
  let hi = exp.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((exp[mid] as Expected).pfn <= pfn) lo = mid + 1;
    else hi = mid;
  }
  for (let k = lo - 1; k >= 0 && k >= lo - 64; k--) {
    const e = exp[k] as Expected;
    if (pfn < e.pfn + e.count) return e;
  }
  return undefined;
}

/** Which pages maps a surplus PFN at an index no tree covers, through its source mm (for the text). */
function attributeSurplus(
  state: State,
  held: readonly Held[],
  surplus: readonly Step<number, number>[],
): string | null {
  const page = BigInt(state.config.pageSize);
  for (const h of held) {
    const p = h.pages;
    const mm = state.mms[p.sourceMm];
    if (mm === undefined || p.npages === 0) continue;
    const base = Number(p.uptr / page);
    for (const [s, l] of subtractRuns([[0, p.npages - 1]], h.cover)) {
      let found: string | null = null;
      xaForEachRun(mm.pt, base + s, base + l, (vpn, pfn, count) => {
        for (const sp of surplus) {
          const lo = Math.max(sp.start, pfn);
          const hi = Math.min(sp.end, pfn + count);
          if (lo < hi) {
            found = `iopt_pages ${p.id} index ${vpn - base + (lo - pfn)} (pfn ${hex(lo)}) is pinned but neither an access nor a filled area covers it`;
            return false;
          }
        }
        return true;
      });
      if (found !== null) return found;
    }
  }
  return null;
}

function checkPins(state: State, held: readonly Held[], out: InvariantFinding[]): void {
  const exp: Expected[] = [];
  for (const h of held) {
    for (const seg of h.pfns)
      if (seg.pfn !== null) exp.push({ pfn: seg.pfn, count: seg.count, pages: h.pages.id, index: seg.index });
  }
  let sorted = true;
  for (let k = 1; k < exp.length && sorted; k++) sorted = (exp[k - 1] as Expected).pfn <= (exp[k] as Expected).pfn;
  if (!sorted) exp.sort((a, b) => a.pfn - b.pfn || a.pages - b.pages || a.index - b.index);

  // Expected pins per PFN as a step function (a PFN held by two indexes expects two pins).
  const expected: Step<number, number>[] = [];
  let overlap = false;
  for (const e of exp) {
    const prev = expected[expected.length - 1];
    if (prev !== undefined && e.pfn < prev.end) {
      overlap = true;
      break;
    }
    if (prev !== undefined && prev.end === e.pfn) prev.end += e.count;
    else expected.push({ start: e.pfn, end: e.pfn + e.count, value: 1 });
  }
  if (overlap) {
    expected.length = 0;
    const points: [number, number][] = [];
    for (const e of exp) points.push([e.pfn, 1], [e.pfn + e.count, -1]);
    points.sort((a, b) => a[0] - b[0]);
    let level = 0;
    for (let k = 0; k < points.length;) {
      const at = (points[k] as [number, number])[0];
      while (k < points.length && (points[k] as [number, number])[0] === at)
        level += (points[k++] as [number, number])[1];
      const nextAt = points[k]?.[0];
      if (level > 0 && nextAt !== undefined) expected.push({ start: at, end: nextAt, value: level });
    }
  }

  const actual: Step<number, number>[] = [];
  btreeForEachFrom(state.frames.tree, undefined, (start, seg) => {
    if (seg.value.pins > 0) actual.push({ start, end: start + seg.count, value: seg.value.pins });
  });

  const surplus: Step<number, number>[] = [];
  const deficit: Step<number, number>[] = [];
  let extraPins = 0;
  let missingPins = 0;
  zipSteps(expected, actual, (start, end, a, b) => {
    const want = a ?? 0;
    const have = b ?? 0;
    if (want === have) return;
    const list = have > want ? surplus : deficit;
    const diff = Math.abs(have - want);
    if (have > want) extraPins += diff * (end - start);
    else missingPins += diff * (end - start);
    const prev = list[list.length - 1];
    if (prev !== undefined && prev.end === start && prev.value === diff) prev.end = end;
    else list.push({ start, end, value: diff });
  });
  const describe = (runs: readonly Step<number, number>[]): string => {
    const shown = runs
      .slice(0, LIST_MAX)
      .map(
        (r) =>
          `pfn ${hex(r.start)}${r.end - r.start > 1 ? ` +${r.end - r.start}` : ''} (${r.value} pin${r.value === 1 ? '' : 's'})`,
      );
    return shown.join(', ') + (runs.length > LIST_MAX ? ` and ${runs.length - LIST_MAX} more runs` : '');
  };
  const first = (runs: readonly Step<number, number>[]): Step<number, number> => runs[0] as Step<number, number>;
  if (surplus.length > 0) {
    const who = attributeSurplus(state, held, surplus);
    const npfns = surplus.reduce((n, r) => n + r.end - r.start, 0);
    out.push({
      key: 'pins:surplus',
      kind: 'pin_leak',
      detail: `${extraPins} pin${extraPins === 1 ? '' : 's'} on ${npfns} page${npfns === 1 ? '' : 's'} that no access or filled area holds: ${describe(surplus)}${who ? `; ${who}` : ''}`,
      objects: { pfn: first(surplus).start, count: npfns, pins: extraPins },
      signature: describe(surplus),
    });
  }
  if (deficit.length > 0) {
    const holder = holderOf(exp, first(deficit).start);
    const npfns = deficit.reduce((n, r) => n + r.end - r.start, 0);
    out.push({
      key: 'pins:deficit',
      kind: 'invariant',
      detail:
        `${missingPins} pin${missingPins === 1 ? '' : 's'} missing on ${npfns} page${npfns === 1 ? '' : 's'} that covered indexes hold: ${describe(deficit)}` +
        (holder
          ? `; first held by iopt_pages ${holder.pages} index ${holder.index + (first(deficit).start - holder.pfn)}`
          : ''),
      objects: { pfn: first(deficit).start, count: npfns, pins: missingPins, pages: holder?.pages ?? null },
    });
  }
}

// ---- invariant 3: accounting --------------------------------------------------------------------------

const mmGone = (state: State, mm: number): boolean => (state.mms[mm]?.users ?? 0) <= 0;

function checkAccounting(state: State, pages: readonly Pages[], out: InvariantFinding[]): void {
  const userWant = new Map<number, number>();
  const lockedWant = new Map<number, number>();
  const pinnedWant = new Map<number, number>();
  const add = (m: Map<number, number>, k: number, n: number): void => void m.set(k, (m.get(k) ?? 0) + n);
  for (const p of pages) {
    if (p.accountMode === 'user') add(userWant, p.sourceUid, p.lastNpinned);
    if (p.accountMode === 'mm') add(lockedWant, p.sourceMm, p.lastNpinned);
    add(pinnedWant, p.sourceMm, p.lastNpinned);
    if (p.lastNpinned !== p.npinned && !(p.accountMode === 'mm' && mmGone(state, p.sourceMm))) {
      out.push({
        key: `last_npinned:${p.id}`,
        kind: 'accounting_mismatch',
        detail: `iopt_pages ${p.id}: last_npinned is ${p.lastNpinned} but npinned is ${p.npinned} (${p.accountMode} accounting)`,
        objects: { pages: p.id, npinned: p.npinned, lastNpinned: p.lastNpinned },
      });
    }
  }
  for (const key of Object.keys(state.users).sort((a, b) => Number(a) - Number(b))) {
    const u = state.users[Number(key)];
    if (u === undefined) continue;
    const want = userWant.get(u.uid) ?? 0;
    if (u.lockedVm !== want) {
      out.push({
        key: `user.locked_vm:${u.uid}`,
        kind: 'accounting_mismatch',
        detail: `user ${u.uid}: locked_vm is ${u.lockedVm} pages but its pages in user accounting charged ${want}`,
        objects: { uid: u.uid, lockedVm: u.lockedVm, charged: want },
        // The same surplus or shortfall while other pages come and go is the same breach.
        signature: `${u.lockedVm - want}`,
      });
    }
  }
  for (const key of Object.keys(state.mms).sort((a, b) => Number(a) - Number(b))) {
    const mm = state.mms[Number(key)];
    if (mm === undefined || mmGone(state, mm.id)) continue;
    for (const [counter, have, want] of [
      ['mm.locked_vm', mm.lockedVm, lockedWant.get(mm.id) ?? 0],
      ['mm.pinned_vm', mm.pinnedVm, pinnedWant.get(mm.id) ?? 0],
    ] as const) {
      if (have === want) continue;
      out.push({
        key: `${counter}:${mm.id}`,
        kind: 'accounting_mismatch',
        detail: `mm ${mm.id} (process ${mm.pid}): ${counter.slice(3)} is ${have} pages but its pages charged ${want}`,
        objects: { mm: mm.id, counter, value: have, charged: want },
        signature: `${have - want}`,
      });
    }
  }
}

// ---- invariant 4: areas, domains_itree, IO page tables ------------------------------------------------

/** What a domain must map: phys - iova over a range, or null for "mapped, PFN unknown". */
type Want = bigint | null;

/** The IOVA layout a filled area must have in every domain, from the PFNs its pages hold. */
function expectedOfArea(state: State, area: Area, h: Held | undefined, out: Step<bigint, Want>[]): void {
  const page = BigInt(state.config.pageSize);
  const aStart = areaStartByte(area, page);
  const aEnd = aStart + (area.lastIova - area.iova + 1n);
  let cursor = area.iova;
  const push = (start: bigint, end: bigint, value: Want): void => {
    if (start > cursor) out.push({ start: cursor, end: start, value: null });
    out.push({ start, end, value });
    cursor = end;
  };
  for (const seg of h?.pfns ?? []) {
    if (seg.index + seg.count <= area.firstIndex || seg.index > area.lastIndex) continue;
    const b0 = BigInt(seg.index) * page > aStart ? BigInt(seg.index) * page : aStart;
    const b1 = BigInt(seg.index + seg.count) * page < aEnd ? BigInt(seg.index + seg.count) * page : aEnd;
    if (b0 >= b1) continue;
    const iova = area.iova + (b0 - aStart);
    const value =
      seg.known && seg.pfn !== null ? BigInt(seg.pfn) * page - BigInt(seg.index) * page - area.iova + aStart : null;
    push(iova, iova + (b1 - b0), value);
  }
  if (cursor <= area.lastIova) out.push({ start: cursor, end: area.lastIova + 1n, value: null });
}

interface MapDiff {
  bytes: bigint;
  first: bigint;
  text: string;
}

/** The expected layout as numbers, when every address in it is small enough to be exact. */
function smallSteps(expected: readonly Step<bigint, Want>[]): Step<number, number | null>[] | null {
  const out: Step<number, number | null>[] = [];
  for (const e of expected) {
    if (e.end >= SMALL || (e.value !== null && (e.value >= SMALL || e.value <= -SMALL))) return null;
    out.push({ start: Number(e.start), end: Number(e.end), value: e.value === null ? null : Number(e.value) });
  }
  return out;
}

/** True when the domain maps exactly the expected layout, compared as numbers; null when they are too big. */
function mappingsMatchSmall(
  tree: State['domains'][string]['mappings']['tree'],
  expected: readonly Step<number, number | null>[],
): boolean | null {
  const actual: Step<number, number>[] = [];
  let fits = true;
  btreeForEachFrom(tree, undefined, (_iova, m) => {
    if (m.iova >= SMALL || m.size >= SMALL || m.paddr >= SMALL) {
      fits = false;
      return false;
    }
    const iova = Number(m.iova);
    actual.push({ start: iova, end: iova + Number(m.size), value: Number(m.paddr) - iova });
    return true;
  });
  if (!fits) return null;
  let clean = true;
  zipSteps(expected, actual, (_start, _end, a, b) => {
    if (a === undefined || b === undefined ? a !== b : a !== null && a !== b) clean = false;
  });
  return clean;
}

function checkDomainMappings(
  state: State,
  ioas: string,
  domain: string,
  expected: readonly Step<bigint, Want>[],
  expectedSmall: readonly Step<number, number | null>[] | null,
  out: InvariantFinding[],
): void {
  const d = state.domains[domain];
  if (d === undefined) {
    out.push({
      key: `domain-missing:${ioas}:${domain}`,
      kind: 'invariant',
      detail: `IOAS ${ioas} lists domain ${domain}, which no longer exists`,
      objects: { ioas, domain },
    });
    return;
  }
  // The fast comparison; the exact one below also finds what to report.
  if (expectedSmall !== null && mappingsMatchSmall(d.mappings.tree, expectedSmall) === true) return;
  const actual: Step<bigint, bigint>[] = [];
  btreeForEachFrom(d.mappings.tree, undefined, (_iova, m) => {
    actual.push({ start: m.iova, end: m.iova + m.size, value: m.paddr - m.iova });
  });
  const diffs = new Map<string, MapDiff>();
  const note = (what: string, start: bigint, end: bigint, text: () => string): void => {
    const cur = diffs.get(what);
    if (cur === undefined) diffs.set(what, { bytes: end - start, first: start, text: text() });
    else cur.bytes += end - start;
  };
  zipSteps(expected, actual, (start, end, a, b) => {
    if (a === undefined && b !== undefined) {
      note(
        'extra',
        start,
        end,
        () => `maps ${hex(start)}..${hex(end - 1n)} (to phys ${hex(start + b)}) where no filled area is`,
      );
    } else if (a !== undefined && b === undefined) {
      note('missing', start, end, () => `does not map ${hex(start)}..${hex(end - 1n)} of a filled area`);
    } else if (a !== undefined && a !== null && b !== undefined && a !== b) {
      note(
        'wrong',
        start,
        end,
        () => `maps ${hex(start)} to phys ${hex(start + b)} where the pages hold ${hex(start + a)}`,
      );
    }
  });
  if (diffs.size === 0) return;
  const parts = [...diffs.entries()].map(([, v]) => `${v.text} (${v.bytes} bytes in all)`);
  const firstAt = [...diffs.values()].reduce((m, v) => (v.first < m ? v.first : m), U64_MASK);
  out.push({
    key: `mappings:${ioas}:${domain}`,
    kind: 'invariant',
    detail: `domain ${domain} of IOAS ${ioas} does not map exactly the pages' PFNs: ${parts.join('; ')}`,
    objects: { ioas, domain, iova: firstAt },
  });
}

function checkAreasAndDomains(state: State, held: ReadonlyMap<number, Held>, out: InvariantFinding[]): void {
  const attached = new Set<string>();
  for (const name of Object.keys(state.ioases).sort()) {
    const io = state.ioases[name];
    if (io === undefined) continue;
    const hasDomains = io.domains.length > 0;
    const expected: Step<bigint, Want>[] = [];
    for (const node of itreeEntries(io.areas)) {
      const a = state.areas[node.id];
      if (a === undefined) continue;
      if (a.pages === null) {
        out.push({
          key: `area-no-pages:${a.id}`,
          kind: 'invariant',
          detail: `area ${a.id} of IOAS ${name} has no pages between operations`,
          objects: { area: a.id, ioas: name },
        });
        continue;
      }
      const p = state.pages[a.pages];
      if (p === undefined) {
        out.push({
          key: `area-freed-pages:${a.id}`,
          kind: 'invariant',
          detail: `area ${a.id} of IOAS ${name} points to iopt_pages ${a.pages}, which was released`,
          objects: { area: a.id, ioas: name, pages: a.pages },
        });
        continue;
      }
      const inTree = itreeFind(p.domainsTree, a.id, a.firstIndex, a.lastIndex);
      const storage = a.storageDomain;
      const storageOk = storage === null || io.domains.includes(storage);
      if (inTree !== (storage !== null) || (storage !== null) !== hasDomains || !storageOk) {
        out.push({
          key: `area-fill:${a.id}`,
          kind: 'invariant',
          detail:
            `area ${a.id} of IOAS ${name} (${io.domains.length} domain${io.domains.length === 1 ? '' : 's'}): ` +
            `${inTree ? 'in' : 'not in'} domains_itree of iopt_pages ${p.id}, storage domain ${storage ?? 'none'}` +
            (storageOk ? '' : ' (not attached to the IOAS)'),
          objects: { area: a.id, ioas: name, pages: p.id, storageDomain: storage, inDomainsItree: inTree },
        });
      }
      // What the domains must map: the areas that say they are filled (either marker).
      if (hasDomains && (inTree || storage !== null)) expectedOfArea(state, a, held.get(p.id), expected);
    }
    const expectedSmall = io.domains.length > 0 ? smallSteps(expected) : null;
    for (const domain of io.domains) {
      attached.add(domain);
      checkDomainMappings(state, name, domain, expected, expectedSmall, out);
    }
  }
  for (const name of Object.keys(state.domains).sort()) {
    const d = state.domains[name];
    if (d === undefined || attached.has(name)) continue;
    let first: bigint | null = null;
    btreeForEachFrom(d.mappings.tree, undefined, (iova) => {
      first = iova;
      return false;
    });
    if (first === null) continue;
    out.push({
      key: `mappings:-:${name}`,
      kind: 'invariant',
      detail: `domain ${name} is attached to no IOAS but still maps ${d.mappedBytes} bytes (first at ${hex(first)})`,
      objects: { domain: name, iova: first, bytes: d.mappedBytes },
    });
  }
  // domains_itree nodes must be the pages_node of a live area of this pages.
  for (const h of held.values()) {
    const stale: string[] = [];
    for (const node of itreeEntries(h.pages.domainsTree)) {
      const a = state.areas[node.id];
      if (a === undefined) stale.push(`node ${node.id} [${node.start}, ${node.last}] of a freed area`);
      else if (a.pages !== h.pages.id || a.firstIndex !== node.start || a.lastIndex !== node.last) {
        stale.push(
          `node ${node.id} [${node.start}, ${node.last}] does not match area ${a.id} (pages ${a.pages}, [${a.firstIndex}, ${a.lastIndex}])`,
        );
      }
    }
    if (stale.length > 0) {
      out.push({
        key: `domains-itree:${h.pages.id}`,
        kind: 'invariant',
        detail: `domains_itree of iopt_pages ${h.pages.id} holds ${stale.slice(0, LIST_MAX).join('; ')}${stale.length > LIST_MAX ? ` and ${stale.length - LIST_MAX} more` : ''}`,
        objects: { pages: h.pages.id, nodes: stale.length },
      });
    }
  }
}

// ---- invariant 5: num_accesses -------------------------------------------------------------------------

function checkAccessCounts(state: State, pages: readonly Pages[], out: InvariantFinding[]): void {
  const taken = new Map<number, number>();
  for (const name of Object.keys(state.accesses).sort()) {
    const acc = state.accesses[name];
    if (acc === undefined || acc.ioas === null || state.ioases[acc.ioas] === undefined) continue;
    for (const item of Object.values(acc.items).sort((x, y) => x.id - y.id)) {
      const last = item.iova + item.length - 1n;
      const iter = ioptAreaContigInit(state, acc.ioas, item.iova, last);
      for (let area = iter.area; area !== null; area = ioptAreaContigNext(state, iter))
        taken.set(area.id, (taken.get(area.id) ?? 0) + 1);
      if (!ioptAreaContigDone(state, iter)) {
        out.push({
          key: `item-unmapped:${name}:${item.id}`,
          kind: 'invariant',
          detail: `access ${name} still holds item ${item.id} (${hex(item.iova)} +${item.length}) over IOVA no area of IOAS ${acc.ioas} fully maps`,
          objects: { access: name, item: item.id, iova: item.iova, length: item.length },
        });
      }
    }
  }
  const flaggedPages = new Set<number>();
  for (const key of Object.keys(state.areas).sort((a, b) => Number(a) - Number(b))) {
    const a = state.areas[Number(key)];
    if (a === undefined) continue;
    const want = taken.get(a.id) ?? 0;
    if (a.numAccesses === want) continue;
    if (a.pages !== null) flaggedPages.add(a.pages);
    out.push({
      key: `num_accesses:${a.id}`,
      kind: 'invariant',
      detail: `area ${a.id} of IOAS ${a.ioas}: num_accesses is ${a.numAccesses} but ${want} access pin${want === 1 ? '' : 's'} went through it`,
      objects: { area: a.id, ioas: a.ioas, numAccesses: a.numAccesses, pins: want },
    });
  }

  const users = new Map<number, number>();
  const nodesOf = new Map<number, number[]>();
  for (const key of Object.keys(state.pagesAccesses).sort((a, b) => Number(a) - Number(b))) {
    const n = state.pagesAccesses[Number(key)];
    if (n === undefined) continue;
    users.set(n.pages, (users.get(n.pages) ?? 0) + n.users);
    nodesOf.set(n.pages, [...(nodesOf.get(n.pages) ?? []), n.id]);
  }
  const areaCounts = new Map<number, number>();
  for (const a of Object.values(state.areas))
    if (a.pages !== null) areaCounts.set(a.pages, (areaCounts.get(a.pages) ?? 0) + a.numAccesses);
  for (const p of pages) {
    const problems: string[] = [];
    for (const node of itreeEntries(p.accessTree)) {
      const n = state.pagesAccesses[node.id];
      if (n === undefined) problems.push(`node ${node.id} [${node.start}, ${node.last}] has no iopt_pages_access`);
      else if (n.pages !== p.id || n.index !== node.start || n.last !== node.last)
        problems.push(`node ${node.id} disagrees with its iopt_pages_access`);
      else if (n.users <= 0) problems.push(`access ${node.id} [${node.start}, ${node.last}] has ${n.users} users`);
    }
    for (const id of nodesOf.get(p.id) ?? []) {
      const n = state.pagesAccesses[id];
      if (n !== undefined && !itreeFind(p.accessTree, id, n.index, n.last))
        problems.push(`iopt_pages_access ${id} [${n.index}, ${n.last}] is not in access_itree`);
    }
    const u = users.get(p.id) ?? 0;
    const c = areaCounts.get(p.id) ?? 0;
    if (u !== c && !flaggedPages.has(p.id))
      problems.push(`its accesses have ${u} users but its areas count ${c} num_accesses`);
    if (problems.length === 0) continue;
    out.push({
      key: `accesses:${p.id}`,
      kind: 'invariant',
      detail: `iopt_pages ${p.id}: ${problems.slice(0, LIST_MAX).join('; ')}${problems.length > LIST_MAX ? ` and ${problems.length - LIST_MAX} more` : ''}`,
      objects: { pages: p.id, users: u, numAccesses: c },
    });
  }
}

// ---- structure ------------------------------------------------------------------------------------------

function checkStructures(state: State, pages: readonly Pages[], out: InvariantFinding[]): void {
  const tree = (key: string, what: string, problem: string | null, objects: FindingObjects): void => {
    if (problem !== null) out.push({ key, kind: 'itree_corruption', detail: `${what}: ${problem}`, objects });
  };
  for (const name of Object.keys(state.ioases).sort()) {
    const io = state.ioases[name];
    if (io === undefined) continue;
    tree(`itree:${name}:area`, `area_itree of IOAS ${name}`, itreeCheck(io.areas), { ioas: name });
    tree(`itree:${name}:allowed`, `allowed_itree of IOAS ${name}`, itreeCheck(io.allowed), { ioas: name });
    tree(`itree:${name}:reserved`, `reserved_itree of IOAS ${name}`, itreeCheck(io.reserved), { ioas: name });
    const problems: string[] = [];
    let prevLast: bigint | null = null;
    for (const node of itreeEntries(io.areas)) {
      const a = state.areas[node.id];
      if (a === undefined) problems.push(`node ${node.id} [${hex(node.start)}, ${hex(node.last)}] of a freed area`);
      else if (a.ioas !== name || a.iova !== node.start || a.lastIova !== node.last)
        problems.push(`node ${node.id} does not match its area`);
      if (prevLast !== null && node.start <= prevLast)
        problems.push(`node ${node.id} at ${hex(node.start)} overlaps the area before it`);
      prevLast = prevLast === null || node.last > prevLast ? node.last : prevLast;
    }
    if (problems.length > 0) {
      out.push({
        key: `areas:${name}`,
        kind: 'invariant',
        detail: `area_itree of IOAS ${name}: ${problems.slice(0, LIST_MAX).join('; ')}${problems.length > LIST_MAX ? ` and ${problems.length - LIST_MAX} more` : ''}`,
        objects: { ioas: name },
      });
    }
  }
  for (const key of Object.keys(state.areas).sort((a, b) => Number(a) - Number(b))) {
    const a = state.areas[Number(key)];
    const io = a === undefined ? undefined : state.ioases[a.ioas];
    if (a === undefined || (io !== undefined && itreeFind(io.areas, a.id, a.iova, a.lastIova))) continue;
    out.push({
      key: `area-orphan:${a.id}`,
      kind: 'invariant',
      detail: `area ${a.id} [${hex(a.iova)}, ${hex(a.lastIova)}] is allocated but not in the area_itree of IOAS ${a.ioas}`,
      objects: { area: a.id, ioas: a.ioas },
    });
  }
  for (const p of pages) {
    tree(`itree:${p.id}:access`, `access_itree of iopt_pages ${p.id}`, itreeCheck(p.accessTree), { pages: p.id });
    tree(`itree:${p.id}:domains`, `domains_itree of iopt_pages ${p.id}`, itreeCheck(p.domainsTree), { pages: p.id });
    tree(`xarray:${p.id}:self`, `pinned_pfns of iopt_pages ${p.id}`, xaCheck(p.xa), { pages: p.id });
  }
}

// ---- entry points ---------------------------------------------------------------------------------------

/** Every broken invariant of a state at rest, in a deterministic order (pure: reads the state only). */
export function invariantFindings(state: State): InvariantFinding[] {
  const out: InvariantFinding[] = [];
  const pages = Object.keys(state.pages)
    .map(Number)
    .sort((a, b) => a - b)
    .map((id) => state.pages[id] as Pages);
  checkStructures(state, pages, out);
  const held = new Map<number, Held>();
  for (const p of pages) held.set(p.id, heldBy(state, p, out));
  checkPins(state, [...held.values()], out);
  checkAccounting(state, pages, out);
  checkAreasAndDomains(state, held, out);
  checkAccessCounts(state, pages, out);
  return out;
}

/** Findings already reported for each run, by key, with the text they had. */
const reported = new WeakMap<Sim, Map<string, string>>();

/**
 * Check the global invariants at rest (after every operation) and report each breach that is new, or
 * whose details changed, as a violation of `fn`.
 */
export function checkInvariants(sim: Sim, fn = 'invariants'): void {
  const before = reported.get(sim) ?? new Map<string, string>();
  const now = new Map<string, string>();
  for (const f of invariantFindings(sim.state)) {
    if (now.has(f.key)) continue;
    const signature = f.signature ?? f.detail;
    now.set(f.key, signature);
    if (before.get(f.key) !== signature) sim.violation(f.kind, fn, f.detail, f.objects);
  }
  reported.set(sim, now);
}

/**
 * The checks after the replayer closed everything (accesses destroyed, IOASes unmapped, domains
 * detached): iommufd allocations still live and iopt_pages still alive are leaks, any pinned frame is a
 * leaked pin, and every accounting counter must be back to zero (mms whose address space is gone
 * excepted, see the header).
 */
export function checkTeardown(sim: Sim): void {
  const fn = 'teardown';
  const state = sim.state;

  const pages = Object.keys(state.pages)
    .map(Number)
    .sort((a, b) => a - b);
  for (const id of pages) {
    const p = state.pages[id] as Pages;
    sim.violation(
      'leak',
      fn,
      `iopt_pages ${id} (${p.npages} pages, ${p.refs} reference${p.refs === 1 ? '' : 's'}, npinned ${p.npinned}) is still allocated`,
      {
        pages: id,
        refs: p.refs,
        npinned: p.npinned,
      },
    );
  }

  const leaks = Object.values(state.heap)
    .filter((a) => a.owner === 'iommufd' && state.pages[a.id] === undefined)
    .sort((a, b) => a.id - b.id);
  leaks.slice(0, TEARDOWN_MAX).forEach((a) => {
    sim.violation('leak', fn, `${a.tag} (${a.size} bytes, allocation ${a.id}) allocated in ${a.fn} was never freed`, {
      alloc: a.id,
      size: a.size,
      tag: a.tag,
      allocFn: a.fn,
    });
  });
  if (leaks.length > TEARDOWN_MAX) {
    const rest = leaks.slice(TEARDOWN_MAX);
    sim.violation(
      'leak',
      fn,
      `and ${rest.length} more iommufd allocations (${rest.reduce((n, a) => n + a.size, 0)} bytes) were never freed`,
      {
        count: rest.length,
      },
    );
  }

  const pinned: { pfn: number; count: number; pins: number }[] = [];
  btreeForEachFrom(state.frames.tree, undefined, (start, seg) => {
    if (seg.value.pins <= 0) return;
    const prev = pinned[pinned.length - 1];
    if (prev !== undefined && prev.pfn + prev.count === start) {
      prev.count += seg.count;
      prev.pins += seg.value.pins * seg.count;
    } else {
      pinned.push({ pfn: start, count: seg.count, pins: seg.value.pins * seg.count });
    }
  });
  pinned.slice(0, TEARDOWN_MAX).forEach((r) => {
    sim.violation(
      'pin_leak',
      fn,
      `pfn ${hex(r.pfn)}${r.count > 1 ? ` +${r.count}` : ''} still holds ${r.pins} pin${r.pins === 1 ? '' : 's'} after everything was closed`,
      {
        pfn: r.pfn,
        count: r.count,
        pins: r.pins,
      },
    );
  });
  if (pinned.length > TEARDOWN_MAX) {
    const rest = pinned.slice(TEARDOWN_MAX);
    sim.violation(
      'pin_leak',
      fn,
      `and ${rest.length} more pinned PFN runs (${rest.reduce((n, r) => n + r.count, 0)} pages) after everything was closed`,
      {
        pfn: (rest[0] as { pfn: number }).pfn,
        count: rest.reduce((n, r) => n + r.count, 0),
      },
    );
  }

  for (const key of Object.keys(state.users).sort((a, b) => Number(a) - Number(b))) {
    const u = state.users[Number(key)];
    if (u === undefined || u.lockedVm === 0) continue;
    sim.violation(
      'accounting_mismatch',
      fn,
      `user ${u.uid}: locked_vm is ${u.lockedVm} pages after everything was closed`,
      {
        uid: u.uid,
        counter: 'user.locked_vm',
        value: u.lockedVm,
      },
    );
  }
  for (const key of Object.keys(state.mms).sort((a, b) => Number(a) - Number(b))) {
    const mm = state.mms[Number(key)];
    if (mm === undefined || mmGone(state, mm.id)) continue;
    for (const [counter, value] of [
      ['mm.locked_vm', mm.lockedVm],
      ['mm.pinned_vm', mm.pinnedVm],
    ] as const) {
      if (value === 0) continue;
      sim.violation(
        'accounting_mismatch',
        fn,
        `mm ${mm.id} (process ${mm.pid}): ${counter.slice(3)} is ${value} pages after everything was closed`,
        {
          mm: mm.id,
          counter,
          value,
        },
      );
    }
  }
}
