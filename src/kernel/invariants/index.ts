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
 * One file per invariant (held.ts: 1 and 2 per pages, pins.ts: 1 across pages, accounting.ts: 3,
 * domains.ts: 4, access-counts.ts: 5, structures.ts: the trees' self-checks), the run algebra they share
 * (runs.ts) and teardown.ts; this file runs them in order and reports.
 *
 * Deliberate exemptions (upstream behaviour, not defects): an mm whose address space is gone cannot be
 * uncharged (update_mm_locked_vm needs mmget_not_zero), so MM-mode pages of such an mm may keep a stale
 * last_npinned, and that mm's counters are not checked, at rest or at teardown.
 */
import type { Sim } from '../../machine/sim.js';
import type { Pages, State } from '../../state/state.js';
import type { InvariantFinding } from './finding.js';
import type { Held } from './held.js';
import type { PfnSeg } from './held.js';
import type { Run } from './runs.js';
import type { MappingsKnownClean } from './domains.js';
import { heldCover, pfnsOver } from './held.js';
import { checkPins } from './pins.js';
import { checkAccounting } from './accounting.js';
import { checkAreasAndDomains } from './domains.js';
import { checkAccessCounts } from './access-counts.js';
import type { LayoutMemo, ObjectsMemo, PagesMemo } from './memo.js';
import { checkStructures } from './structures.js';

export type { InvariantFinding } from './finding.js';
export { checkTeardown } from './teardown.js';

export type { LayoutMemo, ObjectsMemo, PagesMemo } from './memo.js';

/**
 * What lets a checker skip the run-length walks (incremental.ts): the PFNs each pages holds, kept from op to
 * op, and whether the pin counts and the domains' mappings are known to be right. Without one every
 * walk is done from scratch (the full checker, the oracle).
 */
export interface CheckShortcuts {
  /** The PFNs of `p`'s covered indexes, as pfnsOver gives them for the whole `cover`. */
  pfnsOf(p: Pages, cover: readonly Run[]): PfnSeg[];
  /** True when every frame's pin count is known to equal what the covered indexes expect. */
  pinsKnownClean(): boolean;
  mappingsKnownClean: MappingsKnownClean;
  /** The memo of `p`: what was found of it last time, less what an event touched since. */
  pagesMemo?(p: Pages): PagesMemo;
  /**
   * The coverage of `p` (heldCover's, with its findings) from what was kept, once `memo`'s self-checks are
   * filled in; undefined when it must be computed from scratch.
   */
  heldCover?(p: Pages, memo: PagesMemo): NonNullable<PagesMemo['held']> | undefined;
  /** The memo of the IOAS-level self-checks: what was found last time, if nothing touched it since. */
  layoutMemo?(): LayoutMemo;
  /**
   * The memo of the object-level checks (accounting, areas and domains): what was found last time, less
   * what the op's events (or the PFNs the pages hold, for the domains) may have changed. Asked after pfnsOf.
   */
  objectsMemo?(): ObjectsMemo;
  /** Invariant 5, answered from what the checker kept (access-counts.ts gives the same findings). */
  accessCounts?(pages: readonly Pages[], out: InvariantFinding[]): void;
}

/**
 * Every broken invariant of a state at rest, in a deterministic order (pure: reads the state only; the
 * shortcuts, when given, answer some questions from what they kept).
 */
export function invariantFindings(state: State, shortcuts?: CheckShortcuts): InvariantFinding[] {
  const out: InvariantFinding[] = [];
  const pages = Object.keys(state.pages)
    .map(Number)
    .sort((a, b) => a - b)
    .map((id) => state.pages[id] as Pages);
  const memos = shortcuts?.pagesMemo === undefined ? undefined : pages.map((p) => shortcuts.pagesMemo?.(p) ?? {});
  checkStructures(state, pages, out, memos, shortcuts?.layoutMemo?.());
  const held = new Map<number, Held>();
  for (const [k, p] of pages.entries()) {
    const memo = memos?.[k];
    let kept = memo?.held;
    if (kept === undefined && memo !== undefined) kept = shortcuts?.heldCover?.(p, memo);
    if (kept === undefined) {
      const findings: InvariantFinding[] = [];
      kept = { ...heldCover(state, p, findings), findings };
    }
    if (memo !== undefined) memo.held = kept;
    for (const f of kept.findings) out.push(f);
    const { access, domains, cover } = kept;
    let pfns: PfnSeg[];
    if (shortcuts !== undefined) {
      pfns = shortcuts.pfnsOf(p, cover);
    } else {
      pfns = [];
      pfnsOver(state, p, cover, pfns);
    }
    held.set(p.id, { pages: p, access, domains, cover, pfns });
  }
  if (shortcuts?.pinsKnownClean() !== true) checkPins(state, [...held.values()], out);
  const objects = shortcuts?.objectsMemo?.();
  if (objects === undefined) {
    checkAccounting(state, pages, out);
    checkAreasAndDomains(state, held, out, shortcuts?.mappingsKnownClean);
  } else {
    if (objects.accounting === undefined) checkAccounting(state, pages, (objects.accounting = []));
    for (const f of objects.accounting) out.push(f);
    if (objects.areasAndDomains === undefined)
      checkAreasAndDomains(state, held, (objects.areasAndDomains = []), shortcuts?.mappingsKnownClean);
    for (const f of objects.areasAndDomains) out.push(f);
  }
  if (shortcuts?.accessCounts !== undefined) shortcuts.accessCounts(pages, out);
  else checkAccessCounts(state, pages, out);
  return out;
}

/** Findings already reported for each run, by key, with the text they had. */
const reported = new WeakMap<Sim, Map<string, string>>();

/**
 * Check the global invariants at rest (after every operation) and report each breach that is new, or
 * whose details changed, as a violation of `fn`.
 */
export function checkInvariants(sim: Sim, fn = 'invariants'): void {
  reportFindings(sim, invariantFindings(sim.state), fn);
}

/** Report each finding that is new, or whose details changed since the last report for this run. */
export function reportFindings(sim: Sim, findings: readonly InvariantFinding[], fn = 'invariants'): void {
  const before = reported.get(sim) ?? new Map<string, string>();
  const now = new Map<string, string>();
  for (const f of findings) {
    if (now.has(f.key)) continue;
    const signature = f.signature ?? f.detail;
    now.set(f.key, signature);
    if (before.get(f.key) !== signature) sim.violation(f.kind, fn, f.detail, f.objects);
  }
  reported.set(sim, now);
}
