// SPDX-License-Identifier: GPL-2.0-only
/**
 * Fix bisect: which fix flag of spec section 17, taken in upstream order as git bisect takes commits, first
 * changes a trace's outcome.
 *
 * The walk. From the bad variant to the good one, the flags on which they differ are toggled one at a time
 * in FIX_FLAGS order (added when the good side has the flag, removed when only the bad side has it):
 * variant_0 = bad, variant_k = bad with the first k toggles, variant_F = good. Usually bad is a subset of
 * good (v3 -> upstream) and every toggle is an addition.
 *
 * The outcome of a replay (Outcome below) is exactly:
 *   - findings: every violation as `violation KIND FN` and every WARN as `warn FN`, sorted, repeats kept;
 *   - mismatches: every unmet expectation or failed check as `line L FIELD: expected X, got Y`, sorted;
 *   - digest: the neutral state digest after teardown (neutral.ts: the derived IOVA alignment left out).
 * Two outcomes are equal when all three are.
 *
 * The search. A flip is a k where outcome(k) differs from outcome(k - 1). Binary search for the first k
 * whose outcome differs from outcome(lo), starting with lo = 0: O(log F) replays. The k found is always a
 * true flip (both neighbours were replayed). If outcome(k) is not yet the good outcome, the outcome changes
 * again later: the search continues from k, each time O(log F), until it reaches the good outcome. More
 * than one flip means the outcome is not monotonic over the flag order, and every flip found is reported.
 * A flip that is undone between two probes (A -> B -> A) is invisible to any bisection; `all` replays
 * every variant_k instead (F + 1 replays) and finds every flip.
 *
 * Unflagged [merged] behaviour (spec text marked [merged] with no flag, such as per-access IOVA alignment or
 * unmap-all of an empty IOAS returning 0) turns on with the last pre-merge flag a variant gains; a flip at
 * that step is marked `completesMerged`, since the flag named may not be the cause.
 *
 * Attribution (the answer). A developer asks which upstream commit fixed a defect, and the first flip is
 * often a flag that only adds or removes an unrelated WARN. So every finding of the bad run (the j-th of
 * its name, in event order) is attributed to the step that removes it: a k where variant_{k-1} has more
 * than j findings of that name and variant_k has not, found by bisection over the cached probes (the first
 * such k with `all`). Every finding that a flip introduces is attributed to that flip's flag. The answer is
 * the flag that removes the bad run's first violation (its first finding if it has no violation).
 *
 * Replays run in memory (no store): the intermediate variants are throwaway, and the store would keep every
 * one of their events. For each flip, the op where the outcome changes is the first op where
 * variant_{k-1} and variant_k disagree (neutral digest, errno or result), found from the kept op keys.
 */
import { FIX_FLAGS, isMerged } from '../kernel/variants.js';
import type { FixFlag, VariantSpec } from '../kernel/variants.js';
import type { ParsedTrace } from '../replay/parse.js';
import type { ReplayResult } from '../replay/replayer.js';
import type { Divergence } from './divergence.js';
import { divergenceInMemory, replayKeyed } from './memory.js';
import type { OpRow } from '../store/index.js';
import { opDifferences } from './scan.js';
import { hex } from '../lib/format.js';

export interface Outcome {
  findings: string[];
  mismatches: string[];
  digest: string;
  /** The findings in the order the run met them (by event), with where: what attribution follows. */
  ordered: FoundFinding[];
}

/** One finding of a run, as the outcome names it (`violation KIND FN`, `warn FN`), with where it was. */
export interface FoundFinding {
  finding: string;
  /** 0 for the first finding of this name in the run, 1 for the second, ... */
  occurrence: number;
  violation: boolean;
  op: number;
  line: number;
}

/**
 * Which flag removes a finding of the bad run, or introduces a finding that a later step has: the step
 * whose toggle takes the finding's count (of its name) below / above its occurrence.
 */
export interface Attribution extends FoundFinding {
  /** The flag, or null when the good variant still has the finding. */
  flag: string | null;
  commit: string | null;
  /** Its step in the walk (variant_k is the first with the toggle); null with the flag. */
  k: number | null;
}

/** The answer to "which fix removed this defect": the flag that removes the bad run's first violation. */
export interface FixAnswer {
  flag: string;
  commit: string;
  release: string;
  section: string;
  k: number;
  /** The finding it removes (the bad run's first violation; its first finding if it has no violation). */
  removes: FoundFinding;
  /** The first op where the variants just before and after the flag disagree. */
  op: number | null;
  line: number | null;
  opName: string | null;
}

