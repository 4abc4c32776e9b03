// SPDX-License-Identifier: GPL-2.0-only
/**
 * The incremental invariant checker: the findings of the full checker (index.ts), op by op, without the
 * walks over every run of the guest.
 *
 * It is fed every event of an op (`observe`), then asked for the op's findings (`findings`). From the events
 * it knows what the op touched: index ranges of iopt_pages (xarray, access and domains trees, areas set,
 * filled or freed, their storage domain's mappings, their source mm's page table), IOVA ranges of IOASes and
 * domains, and PFN ranges whose pin count moved. The three run-length walks of the full checker are then
 * done on those ranges only:
 *
 * - the PFN of every covered index (held.ts): kept per iopt_pages, recomputed over the touched index ranges
 *   and spliced in (the PFN of an index does not depend on the range it is asked in, and the contiguous
 *   runs are canonical, so the splice holds the PFNs a from-scratch walk gives, cut in the same contiguous
 *   runs; single pages grouped in stepped rows may be grouped otherwise, which no check reads);
 * - invariant 1 across pages (pins.ts): the expected pin count per PFN is kept as a run-length map, moved
 *   by the segments that changed; where the pins were right after the last op, comparing it with the frame
 *   table over the touched PFN ranges says whether they are still right;
 * - invariant 4's mappings (domains.ts): where a domain mapped exactly its IOAS's filled areas after the
 *   last op, comparing the two over the touched IOVA ranges says whether it still does.
 *
 * Whenever one of these is not known right (it was broken after the last op, or the touched ranges show a
 * difference), the full walk of that part runs, so every finding's text (totals, first runs, who holds a
 * page) is the full checker's, word for word. A broken state costs what the full checker costs; a sound
 * one costs what the op touched. The own checks of a pages (its trees' and xarray's self-checks, its
 * coverage: index.ts, PagesMemo) are kept and redone only for pages whose trees, xarray or npinned an event
 * changed. The other object-level checks (the IOASes' trees, counters, accounting, access counts) still run
 * over every object: they cost the number of objects and tree nodes, not of pages or runs.
 *
 * The differential mode (checker.ts) runs both checkers and throws at the first op they disagree on.
 */
import { replaceSlice } from '../../lib/arrays.js';
import type { Event } from '../../events/events.js';
import type { Area, Pages, State } from '../../state/state.js';
import { mappingAt, mappingsForEachFrom } from '../../structures/mapping-table.js';
import type { RangeMap, RangeSpec } from '../../structures/range-map.js';
import { rangeForEach, rangeMapCreate, rangeUpdate } from '../../structures/range-map.js';
import type { InvariantFinding } from './finding.js';
import type { PfnSeg } from './held.js';
import { areaStartByte, indexToIova, indexToIovaLast, pfnAt, pfnsOver, pushSeg, subSeg } from './held.js';
import type { CheckShortcuts } from './index.js';
import type { LayoutMemo, ObjectsMemo, PagesMemo } from './memo.js';
import { invariantFindings } from './index.js';
import { AccessCountsKept } from './access-counts-kept.js';
import type { HeldKept } from './held-kept.js';
import { updateHeld } from './held-kept.js';
import type { Want } from './domains.js';
import { expectedOfArea } from './domains.js';
import type { Run, Step } from './runs.js';
import { zipSteps } from './runs.js';

/** What the checker last saw of an area: where it was, which pages and storage domain it had. */
interface AreaSeen {
  id: number;
  ioas: string;
  iova: bigint;
  lastIova: bigint;
  pages: number | null;
  firstIndex: number;
  lastIndex: number;
  storageDomain: string | null;
}

/** The parts of an iopt_pages an event touched, as bits: each drops what the memo kept of that part. */
const ACCESS_TREE = 1;
const DOMAINS_TREE = 2;
const XARRAY = 4;
const NPINNED = 8;
const WHOLE_PAGES = ACCESS_TREE | DOMAINS_TREE | XARRAY | NPINNED;

/** The inputs of the object-level checks an event may change (ObjectsMemo): the accounting's, the areas and domains'. */
const ACCOUNTING_INPUTS = 1;
const AREAS_DOMAINS_INPUTS = 2;

/**
 * Which object-level checks an event may change the inputs of. Only the kinds an access op emits are
 * known inert (a pin or unpin through an access moves pages_access records, the access tree, the xarray,
 * frames and heap allocations); every other kind drops both memos. The PFNs an xarray write gives reach the
 * domains' check through the IOVA windows pfnsOf notes, which drop its memo too.
 */
