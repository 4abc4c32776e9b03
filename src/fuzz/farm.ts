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
 *
 * Seeds: trace i of the worker is generated from seed (seed + i * stride) mod 2^32, so N workers started
 * at seed S + k with stride N cover S, S + 1, ... between them with no seed twice; the union of their
 * traces is the single campaign's. Counting by distinct (seed, op budget) makes a rerun add nothing.
 */
import { join } from 'node:path';

import { parseTraceText } from '../replay/parse.js';
import { recordReplay } from '../replay/record.js';
import {
  StoreError,
  attachFailureRunsQuery,
  claimFailureQuery,
  recordHitQuery,
  type FailureIdentity,
  type Store,
} from '../store/index.js';
import type { Failure } from './dedupe.js';
import { FailureTally } from './dedupe.js';
import type { FuzzFinding, ReproducerFile } from './fuzz.js';
import { replayFailures, reproducerFiles, seedAt } from './fuzz.js';
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

export interface FarmWorkerReport {
  /** The variant label. */
  variant: string;
  fixes: string[];
  seed: number;
  stride: number;
  maxOps: number;
  traces: number;
  failingTraces: number;
  invalid: number[];
  /** Hits this worker added to the store (a rerun of the same seeds adds none). */
  newHits: number;
  /** Distinct failures this worker saw, with its own counts (the store's counts are the farm's). */
  seen: { kind: string; fn: string; count: number; seed: number }[];
  claimed: ClaimedFailure[];
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

/** Shrinks a claimed failure, records its runs and sets them on the failure's row. */
async function recordClaim(options: FarmOptions, finding: FuzzFinding): Promise<ClaimedFailure> {
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
      maxOps: options.maxOps,
      traces: 1,
      failingTraces: 1,
      invalid: [],
      findings: [finding],
    },
    options.dir,
  );
  const [traceFile, shrunkFile] = files as [ReproducerFile, ReproducerFile | undefined];
  const traceRun = await recordTrace(options, traceFile);
  const reproducerRun = shrunkFile === undefined ? null : await recordTrace(options, shrunkFile);
  const identity: FailureIdentity = { variant: options.label, kind: finding.kind, fn: finding.fn };
  await options.store.query(
    attachFailureRunsQuery(identity, { traceRun, reproducerRun, reproducerOps: finding.shrunk?.after ?? null }),
  );
  return { finding, traceRun, reproducerRun, files };
}

/** Run one worker of a farm; see the file comment. */
export async function fuzzIntoStore(options: FarmOptions): Promise<FarmWorkerReport> {
  const tally = new FailureTally<{ seed: number }>();
  const claimed: ClaimedFailure[] = [];
  const invalid: number[] = [];
  let traces = 0;
  let failingTraces = 0;
  let newHits = 0;
  for (let i = 0; options.iterations === null || i < options.iterations; i++) {
    if (options.shouldStop?.() === true) break;
    const seed = seedAt(options.seed, options.stride, i);
    const trace = generateTrace({ seed, maxOps: options.maxOps });
    traces += 1;
    const failures = replayFailures(trace.header, trace.ops, options.variant, options.fixes);
    if (failures === null) {
      invalid.push(seed);
    } else {
      if (failures.length > 0) failingTraces += 1;
      for (const failure of failures) {
        const hit = { variant: options.label, kind: failure.kind, fn: failure.fn, seed, ops: options.maxOps };
        if (await options.store.query(recordHitQuery(hit))) newHits += 1;
        if (!tally.add(failure, { seed })) continue;
        if (!(await options.store.query(claimFailureQuery(claimOf(hit, failure))))) continue;
        const finding: FuzzFinding = {
          kind: failure.kind,
          fn: failure.fn,
          count: 1,
          seed,
          failure,
          trace,
          shrunk: null,
        };
        claimed.push(await recordClaim(options, finding));
      }
    }
    options.onTrace?.(traces, claimed.length);
  }
  return {
    variant: options.label,
    fixes: [...options.fixes],
    seed: options.seed,
    stride: options.stride,
    maxOps: options.maxOps,
    traces,
    failingTraces,
    invalid,
    newHits,
    seen: tally.list().map((e) => ({ kind: e.kind, fn: e.fn, count: e.count, seed: e.first.seed })),
    claimed,
  };
}

function claimOf(hit: FailureIdentity & { seed: number; ops: number }, failure: Failure) {
  return { ...hit, op: failure.op, detail: failure.detail };
}