/** One step of the walk: a flag and whether it is added or removed. */
export interface FixStep {
  flag: FixFlag;
  action: 'add' | 'remove';
}

/** What changed between outcome(k - 1) and outcome(k). */
export interface OutcomeChange {
  /** Findings only before / only after the toggle (multiset difference). */
  findingsGone: string[];
  findingsNew: string[];
  mismatchesGone: string[];
  mismatchesNew: string[];
  digestBefore: string;
  digestAfter: string;
}

export interface Flip {
  /** 1-based position in the walk: variant_k is the first variant with this toggle. */
  k: number;
  flag: string;
  action: 'add' | 'remove';
  commit: string;
  release: string;
  /** Spec sections of the flag. */
  section: string;
  summary: string;
  /** The first op where variant_{k-1} and variant_k disagree, with its line; null if none does. */
  op: number | null;
  line: number | null;
  opName: string | null;
  change: OutcomeChange;
  /**
   * True when this toggle also switches the unflagged [merged] behaviour (the variant gains or loses its
   * last pre-merge flag, isMerged): the change may come from that behaviour rather than from the flag.
   */
  completesMerged: boolean;
  /** The divergence at that op (diff and events), when asked for. */
  divergence: Divergence | null;
}

export interface FixBisectOptions {
  /** Replay every variant_k (F + 1 replays) and report every flip, not only those bisection meets. */
  all?: boolean;
  /** Describe the divergence at each flip's op (two more replays per flip). */
  diff?: boolean;
  failNth?: number | null;
}

export interface FixBisectReport {
  good: VariantSpec;
  bad: VariantSpec;
  steps: FixStep[];
  outcomeBad: Outcome;
  outcomeGood: Outcome;
  /** The flips found, in walk order; the first is the answer. Empty when bad and good have one outcome. */
  flips: Flip[];
  /** True with exactly one flip; false with several; null when no flip was found. */
  monotonic: boolean | null;
  /** True when every variant_k was replayed (`all`), so `flips` is every flip there is. */
  exhaustive: boolean;
  /** Replays run for the search (diff replays not counted). */
  replays: number;
  /** Every finding of the bad run, with the flag that removes it. */
  removed: Attribution[];
  /** Every finding a step of the walk introduces (flips' new findings), with the flag that introduced it. */
  introduced: Attribution[];
  /**
   * The headline: the flag that removes the bad run's first violation (or first finding); null when the
   * bad run has no finding or the good variant keeps it.
   */
  answer: FixAnswer | null;
}

function text(v: unknown): string {
  return typeof v === 'bigint' ? hex(v) : typeof v === 'string' ? v : JSON.stringify(v);
}

/** The outcome of one replay (see the file comment); `digest` is the neutral digest after teardown. */
export function outcomeOf(result: ReplayResult, finalDigest: string): Outcome {
  const seen = new Map<string, number>();
  const ordered: FoundFinding[] = [
    ...result.violations.map((v) => ({ seq: v.seq, finding: `violation ${v.kind} ${v.fn}`, violation: true, v })),
    ...result.warns.map((w) => ({ seq: w.seq, finding: `warn ${w.fn}`, violation: false, v: w })),
  ]
    .sort((x, y) => x.seq - y.seq)
    .map((f) => {
      const occurrence = seen.get(f.finding) ?? 0;
      seen.set(f.finding, occurrence + 1);
      return { finding: f.finding, occurrence, violation: f.violation, op: f.v.op, line: f.v.line };
    });
  const findings = [
    ...result.violations.map((v) => `violation ${v.kind} ${v.fn}`),
    ...result.warns.map((w) => `warn ${w.fn}`),
  ].sort();
  const mismatches = result.mismatches
    .map((m) => `line ${m.line} ${m.field}: expected ${text(m.expected)}, got ${text(m.actual)}`)
    .sort();
  return { findings, mismatches, digest: finalDigest, ordered };
}

export function sameOutcome(x: Outcome, y: Outcome): boolean {
  return (
    x.digest === y.digest &&
    x.findings.length === y.findings.length &&
    x.mismatches.length === y.mismatches.length &&
    x.findings.every((f, i) => f === y.findings[i]) &&
    x.mismatches.every((m, i) => m === y.mismatches[i])
  );
}

