// SPDX-License-Identifier: GPL-2.0-only
/**
 * A fuzzing campaign that reports into a shared store: one worker of a farm (`ioptrace fuzz --record`,
 * and each child of `--workers N`). Traces are generated and replayed in memory as in fuzz.ts; what a
 * failing trace adds goes to the store through the failure queries (src/store/queries/failures.ts):
 *
 * - every failing trace counts once per failure it showed (a hit: variant, kind, fn, seed, op budget);
 * - the first time this worker sees a failure it tries to claim it. The store's primary key decides: the
 *   worker whose insert lands, in this process or any other, is the only one that shrinks the failure and
 *   records the failing trace and its shrunk reproducer as runs (replayed into the store, so every
 *   analysis reads them), then sets their run ids on the failure's row. A worker that loses the claim
 *   neither shrinks nor records anything.
 * - a claim names its holder and a lease (claims.ts, migration 0004). A worker killed between its claim and
 *   the attaching of its runs leaves a claim with no runs; once that claim counts as abandoned (its process
 *   is gone from this host, or its lease ran out), any worker takes it over with a compare-and-set on the
 *   old holder and finishes the work from the row itself: the seed and op budget there regenerate the
 *   trace. Workers look for abandoned claims of their variant when they start, when their own claim of a
 *   failure loses to an existing row, and when they end; so a rerun, or another worker, picks the work up.
 *
 * Seeds: trace i of the worker is generated from seed (seed + i * stride) mod 2^32, so N workers started
 * at seed S + k with stride N cover S, S + 1, ... between them with no seed twice; the union of their
 * traces is the single campaign's. Counting by distinct (seed, op budget) makes a rerun add nothing.
 */
import { join } from 'node:path';

import { pushAll } from '../lib/arrays.js';
import { parseTraceText } from '../replay/parse.js';
import { recordReplay } from '../replay/record.js';
import {
  StoreError,
  attachFailureRunsQuery,
  claimFailureQuery,
  openClaimsQuery,
  recordHitQuery,
  renewClaimQuery,
  takeOverClaimQuery,
  type FailureIdentity,
  type Store,
} from '../store/index.js';
import { CLAIM_LEASE_MS, holding, isAbandoned, newClaimant } from './claims.js';
import type { Failure } from './dedupe.js';
import { FailureTally } from './dedupe.js';
import type { CampaignFigures, FuzzFinding, ReproducerFile } from './fuzz.js';
import { Campaign, replayFailures, reproducerFiles } from './fuzz.js';
import { generateTrace } from './generate.js';
import { shrinkTrace } from './shrink.js';

export interface FarmOptions {
  store: Store;
  /** The variant (as the reproducer files name it) and its flags. */
  variant: string;
  fixes: readonly string[];
  /** The variant as the user spelled it (`v3+flag`): a failure's identity includes it, and runs carry it. */
  label: string;
  /** This worker's first seed, and the distance between its seeds. */
  seed: number;
  stride: number;
  maxOps: number;
  iterations: number | null;
  shouldStop?: () => boolean;
  shrinkBudget: number;
  /** Where the reproducer files would be saved: the runs' trace paths name them. */
  dir: string;
  onTrace?: (done: number, claimed: number) => void;
  /** This worker's name in its claims (claims.ts; a new one unless given), and how long a claim holds. */
  claimant?: string;
  leaseMs?: number;
  /**
   * Test-only: called right after a claim of this worker landed (its own or a take-over), before it
   * shrinks or records anything, so a test can kill the worker at that point.
   */
  afterClaim?: (failure: FailureIdentity) => void | Promise<void>;
}

/** What one worker needs to hold claims: its name and lease. */
interface Holder {
  claimant: string;
  leaseMs: number;
}

/** A failure this worker claimed, with what it recorded. */
export interface ClaimedFailure {
  finding: FuzzFinding;
  /** Run of the failing trace and of its shrunk reproducer (null when shrinking was off or stopped). */
  traceRun: number;
  reproducerRun: number | null;
  /** The reproducer files (the trace, then the shrunk one) whose texts the runs hold. */
  files: ReproducerFile[];
}

export interface FarmWorkerReport extends CampaignFigures {
  /** Hits this worker added to the store (a rerun of the same seeds adds none). */
  newHits: number;
  /** Distinct failures this worker saw, with its own counts (the store's counts are the farm's). */
  seen: { kind: string; fn: string; count: number; seed: number }[];
  claimed: ClaimedFailure[];
  /** Abandoned claims of other workers this one took over and finished. */
  adopted: ClaimedFailure[];
}

/** Records a trace as a run; a replay the model aborts is still a run, marked failed, whose id is kept. */
async function recordTrace(options: FarmOptions, file: ReproducerFile): Promise<number> {
  const path = join(options.dir, file.name);
  try {
    const recorded = await recordReplay(options.store, parseTraceText(file.text, path), {
      tracePath: path,
      traceText: file.text,
      variant: options.label,
      fixes: options.fixes,
    });
    return recorded.run;
  } catch (error) {
    const run = error instanceof StoreError && error.code === 'run-failed' ? error.details['run'] : undefined;
    if (typeof run === 'number') return run;
    throw error;
  }
}

/**
 * Shrinks a failure this worker holds, records its runs and sets them on the failure's row; null when the
 * claim was taken over meanwhile (its lease ran out first), and then nothing is attached.
 */