function objectInputs(e: Event): number {
  switch (e.type) {
    case 'OpStarted':
    case 'OpFinished':
    case 'HeapAllocated':
    case 'HeapFreed':
    case 'XaStored':
    case 'XaErased':
    case 'XaStoredRuns':
    case 'XaErasedRuns':
    case 'PagesAccessAllocated':
    case 'PagesAccessUsersChanged':
    case 'PagesAccessFreed':
    case 'AreaAccessesChanged':
    case 'AccessItemAdded':
    case 'AccessItemRemoved':
    case 'PagesPinned':
    case 'PagesUnpinned':
    case 'PagesPinnedRuns':
    case 'PagesUnpinnedRuns':
    case 'Warned':
    case 'ViolationDetected':
      return 0;
    case 'NpinnedChanged':
    case 'LastNpinnedSet':
    case 'AccountingCharged':
    case 'AccountingUncharged':
      return ACCOUNTING_INPUTS;
    case 'ItreeInserted':
    case 'ItreeRemoved':
      return e.tree.kind === 'access' ? 0 : AREAS_DOMAINS_INPUTS;
    default:
      return ACCOUNTING_INPUTS | AREAS_DOMAINS_INPUTS;
  }
}

/** Expected pins per PFN: the number of covered indexes whose PFN it is. */
const COUNT_SPEC: RangeSpec<number> = { keyOf: (n) => `${n}` };

/** Inclusive index windows, or [start, end) IOVA / PFN windows, merged when they overlap or touch. */
function mergeWindows<K extends number | bigint>(wins: [K, K][], inclusive: boolean): [K, K][] {
  // An access op names a few windows: an insertion sort (stable, as sort is) allocates nothing.
  if (wins.length > 16) wins.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  else
    for (let i = 1; i < wins.length; i++) {
      const w = wins[i] as [K, K];
      let j = i - 1;
      for (; j >= 0 && (wins[j] as [K, K])[0] > w[0]; j--) wins[j + 1] = wins[j] as [K, K];
      wins[j + 1] = w;
    }
  const out: [K, K][] = [];
  // Indexed, not destructured: the iterator of `[s, e]` was most of what this function allocated.
  for (let i = 0; i < wins.length; i++) {
    const w = wins[i] as [K, K];
    const s = w[0];
    const e = w[1];
    const prev = out[out.length - 1];
    const touches = prev !== undefined && (inclusive ? (s as number) <= (prev[1] as number) + 1 : s <= prev[1]);
    if (prev !== undefined && touches) {
      if (e > prev[1]) prev[1] = e;
    } else out.push([s, e]);
  }
  return out;
}

/**
 * Note the inclusive index window [s, l] under `key`. A window that overlaps or touches the last one noted
 * for the key extends it (their union is one window, exactly): an op that names every page of a guest one
 * run at a time keeps one window, not one small array per run until the op ends.
 */
/**
 * The pins and mappings compared over a window are built as lists of steps, one per page on a guest of
 * scattered 4 KiB pages: a window is compared in slices of this many PFNs (bytes of IOVA), so that the map
 * of a whole guest builds a few MB of them at a time, not a list per page of the guest. A slice compares
 * the same positions as the whole window would.
 */
const PFN_SLICE = 1 << 16;
const IOVA_SLICE = 1n << 28n;

/** [start, end) windows cut into pieces of at most `slice` (`plus` adds two of their numbers). */
function* sliced<K extends number | bigint>(
  wins: readonly [K, K][],
  slice: K,
  plus: (a: K, b: K) => K,
): Generator<[K, K]> {
  for (const [start, end] of wins) {
    for (let s = start; s < end; s = plus(s, slice)) {
      const e = plus(s, slice);
      yield [s, e < end ? e : end];
    }
  }
}

function pushWin<K>(m: Map<K, Run[]>, key: K, s: number, l: number): void {
  const list = m.get(key);
  if (list === undefined) {
    m.set(key, [[s, l]]);
    return;
  }
  const last = list[list.length - 1];
  if (last !== undefined && s <= last[1] + 1 && l >= last[0] - 1) {
    if (s < last[0]) last[0] = s;
    if (l > last[1]) last[1] = l;
  } else list.push([s, l]);
}

/** Note the IOVA window [s, e) under `key`, extending the last one noted when they overlap or touch (exact). */
function pushIovaWin<K>(m: Map<K, [bigint, bigint][]>, key: K, s: bigint, e: bigint): void {
  const list = m.get(key);
  if (list === undefined) {
    m.set(key, [[s, e]]);
    return;
  }
  const last = list[list.length - 1];
  if (last !== undefined && s <= last[1] && e >= last[0]) {
    if (s < last[0]) last[0] = s;
    if (e > last[1]) last[1] = e;
  } else list.push([s, e]);
}