/** How many times `item` is in the list. */
function countOf(list: readonly string[], item: string): number {
  let n = 0;
  for (const x of list) if (x === item) n += 1;
  return n;
}

/** Multiset difference x - y of two sorted lists. */
function minus(x: readonly string[], y: readonly string[]): string[] {
  const left = new Map<string, number>();
  for (const s of y) left.set(s, (left.get(s) ?? 0) + 1);
  return x.filter((s) => {
    const n = left.get(s) ?? 0;
    if (n === 0) return true;
    left.set(s, n - 1);
    return false;
  });
}

function changeOf(before: Outcome, after: Outcome): OutcomeChange {
  return {
    findingsGone: minus(before.findings, after.findings),
    findingsNew: minus(after.findings, before.findings),
    mismatchesGone: minus(before.mismatches, after.mismatches),
    mismatchesNew: minus(after.mismatches, before.mismatches),
    digestBefore: before.digest,
    digestAfter: after.digest,
  };
}

/** The toggles from bad to good, in upstream order. */
export function fixSteps(bad: VariantSpec, good: VariantSpec): FixStep[] {
  const inBad = new Set(bad.fixes);
  const inGood = new Set(good.fixes);
  const steps: FixStep[] = [];
  for (const flag of FIX_FLAGS) {
    if (inGood.has(flag.name) && !inBad.has(flag.name)) steps.push({ flag, action: 'add' });
    else if (inBad.has(flag.name) && !inGood.has(flag.name)) steps.push({ flag, action: 'remove' });
  }
  return steps;
}

/** variant_k: bad with the first k steps applied; fixes listed in upstream order. */
export function variantAt(bad: VariantSpec, steps: readonly FixStep[], k: number): VariantSpec {
  const set = new Set(bad.fixes);
  for (const step of steps.slice(0, k)) {
    if (step.action === 'add') set.add(step.flag.name);
    else set.delete(step.flag.name);
  }
  const label =
    k === 0
      ? bad.variant
      : `${bad.variant}${steps
          .slice(0, k)
          .map((s) => `${s.action === 'add' ? '+' : '-'}${s.flag.name}`)
          .join('')}`;
  return { variant: label, fixes: FIX_FLAGS.map((f) => f.name).filter((f) => set.has(f)) };
}

interface Probe {
  outcome: Outcome;
  keys: OpRow[];
}

/** The first op index where two keyed replays disagree, or null. */
function firstDifferingOp(a: readonly OpRow[], b: readonly OpRow[]): OpRow | null {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i] as OpRow;
    if (opDifferences(x, b[i] as OpRow).length > 0) return x;
  }
  return null;
}

/**
 * The steps k in 1..F where outcomeAt(k) differs from outcomeAt(k - 1). With `all`, every step is looked
 * at (F + 1 outcomes). Otherwise by bisection: each round finds the first k after `lo` whose outcome differs
 * from outcomeAt(lo), assuming one change in between (outcomeAt(hi) differs from outcomeAt(lo) throughout,
 * so the k found always has both neighbours looked at and is a true flip), and rounds go on until the
 * outcome at the last flip is outcomeAt(F). One round costs O(log F) outcomes.
 */
export function searchFlips<T>(
  F: number,
  outcomeAt: (k: number) => T,
  same: (x: T, y: T) => boolean,
  all: boolean,
): number[] {
  const flips: number[] = [];
  if (all) {
    for (let k = 1; k <= F; k++) if (!same(outcomeAt(k - 1), outcomeAt(k))) flips.push(k);
    return flips;
  }
  const end = outcomeAt(F);
  let lo = 0;
  while (!same(outcomeAt(lo), end)) {
    const base = outcomeAt(lo);
    let from = lo;
    let hi = F;
    while (hi - from > 1) {
      const mid = (from + hi) >>> 1;
      if (same(outcomeAt(mid), base)) from = mid;
      else hi = mid;
    }
    flips.push(hi);
    lo = hi;
  }
  return flips;
}

/**
 * Find the first fix flag whose toggle changes the outcome of `trace`, walking from `bad` to `good`.
 *
 * @example bisectFix(trace, resolveVariant('upstream'), resolveVariant('v3')).flips[0]?.flag  // 'mmget-fail-no-kfree' on bad-free.jsonl
 */