async function recordClaim(
  options: FarmOptions,
  holder: Holder,
  finding: FuzzFinding,
  maxOps: number,
): Promise<ClaimedFailure | null> {
  const identity: FailureIdentity = { variant: options.label, kind: finding.kind, fn: finding.fn };
  await options.afterClaim?.(identity);
  const stillHeld = () => options.store.query(renewClaimQuery(identity, holding(holder.claimant, holder.leaseMs)));
  if (options.shrinkBudget > 0) {
    finding.shrunk = shrinkTrace(finding.trace.header, finding.trace.ops, {
      variant: options.variant,
      fixes: options.fixes,
      target: finding.failure,
      maxTests: options.shrinkBudget,
      ...(options.shouldStop ? { shouldStop: options.shouldStop } : {}),
    });
  }
  const files = reproducerFiles(
    {
      variant: options.variant,
      fixes: [...options.fixes],
      seed: finding.seed,
      stride: options.stride,
      maxOps,
      traces: 1,
      failingTraces: 1,
      invalid: [],
      findings: [finding],
    },
    options.dir,
  );
  const [traceFile, shrunkFile] = files as [ReproducerFile, ReproducerFile | undefined];
  if (!(await stillHeld())) return null;
  const traceRun = await recordTrace(options, traceFile);
  if (!(await stillHeld())) return null;
  const reproducerRun = shrunkFile === undefined ? null : await recordTrace(options, shrunkFile);
  const attached = await options.store.query(
    attachFailureRunsQuery(identity, holder.claimant, {
      traceRun,
      reproducerRun,
      reproducerOps: finding.shrunk?.after ?? null,
    }),
  );
  return attached ? { finding, traceRun, reproducerRun, files } : null;
}

/**
 * Takes over and finishes the abandoned claims of this worker's variant (of one failure when `only` is
 * given): the trace is regenerated from the claim's seed and op budget and replayed for the claimed
 * failure. A claim whose trace no longer shows its failure here is left as it is.
 */
async function adoptAbandoned(
  options: FarmOptions,
  holder: Holder,
  only: FailureIdentity | null,
): Promise<ClaimedFailure[]> {
  const adopted: ClaimedFailure[] = [];
  for (const claim of await options.store.query(openClaimsQuery(options.label))) {
    if (only !== null && (claim.kind !== only.kind || claim.fn !== only.fn)) continue;
    if (!isAbandoned(claim)) continue;
    const to = holding(holder.claimant, holder.leaseMs);
    if (!(await options.store.query(takeOverClaimQuery(claim, claim.claimant, to)))) continue;
    const trace = generateTrace({ seed: claim.seed, maxOps: claim.ops });
    const failure = (replayFailures(trace.header, trace.ops, options.variant, options.fixes) ?? []).find(
      (f) => f.kind === claim.kind && f.fn === claim.fn,
    );
    if (failure === undefined) continue;
    const finding: FuzzFinding = {
      kind: failure.kind,
      fn: failure.fn,
      count: 1,
      seed: claim.seed,
      failure,
      trace,
      shrunk: null,
    };
    const done = await recordClaim(options, holder, finding, claim.ops);
    if (done !== null) adopted.push(done);
  }
  return adopted;
}

/** Run one worker of a farm; see the file comment. */
export async function fuzzIntoStore(options: FarmOptions): Promise<FarmWorkerReport> {
  const tally = new FailureTally<{ seed: number }>();
  const holder: Holder = { claimant: options.claimant ?? newClaimant(), leaseMs: options.leaseMs ?? CLAIM_LEASE_MS };
  const claimed: ClaimedFailure[] = [];
  const adopted = await adoptAbandoned(options, holder, null);
  const campaign = new Campaign({ ...options });
  let newHits = 0;
  for (const { seed, trace, failures } of campaign) {
    for (const failure of failures) {
      const hit = { variant: options.label, kind: failure.kind, fn: failure.fn, seed, ops: options.maxOps };
      if (await options.store.query(recordHitQuery(hit))) newHits += 1;
      if (!tally.add(failure, { seed })) continue;
      const claim = claimFailureQuery(claimOf(hit, failure), holding(holder.claimant, holder.leaseMs));
      if (!(await options.store.query(claim))) {
        pushAll(adopted, await adoptAbandoned(options, holder, hit));
        continue;
      }
      const finding: FuzzFinding = {
        kind: failure.kind,
        fn: failure.fn,
        count: 1,
        seed,
        failure,
        trace,
        shrunk: null,
      };
      const done = await recordClaim(options, holder, finding, options.maxOps);
      if (done !== null) claimed.push(done);
    }
    options.onTrace?.(campaign.traces, claimed.length);
  }
  pushAll(adopted, await adoptAbandoned(options, holder, null));
  return {
    variant: options.label,
    fixes: [...options.fixes],
    seed: options.seed,
    stride: options.stride,
    maxOps: options.maxOps,
    traces: campaign.traces,
    failingTraces: campaign.failingTraces,
    invalid: campaign.invalid,
    newHits,
    seen: tally.list().map((e) => ({ kind: e.kind, fn: e.fn, count: e.count, seed: e.first.seed })),
    claimed,
    adopted,
  };
}

function claimOf(hit: FailureIdentity & { seed: number; ops: number }, failure: Failure) {
  return { ...hit, op: failure.op, detail: failure.detail };
}