/** The first position in `segs` (ascending) of a segment that ends at or after index `a`. */
function firstEndingFrom(segs: readonly PfnSeg[], a: number): number {
  let lo = 0;
  let hi = segs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const s = segs[mid] as PfnSeg;
    if (s.index + s.count - 1 >= a) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The first position in `segs` (ascending) of a segment that starts after index `b`. */
function firstStartingAfter(segs: readonly PfnSeg[], b: number): number {
  let lo = 0;
  let hi = segs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((segs[mid] as PfnSeg).index > b) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** `s` clipped to the indexes [a, b]. */
function clip(s: PfnSeg, a: number, b: number): PfnSeg {
  return subSeg(s, Math.max(s.index, a), Math.min(s.index + s.count - 1, b));
}

/** Are `segs[lo..hi)`, each clipped to [a, b], the segments `fresh`? (What clip gives, without the copies.) */
function sameClipped(segs: readonly PfnSeg[], lo: number, hi: number, a: number, b: number, fresh: readonly PfnSeg[]) {
  if (hi - lo !== fresh.length) return false;
  for (let k = lo; k < hi; k++) {
    const s = segs[k] as PfnSeg;
    const t = fresh[k - lo] as PfnSeg;
    const from = Math.max(s.index, a);
    const count = Math.min(s.index + s.count - 1, b) - from + 1;
    if (t.index !== from || t.count !== count || t.pfn !== pfnAt(s, from) || t.known !== s.known) return false;
    // The step of a single page means nothing (clip gives it 1).
    if (count > 1 && t.step !== s.step) return false;
  }
  return true;
}

export class IncrementalChecker {
  /**
   * How often a whole walk ran (pages' PFNs from scratch, the pin comparison over every frame, a domain's
   * mappings against its IOAS): tests read it to see that a sound op was checked by its ranges only.
   */
  readonly walks = { pagesPfns: 0, pins: 0, mappings: 0 };
  /**
   * How often a pages' own checks were taken from its memo (no event touched it since the last check), and
   * the IOAS-level self-checks from theirs (no event touched an IOAS's trees or allocated or freed an area),
   * and the accounting and areas-and-domains checks both from theirs (no event touched their inputs).
   */
  readonly reused = { pages: 0, layout: 0, objects: 0 };
  /** The PFNs each live pages holds, as of the last check. */
  private readonly pfns = new Map<number, PfnSeg[]>();

  /** How many PFN segments the checker keeps for all pages (tests read it to see a stepped layout stay small). */
  pfnSegments(): number {
    let n = 0;
    for (const segs of this.pfns.values()) n += segs.length;
    return n;
  }
  private expectedPins: RangeMap<number> = rangeMapCreate<number>();
  private readonly areas = new Map<number, AreaSeen>();
  /** The shortcuts handed to invariantFindings, made once per state (they close over it). */
  private kept: { state: State; shortcuts: CheckShortcuts } | null = null;
  /** Keys of the findings of the last check. */
  private lastKeys = new Set<string>();
  /** Nothing kept yet, or the run was reconfigured: the next check is done from scratch. */
  private everything = true;

  /** What the per-pages checks found, kept for the parts of pages no event touched since (index.ts, PagesMemo). */
  private readonly pagesMemos = new Map<number, PagesMemo>();
  /** What the IOAS-level self-checks found, kept while no event touched the IOASes' trees or areas. */
  private layoutMemo: LayoutMemo = {};
  /** What the accounting and the areas-and-domains checks found, kept while no event touched their inputs. */
  private objectsMemo: ObjectsMemo = {};
  /** Invariant 5 from what the op's events named (access-counts-kept.ts). */
  private readonly counts = new AccessCountsKept();

  // What the current op touched.
  /** Pages whose trees, xarray or npinned an event changed, with the parts it changed (their memo drops them). */
  private readonly pagesTouched = new Map<number, number>();
  /** The coverage each touched pages had after the last op (its memo dropped it), to be updated. */
  private readonly heldBefore = new Map<number, HeldKept>();
  /** An event touched an IOAS's trees, or allocated or freed an area. */
  private layoutTouched = false;
  /** The object-level checks whose inputs an event of the op may have changed (objectInputs' bits). */
  private objectsTouched = 0;
  private readonly pagesWins = new Map<number, Run[]>();
  private readonly pagesWhole = new Set<number>();
  private readonly touchedAreas = new Set<number>();
  private readonly ioasWins = new Map<string, [bigint, bigint][]>();
  private readonly ioasWhole = new Set<string>();
  private readonly domainWins = new Map<string, [bigint, bigint][]>();
  private readonly domainWhole = new Set<string>();
  private readonly mmWins = new Map<number, Run[]>();
  private pfnWins: [number, number][] = [];

  /** Note what an event touches (call it for every event of the op, after its reducer ran). */
  observe(e: Event): void {
    this.counts.observe(e);
    this.objectsTouched |= objectInputs(e);
    switch (e.type) {
      case 'RunConfigured':
        this.everything = true;
        break;
      case 'XaStored':
      case 'XaErased':
        pushWin(this.pagesWins, e.pages, e.index, e.index + e.count - 1);
        this.touchPages(e.pages, XARRAY);
        break;
      case 'XaStoredRuns':
        for (const [index, , count] of e.runs) pushWin(this.pagesWins, e.pages, index, index + count - 1);
        this.touchPages(e.pages, XARRAY);
        break;
      case 'XaErasedRuns':
        for (const [index, count] of e.runs) pushWin(this.pagesWins, e.pages, index, index + count - 1);
        this.touchPages(e.pages, XARRAY);
        break;
      case 'NpinnedChanged':
        this.touchPages(e.pages, NPINNED);
        break;
      case 'ItreeInserted':
      case 'ItreeRemoved': {
        const t = e.tree;
        if (t.kind === 'access' || t.kind === 'domains') {
          pushWin(this.pagesWins, t.pages, Number(e.start), Number(e.last));
          this.touchPages(t.pages, t.kind === 'access' ? ACCESS_TREE : DOMAINS_TREE);
          if (t.kind === 'domains') this.touchedAreas.add(e.node);
        } else {
          this.layoutTouched = true;
          if (t.kind === 'area') {
            pushIovaWin(this.ioasWins, t.ioas, BigInt(e.start), BigInt(e.last) + 1n);
            this.touchedAreas.add(e.node);
          }
        }
        break;
      }
      case 'AreaAllocated':
      case 'AreaFreed':
        this.layoutTouched = true;
        this.touchedAreas.add(e.area);
        break;
      case 'AreaPagesSet':
      case 'AreaStorageDomainSet':
        this.touchedAreas.add(e.area);
        break;
      case 'IommuMapped':
        pushIovaWin(this.domainWins, e.domain, e.iova, e.iova + e.size);
        break;
      case 'IommuMappedRuns':
        for (const x of e.extents) pushIovaWin(this.domainWins, e.domain, x.iova, x.iova + x.size);
        break;
      case 'IommuUnmapped':
        for (const [iova, size] of e.removed) pushIovaWin(this.domainWins, e.domain, iova, iova + size);
        break;
      case 'DomainAllocated':
      case 'DomainFreed':
        this.domainWhole.add(e.domain);
        break;
      case 'IoasAllocated':
        this.layoutTouched = true;
        this.ioasWhole.add(e.ioas);
        break;
      case 'IoasDomainsSet':
        this.ioasWhole.add(e.ioas);
        break;
      case 'VmaMapped':
      case 'VmaUnmapped':
        pushWin(this.mmWins, e.mm, e.vpn, e.vpn + e.npages - 1);
        break;
      case 'CowBroken':
        pushWin(this.mmWins, e.mm, e.vpn, e.vpn + (e.npages ?? 1) - 1);
        break;
      case 'PagesAllocated':
      case 'PagesReleased':
      case 'PagesSourceChanged':
        this.pagesWhole.add(e.pages);
        this.touchPages(e.pages, WHOLE_PAGES);
        break;
      case 'PagesPinned':
      case 'PagesUnpinned':
        this.pushPfnWin(e.pfn, e.pfn + e.count);
        break;
      case 'PagesPinnedRuns':
      case 'PagesUnpinnedRuns':
        for (const [pfn, count] of e.runs) this.pushPfnWin(pfn, pfn + count);
        break;
      default:
        break;
    }
  }

  private touchPages(pages: number, parts: number): void {
    this.pagesTouched.set(pages, (this.pagesTouched.get(pages) ?? 0) | parts);
  }

  /** The findings after the op whose events were observed: exactly what invariantFindings(state) gives. */
  findings(state: State): InvariantFinding[] {
    let out: InvariantFinding[];
    if (this.everything) {
      this.pagesMemos.clear();
      this.layoutMemo = {};
      this.objectsMemo = {};
      this.pfns.clear();
      this.expectedPins = rangeMapCreate<number>();
      this.areas.clear();
      for (const a of Object.values(state.areas)) this.areas.set(a.id, this.seen(a));
      out = invariantFindings(state, {
        pfnsOf: (p, cover) => this.fresh(state, p, cover),
        pinsKnownClean: () => {
          this.walks.pins += 1;
          return false;
        },
        mappingsKnownClean: () => {
          this.walks.mappings += 1;
          return false;
        },
        accessCounts: (pages, found) => this.counts.check(state, pages, found),
      });
      this.everything = false;
    } else {
      this.resolveTouched(state);
      if (this.kept?.state !== state) this.kept = { state, shortcuts: this.shortcuts(state) };
      out = invariantFindings(state, this.kept.shortcuts);
    }
    // A sound op after a sound op (every access op of a clean run) keeps the empty set it had.
    if (out.length > 0 || this.lastKeys.size > 0) this.lastKeys = new Set(out.map((f) => f.key));
    this.clearTouched();
    return out;
  }

  private seen(a: Area): AreaSeen {
    return {
      id: a.id,
      ioas: a.ioas,
      iova: a.iova,
      lastIova: a.lastIova,
      pages: a.pages,
      firstIndex: a.firstIndex,
      lastIndex: a.lastIndex,
      storageDomain: a.storageDomain,
    };
  }

  private clearTouched(): void {
    // Map.clear allocates a new table even when the map is empty: clear only what the op filled. One call
    // each, not a loop over a list of them: a call site that sees both Maps and Sets is megamorphic.
    if (this.pagesTouched.size > 0) this.pagesTouched.clear();
    if (this.pagesWins.size > 0) this.pagesWins.clear();
    if (this.pagesWhole.size > 0) this.pagesWhole.clear();
    if (this.touchedAreas.size > 0) this.touchedAreas.clear();
    if (this.ioasWins.size > 0) this.ioasWins.clear();
    if (this.ioasWhole.size > 0) this.ioasWhole.clear();
    if (this.domainWins.size > 0) this.domainWins.clear();
    if (this.domainWhole.size > 0) this.domainWhole.clear();
    if (this.mmWins.size > 0) this.mmWins.clear();
    if (this.pfnWins.length > 0) this.pfnWins = [];
    if (this.heldBefore.size > 0) this.heldBefore.clear();
    this.layoutTouched = false;
    this.objectsTouched = 0;
  }

  /** An area's whole range, before and after the op, in its pages and in its IOAS. */
  private touchArea(a: AreaSeen): void {
    if (a.pages !== null) pushWin(this.pagesWins, a.pages, a.firstIndex, a.lastIndex);
    pushIovaWin(this.ioasWins, a.ioas, a.iova, a.lastIova + 1n);
  }

  /** Turn what the events named into index ranges of pages and IOVA ranges of IOASes. */
  private resolveTouched(state: State): void {
    for (const id of this.touchedAreas) {
      const before = this.areas.get(id);
      const now = state.areas[id];
      if (before !== undefined) this.touchArea(before);
      if (now !== undefined) {
        const seen = this.seen(now);
        this.touchArea(seen);
        this.areas.set(id, seen);
      } else {
        this.areas.delete(id);
      }
    }
    // A storage domain's mappings give the PFNs of the indexes its filled areas cover.
    if (this.domainWins.size > 0 || this.domainWhole.size > 0) {
      for (const a of this.areas.values()) {
        if (a.storageDomain === null || a.pages === null) continue;
        if (this.domainWhole.has(a.storageDomain)) {
          this.touchArea(a);
          continue;
        }
        const area = state.areas[a.id];
        for (const [s, e] of this.domainWins.get(a.storageDomain) ?? []) {
          const lo = s > a.iova ? s : a.iova;
          const hi = e - 1n < a.lastIova ? e - 1n : a.lastIova;
          if (lo > hi || area === undefined) continue;
          pushWin(this.pagesWins, a.pages, this.indexOf(state, area, lo), this.indexOf(state, area, hi));
        }
      }
    }
    // A source mm's page table gives the PFNs nothing else gives.
    if (this.mmWins.size > 0) {
      const page = BigInt(state.config.pageSize);
      for (const p of Object.values(state.pages)) {
        const wins = this.mmWins.get(p.sourceMm);
        if (wins === undefined) continue;
        const base = Number(p.uptr / page);
        for (const [s, l] of wins) pushWin(this.pagesWins, p.id, s - base, l - base);
      }
    }
    for (const id of this.pagesWhole) {
      const p = state.pages[id];
      const kept = this.pfns.get(id);
      if (kept !== undefined) {
        this.movePins(kept, -1);
        this.pfns.delete(id);
      }
      if (p === undefined) {
        this.ioasOfPagesWhole(id);
        this.pagesMemos.delete(id);
      }
    }
  }

  /** The index of the page that holds byte `iova` of an area. */
  private indexOf(state: State, area: Area, iova: bigint): number {
    const page = BigInt(state.config.pageSize);
    return Number((iova - area.iova + areaStartByte(area, page)) / page);
  }

  /** A pages went away: the IOVA of every area that pointed to it must be looked at again. */
  private ioasOfPagesWhole(pages: number): void {
    for (const a of this.areas.values()) if (a.pages === pages) this.touchArea(a);
  }

  /** Add (`sign` 1) or remove (-1) the pins a list of segments expects, noting the PFN ranges. */
  private movePins(segs: readonly PfnSeg[], sign: 1 | -1): void {
    const move = (old: number | undefined): number | undefined => {
      const n = (old ?? 0) + sign;
      return n === 0 ? undefined : n;
    };
    for (const s of segs) {
      if (s.pfn === null || s.count <= 0) continue;
      if (s.step === 1) {
        this.pushPfnWin(s.pfn, s.pfn + s.count);
        rangeUpdate(this.expectedPins, s.pfn, s.count, move, COUNT_SPEC);
        continue;
      }
      // A stepped row: its frames are apart, one range per page (the cost is the pages that moved).
      for (let i = 0; i < s.count; i++) {
        const pfn = s.pfn + i * s.step;
        this.pushPfnWin(pfn, pfn + 1);
        rangeUpdate(this.expectedPins, pfn, 1, move, COUNT_SPEC);
      }
    }
  }

  /**
   * Note the PFN window [s, e) whose pins moved. It extends the last one noted when they overlap or touch,
   * and also across a gap no longer than itself: then the window is the hull, which covers a few frames no
   * pin moved on. That is sound: the pins comparison over a window is a pure function of the state there,
   * so comparing more frames finds what comparing fewer finds (and nothing else where all is right). Each
   * gap bridged is at most the window added, so the hull is at most twice the frames that moved, and a row
   * of frames every other PFN is one window instead of one per page.
   */
  private pushPfnWin(s: number, e: number): void {
    const last = this.pfnWins[this.pfnWins.length - 1];
    if (last !== undefined) {
      const len = e - s;
      if (s <= last[1] + len && e >= last[0] - len) {
        if (s < last[0]) last[0] = s;
        if (e > last[1]) last[1] = e;
        return;
      }
    }
    this.pfnWins.push([s, e]);
  }

  /** The PFNs of a pages from scratch, kept, and their pins expected. */
  private fresh(state: State, p: Pages, cover: readonly Run[]): PfnSeg[] {
    const segs: PfnSeg[] = [];
    this.walks.pagesPfns += 1;
    pfnsOver(state, p, cover, segs);
    this.pfns.set(p.id, segs);
    this.movePins(segs, 1);
    return segs;
  }

  private pagesMemo(p: Pages): PagesMemo {
    const memo = this.pagesMemos.get(p.id);
    if (memo === undefined) {
      const fresh: PagesMemo = {};
      this.pagesMemos.set(p.id, fresh);
      return fresh;
    }
    const parts = this.pagesTouched.get(p.id);
    if (parts === undefined) {
      this.reused.pages += 1;
      return memo;
    }
    // The coverage reads every part (it is updated over the op's windows); each self-check reads its own
    // structure only.
    if (memo.held !== undefined && !this.pagesWhole.has(p.id)) this.heldBefore.set(p.id, memo.held);
    delete memo.held;
    if ((parts & ACCESS_TREE) !== 0) delete memo.accessTree;
    if ((parts & DOMAINS_TREE) !== 0) delete memo.domainsTree;
    if ((parts & XARRAY) !== 0) delete memo.xa;
    return memo;
  }

  /** The coverage of a touched pages, updated over the op's index windows (held-kept.ts). */
  private heldCover(p: Pages, memo: PagesMemo): HeldKept | undefined {
    const before = this.heldBefore.get(p.id);
    const parts = this.pagesTouched.get(p.id);
    // A corrupt tree may hide nodes from a window's walk: the full walk then.
    if (before === undefined || parts === undefined || memo.accessTree?.length !== 0) return undefined;
    if (memo.domainsTree?.length !== 0) return undefined;
    const wins = mergeWindows(this.pagesWins.get(p.id) ?? [], true);
    return updateHeld(p, before, wins, {
      access: (parts & ACCESS_TREE) !== 0,
      domains: (parts & DOMAINS_TREE) !== 0,
      xa: (parts & XARRAY) !== 0,
    });
  }

  private layout(): LayoutMemo {
    if (this.layoutTouched) this.layoutMemo = {};
    else if (this.layoutMemo.structures !== undefined) this.reused.layout += 1;
    return this.layoutMemo;
  }

  /** Asked after every pages' PFNs were brought up to date: the IOVA windows they changed are noted by then. */
  private objects(): ObjectsMemo {
    const memo = this.objectsMemo;
    const accounting = (this.objectsTouched & ACCOUNTING_INPUTS) === 0 ? memo.accounting : undefined;
    const areasAndDomains =
      (this.objectsTouched & AREAS_DOMAINS_INPUTS) === 0 &&
      this.ioasWins.size === 0 &&
      this.ioasWhole.size === 0 &&
      this.domainWins.size === 0 &&
      this.domainWhole.size === 0
        ? memo.areasAndDomains
        : undefined;
    if (accounting === memo.accounting && areasAndDomains === memo.areasAndDomains) {
      if (accounting !== undefined && areasAndDomains !== undefined) this.reused.objects += 1;
      return memo;
    }
    const next: ObjectsMemo = {};
    if (accounting !== undefined) next.accounting = accounting;
    if (areasAndDomains !== undefined) next.areasAndDomains = areasAndDomains;
    this.objectsMemo = next;
    return next;
  }

  private shortcuts(state: State): CheckShortcuts {
    return {
      pagesMemo: (p) => this.pagesMemo(p),
      layoutMemo: () => this.layout(),
      objectsMemo: () => this.objects(),
      heldCover: (p, memo) => this.heldCover(p, memo),
      accessCounts: (pages, found) => this.counts.check(state, pages, found),
      pfnsOf: (p, cover) => this.pfnsOf(state, p, cover),
      pinsKnownClean: () => {
        const clean = this.pinsKnownClean(state);
        if (!clean) this.walks.pins += 1;
        return clean;
      },
      mappingsKnownClean: (ioas, domain, filled) => {
        const clean = this.mappingsKnownClean(state, ioas, domain, filled);
        if (!clean) this.walks.mappings += 1;
        return clean;
      },
    };
  }

  private pfnsOf(state: State, p: Pages, cover: readonly Run[]): PfnSeg[] {
    let segs = this.pfns.get(p.id);
    if (segs === undefined) {
      segs = this.fresh(state, p, cover);
      this.ioasOfPagesWhole(p.id);
      return segs;
    }
    const wins = this.pagesWins.get(p.id);
    if (wins === undefined) return segs;
    for (const [a, b] of mergeWindows(wins, true)) {
      const fresh: PfnSeg[] = [];
      pfnsOver(state, p, cover, fresh, a, b);
      const next = this.splice(segs, a, b, fresh);
      if (next === null) continue;
      segs = next;
      for (const area of this.areas.values()) {
        if (area.pages !== p.id) continue;
        const from = Math.max(a, area.firstIndex);
        const to = Math.min(b, area.lastIndex);
        if (from > to) continue;
        const live = state.areas[area.id];
        if (live === undefined) continue;
        const page = BigInt(state.config.pageSize);
        pushIovaWin(this.ioasWins, area.ioas, indexToIova(live, from, page), indexToIovaLast(live, to, page) + 1n);
      }
    }
    this.pfns.set(p.id, segs);
    return segs;
  }

  /**
   * Replace the indexes [a, b] of `segs` by `fresh` (the PFNs of those indexes now), merging at the edges as
   * pushSeg would. Null when nothing changed; otherwise the new list (maybe `segs` itself, changed in place).
   * The segment before the window is pushed again too: a page of it may join a contiguous run the window
   * now starts, and the last page of a stepped row may leave it for one.
   */
  private splice(segs: PfnSeg[], a: number, b: number, fresh: readonly PfnSeg[]): PfnSeg[] | null {
    const lo = firstEndingFrom(segs, a);
    // The segments from `lo` on start after `a` at most one by one: a window holds a few, so this scan
    // is firstStartingAfter(segs, b) without a second search through a guest's worth of segments.
    let hi = lo;
    while (hi < segs.length && (segs[hi] as PfnSeg).index <= b) hi++;
    if (sameClipped(segs, lo, hi, a, b, fresh)) return null;
    const removed: PfnSeg[] = [];
    for (let k = lo; k < hi; k++) removed.push(clip(segs[k] as PfnSeg, a, b));
    this.movePins(removed, -1);
    this.movePins(fresh, 1);
    const from = Math.max(lo - 1, 0);
    const to = Math.min(hi + 1, segs.length);
    const rebuilt: PfnSeg[] = [];
    for (let k = from; k < lo; k++) pushSeg(rebuilt, { ...(segs[k] as PfnSeg) });
    if (lo < hi) {
      const left = segs[lo] as PfnSeg;
      if (left.index < a) pushSeg(rebuilt, subSeg(left, left.index, a - 1));
    }
    for (const f of fresh) pushSeg(rebuilt, { ...f });
    if (lo < hi) {
      const right = segs[hi - 1] as PfnSeg;
      const end = right.index + right.count;
      if (end - 1 > b) pushSeg(rebuilt, subSeg(right, b + 1, end - 1));
    }
    for (let k = hi; k < to; k++) pushSeg(rebuilt, { ...(segs[k] as PfnSeg) });
    return replaceSlice(segs, from, to, rebuilt);
  }

  /** The pins were right after the last op, and the frames agree with the expected pins where either moved. */
  private pinsKnownClean(state: State): boolean {
    if (this.lastKeys.has('pins:surplus') || this.lastKeys.has('pins:deficit')) return false;
    for (const [start, end] of sliced(mergeWindows(this.pfnWins, false), PFN_SLICE, (a, b) => a + b)) {
      const want: Step<number, number>[] = [];
      rangeForEach(this.expectedPins, start, end - start, (s, n, v) => {
        want.push({ start: s, end: s + n, value: v });
      });
      const have: Step<number, number>[] = [];
      rangeForEach(state.frames, start, end - start, (s, n, f) => {
        if (f.pins > 0) have.push({ start: s, end: s + n, value: f.pins });
      });
      let clean = true;
      zipSteps(want, have, (_s, _e, w, h) => {
        if ((w ?? 0) !== (h ?? 0)) clean = false;
      });
      if (!clean) return false;
    }
    return true;
  }

  /**
   * The domain mapped exactly the IOAS's filled areas after the last op, and still does over every IOVA
   * range the op touched (in the IOAS or in the domain).
   */
  private mappingsKnownClean(state: State, ioas: string, domain: string, filled: readonly Area[]): boolean {
    if (this.ioasWhole.has(ioas) || this.domainWhole.has(domain)) return false;
    // The keys are built only when the last check found something (a sound run finds nothing op after op).
    if (
      this.lastKeys.size > 0 &&
      (this.lastKeys.has(`mappings:${ioas}:${domain}`) || this.lastKeys.has(`domain-missing:${ioas}:${domain}`))
    )
      return false;
    const d = state.domains[domain];
    if (d === undefined) return false;
    // Overlapping areas (a corrupt area_itree) make the expected layout ambiguous: leave them to the full walk.
    for (let k = 1; k < filled.length; k++)
      if ((filled[k] as Area).iova <= (filled[k - 1] as Area).lastIova) return false;
    const ioasWins = this.ioasWins.get(ioas);
    const domainWins = this.domainWins.get(domain);
    if (ioasWins === undefined && domainWins === undefined) return true;
    const wins = [...(ioasWins ?? []), ...(domainWins ?? [])];
    if (wins.length === 0) return true;
    for (const [w0, w1] of sliced(mergeWindows(wins, false), IOVA_SLICE, (a, b) => a + b)) {
      const expected: Step<bigint, Want>[] = [];
      for (const a of filled) {
        if (a.lastIova < w0 || a.iova >= w1) continue;
        const lo = w0 > a.iova ? w0 : a.iova;
        const hi = w1 - 1n < a.lastIova ? w1 - 1n : a.lastIova;
        const iLo = this.indexOf(state, a, lo);
        const iHi = this.indexOf(state, a, hi);
        const segs = this.pfns.get(a.pages as number) ?? [];
        const s0 = firstEndingFrom(segs, iLo);
        const s1 = firstStartingAfter(segs, iHi);
        const pieces: Step<bigint, Want>[] = [];
        // Cut to the window: a stepped segment may hold a whole guest, and a window is a slice of it.
        const inWindow = segs.slice(s0, s1).map((g) => {
          const from = Math.max(g.index, iLo);
          const to = Math.min(g.index + g.count - 1, iHi);
          return from === g.index && to === g.index + g.count - 1 ? g : subSeg(g, from, to);
        });
        expectedOfArea(state, a, { pfns: inWindow }, pieces);
        for (const piece of pieces) {
          const s = piece.start > w0 ? piece.start : w0;
          const e = piece.end < w1 ? piece.end : w1;
          if (s < e) expected.push({ start: s, end: e, value: piece.value });
        }
      }
      const actual: Step<bigint, bigint>[] = [];
      const take = (iova: bigint, size: bigint, paddr: bigint): void => {
        const s = iova > w0 ? iova : w0;
        const e = iova + size < w1 ? iova + size : w1;
        if (s < e) actual.push({ start: s, end: e, value: paddr - iova });
      };
      const head = mappingAt(d.mappings, w0);
      if (head !== undefined && head.iova < w0) take(head.iova, head.size, head.paddr);
      mappingsForEachFrom(d.mappings, w0, (m) => {
        if (m.iova >= w1) return false;
        take(m.iova, m.size, m.paddr);
        return true;
      });
      let clean = true;
      zipSteps(expected, actual, (_s, _e, a, b) => {
        if (a === undefined || b === undefined ? a !== b : a !== null && a !== b) clean = false;
      });
      if (!clean) return false;
    }
    return true;
  }
}