export function bisectFix(
  trace: ParsedTrace,
  good: VariantSpec,
  bad: VariantSpec,
  options: FixBisectOptions = {},
): FixBisectReport {
  const steps = fixSteps(bad, good);
  const F = steps.length;
  const probes = new Map<number, Probe>();
  let replays = 0;
  const probe = (k: number): Probe => {
    const known = probes.get(k);
    if (known !== undefined) return known;
    const { result, keys } = replayKeyed(trace, variantAt(bad, steps, k), { failNth: options.failNth ?? null });
    replays += 1;
    const last = keys[keys.length - 1];
    const p = { outcome: outcomeOf(result, last?.digest ?? ''), keys };
    probes.set(k, p);
    return p;
  };
  const outcomeBad = probe(0).outcome;
  const outcomeGood = probe(F).outcome;

  const flipsAt = searchFlips(F, (k) => probe(k).outcome, sameOutcome, options.all === true);

  const flips: Flip[] = flipsAt.map((k) => {
    const step = steps[k - 1] as FixStep;
    const before = probe(k - 1);
    const after = probe(k);
    const at = firstDifferingOp(before.keys, after.keys);
    return {
      k,
      flag: step.flag.name,
      action: step.action,
      commit: step.flag.commit,
      release: step.flag.release,
      section: step.flag.sections,
      summary: step.flag.summary,
      op: at?.index ?? null,
      line: at?.line ?? null,
      opName: at?.op ?? null,
      change: changeOf(before.outcome, after.outcome),
      completesMerged:
        isMerged(new Set(variantAt(bad, steps, k - 1).fixes)) !== isMerged(new Set(variantAt(bad, steps, k).fixes)),
      divergence:
        options.diff === true && at !== null
          ? divergenceInMemory(trace, variantAt(bad, steps, k - 1), variantAt(bad, steps, k), at.index, {
              failNth: options.failNth ?? null,
            })
          : null,
    };
  });

  const countAt = (k: number, finding: string): number => countOf(probe(k).outcome.findings, finding);
  const stepFlag = (k: number | null): Pick<Attribution, 'flag' | 'commit' | 'k'> => {
    const step = k === null ? undefined : steps[k - 1];
    return step === undefined || k === null
      ? { flag: null, commit: null, k: null }
      : { flag: step.flag.name, commit: step.flag.commit, k };
  };
  // The step that removes a finding: the first k (all) or a k found by bisection (each probe cached)
  // whose variant has fewer of that finding than the occurrence needs, its predecessor enough.
  const removedAt = (f: FoundFinding): number | null => {
    const present = (k: number): boolean => countAt(k, f.finding) > f.occurrence;
    if (present(F)) return null;
    if (options.all === true) {
      for (let k = 1; k <= F; k++) if (!present(k)) return k;
      return null;
    }
    let lo = 0;
    let hi = F;
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (present(mid)) lo = mid;
      else hi = mid;
    }
    return hi;
  };
  const removed: Attribution[] = outcomeBad.ordered.map((f) => ({ ...f, ...stepFlag(removedAt(f)) }));
  const introduced: Attribution[] = [];
  for (const flip of flips) {
    const after = probe(flip.k).outcome;
    const before = probe(flip.k - 1).outcome;
    for (const f of after.ordered) {
      if (countOf(before.findings, f.finding) <= f.occurrence) introduced.push({ ...f, ...stepFlag(flip.k) });
    }
  }
  const firstBad = outcomeBad.ordered.find((f) => f.violation) ?? outcomeBad.ordered[0];
  const fixing =
    firstBad === undefined
      ? undefined
      : removed.find((r) => r.finding === firstBad.finding && r.occurrence === firstBad.occurrence);
  let answer: FixAnswer | null = null;
  if (firstBad !== undefined && fixing?.k != null) {
    const step = steps[fixing.k - 1] as FixStep;
    const at = firstDifferingOp(probe(fixing.k - 1).keys, probe(fixing.k).keys);
    answer = {
      flag: step.flag.name,
      commit: step.flag.commit,
      release: step.flag.release,
      section: step.flag.sections,
      k: fixing.k,
      removes: firstBad,
      op: at?.index ?? null,
      line: at?.line ?? null,
      opName: at?.op ?? null,
    };
  }

  return {
    good,
    bad,
    steps,
    outcomeBad,
    outcomeGood,
    flips,
    monotonic: flips.length === 0 ? null : flips.length === 1,
    exhaustive: options.all === true,
    replays,
    removed,
    introduced,
    answer,
  };
}
