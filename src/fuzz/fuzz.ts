// SPDX-License-Identifier: GPL-2.0-only
/**
 * A fuzzing campaign: generate traces from consecutive seeds, replay each in memory on a variant, tally
 * the failures by (kind, function), and shrink the first trace of every new failure to a small reproducer.
 *
 * Seeds: the i-th trace of a campaign started at seed S is generated from seed (S + i) mod 2^32, so
 * `--seed N --iterations 1` regenerates trace N byte for byte. A campaign bounded by `iterations` is fully
 * deterministic (same findings, same counts, same shrunk traces); one bounded by time (`shouldStop`) only
 * differs in how far it got.
 *
 * Shrinking happens when a failure is first seen, inside the campaign, so a time-bounded campaign hands
 * back shrunk reproducers for what it found; each shrink is bounded by `shrinkBudget` replays and stops
 * early (keeping its best trace so far) when `shouldStop` says so.
 *
 * This module does no I/O and reads no clock: `reproducerFiles` renders what the CLI writes.
 */
import { join } from 'node:path';

import type { TraceHeader, TraceOp } from '../events/trace.js';
import { VARIANTS } from '../kernel/variants.js';
import { parseTraceText } from '../replay/parse.js';
import { replay } from '../replay/replayer.js';
import type { Failure } from './dedupe.js';
import { describeKey, failureOfError, failuresOf, FailureTally } from './dedupe.js';
import type { GeneratedTrace } from './generate.js';
import { generateTrace } from './generate.js';
import type { ShrinkResult } from './shrink.js';
import { shrinkTrace } from './shrink.js';
import type { TraceTag } from './write.js';
import { findingFileStem, serializeTrace } from './write.js';

export interface FuzzOptions {
  variant: string;
  fixes: readonly string[];
  /** The first trace's seed. */
  seed: number;
  /** Trace i is generated from seed + i * stride (default 1; see seedAt). */
  stride?: number;
  /** The most ops per generated trace. */
  maxOps: number;
  /** Stop after this many traces (null: only `shouldStop` ends the campaign). */
  iterations: number | null;
  /** Checked before every trace and between shrink replays: true ends the campaign (a time budget). */
  shouldStop?: () => boolean;
  /** Replays each shrink may run; 0 turns shrinking off. */
  shrinkBudget: number;
  /** Called after every trace with the number done and the distinct failures so far. */
  onTrace?: (done: number, distinct: number) => void;
}

/** One deduplicated failure of a campaign. */
export interface FuzzFinding {
  kind: string;
  fn: string;
  /** Traces that showed it. */
  count: number;
  /** The first trace that showed it, and the failure as it showed there. */
  seed: number;
  failure: Failure;
  trace: GeneratedTrace;
  /** Its shrunk reproducer (null when shrinking is off or the campaign stopped first). */
  shrunk: ShrinkResult | null;
}

/** What a campaign (one process, or one worker of a farm) covered. */
export interface CampaignFigures {
  /** The variant label. */
  variant: string;
  fixes: string[];
  seed: number;
  stride: number;
  maxOps: number;
  /** Traces generated and replayed. */
  traces: number;
  /** Traces that showed at least one failure. */
  failingTraces: number;
  /** Seeds whose generated trace the parser refused (a generator defect; always empty). */
  invalid: number[];
}

export interface FuzzReport extends CampaignFigures {
  /** Failures in the order they were first seen. */
  findings: FuzzFinding[];
}

interface FirstSeen {
  seed: number;
  failure: Failure;
  trace: GeneratedTrace;
  shrunk: ShrinkResult | null;
}

/**
 * The seed of trace i of a campaign: (seed + i * stride) mod 2^32. N campaigns started at S, S + 1, ...
 * S + N - 1 with stride N (the workers of a farm) cover the seeds of one campaign from S, each once.
 */
export function seedAt(seed: number, stride: number, i: number): number {
  return (seed + i * stride) % 0x1_0000_0000;
}

/** The failures of one trace (in memory, no store); an exception out of the model is one failure. */
export function replayFailures(
  header: TraceHeader,
  ops: readonly TraceOp[],
  variant: string,
  fixes: readonly string[],
): Failure[] | null {
  let parsed;
  try {
    parsed = parseTraceText(serializeTrace({ header, ops }));
  } catch {
    return null;
  }
  try {
    return failuresOf(replay(parsed, { variant, fixes }));
  } catch (error) {
    return [failureOfError(error)];
  }
}

/** What a campaign generates and replays: the seeds, the trace size, where to stop, the variant. */
export interface CampaignBounds {
  seed: number;
  stride: number;
  maxOps: number;
  iterations: number | null;
  shouldStop?: () => boolean;
  variant: string;
  fixes: readonly string[];
}

/**
 * The traces of a campaign in seed order, each replayed, and the figures they add up to. A trace the parser
 * refuses is counted in `invalid` and comes with no failures.
 */
export class Campaign {
  traces = 0;
  failingTraces = 0;
  readonly invalid: number[] = [];

  constructor(private readonly bounds: CampaignBounds) {}

  *[Symbol.iterator](): Generator<{ seed: number; trace: GeneratedTrace; failures: Failure[] }, void, undefined> {
    const b = this.bounds;
    for (let i = 0; b.iterations === null || i < b.iterations; i++) {
      if (b.shouldStop?.() === true) return;
      const seed = seedAt(b.seed, b.stride, i);
      const trace = generateTrace({ seed, maxOps: b.maxOps });
      this.traces += 1;
      const failures = replayFailures(trace.header, trace.ops, b.variant, b.fixes);
      if (failures === null) this.invalid.push(seed);
      else if (failures.length > 0) this.failingTraces += 1;
      yield { seed, trace, failures: failures ?? [] };
    }
  }
}

/** Run a campaign; see the file comment for its bounds. */
export function fuzz(options: FuzzOptions): FuzzReport {
  const tally = new FailureTally<FirstSeen>();
  const campaign = new Campaign({ ...options, stride: options.stride ?? 1 });
  for (const { seed, trace, failures } of campaign) {
    for (const failure of failures) {
      const first: FirstSeen = { seed, failure, trace, shrunk: null };
      if (!tally.add(failure, first) || options.shrinkBudget <= 0) continue;
      first.shrunk = shrinkTrace(trace.header, trace.ops, {
        variant: options.variant,
        fixes: options.fixes,
        target: failure,
        maxTests: options.shrinkBudget,
        ...(options.shouldStop ? { shouldStop: options.shouldStop } : {}),
      });
    }
    options.onTrace?.(campaign.traces, tally.size);
  }
  return {
    variant: options.variant,
    fixes: [...options.fixes],
    seed: options.seed,
    stride: options.stride ?? 1,
    maxOps: options.maxOps,
    traces: campaign.traces,
    failingTraces: campaign.failingTraces,
    invalid: campaign.invalid,
    findings: tally.list().map((e) => ({
      kind: e.kind,
      fn: e.fn,
      count: e.count,
      seed: e.first.seed,
      failure: e.first.failure,
      trace: e.first.trace,
      shrunk: e.first.shrunk,
    })),
  };
}

// ---- reproducer files ------------------------------------------------------------------------------------

/** The `# ioptrace-fuzz:` tag of a variant run: fixes only when they differ from the named variant's. */
export function tagFor(
  variant: string,
  fixes: readonly string[],
  failure: Failure,
  extra: Partial<TraceTag> = {},
): TraceTag {
  const base = VARIANTS[variant] ?? [];
  const same = base.length === fixes.length && base.every((f, i) => fixes[i] === f);
  return { variant, ...(same ? {} : { fixes: [...fixes] }), kind: failure.kind, fn: failure.fn, ...extra };
}

/** The command-line arguments that select `fixes`: the variant, plus --fix / --without for the difference. */
export function variantArgs(variant: string, fixes: readonly string[]): string {
  const base = VARIANTS[variant] ?? [];
  const added = fixes.filter((f) => !base.includes(f)).map((f) => ` --fix ${f}`);
  const removed = base.filter((f) => !fixes.includes(f)).map((f) => ` --without ${f}`);
  return `--variant ${variant}${added.join('')}${removed.join('')}`;
}

/** "op 9 (line 14): detail" or "at teardown: detail", for a trace whose ops start after `linesBefore` lines. */
function where(failure: Failure, opCount: number, linesBefore: number): string {
  if (failure.op < 1 || failure.op > opCount) return `at teardown, after the last op: ${failure.detail}`;
  return `at op ${failure.op} (line ${linesBefore + failure.op}): ${failure.detail}`;
}

/** A reproducer: comment block (what it reproduces, how to rerun it), tag, header, ops. */
export function reproducerText(args: {
  header: TraceHeader;
  ops: readonly TraceOp[];
  variant: string;
  tag: TraceTag;
  failure: Failure;
  about: readonly string[];
}): string {
  const comments = [...args.about, `Reproduces on ${args.variant}: ${describeKey(args.failure)}`];
  // Comment lines, the "first shows" line, the tag line and the header come before the first op.
  const linesBefore = comments.length + 1 + 1 + 1;
  comments.push(`  first shows ${where(args.failure, args.ops.length, linesBefore)}`);
  return serializeTrace({ header: args.header, ops: args.ops, comments, tag: args.tag });
}

export interface ReproducerFile {
  /** File name (no directory). */
  name: string;
  text: string;
  kind: 'trace' | 'shrunk';
  finding: FuzzFinding;
}

/**
 * The files a campaign saves in `dir`: per finding, its first trace and its shrunk reproducer. `dir` only
 * appears in the rerun commands of the comments.
 */
export function reproducerFiles(report: FuzzReport, dir: string): ReproducerFile[] {
  const out: ReproducerFile[] = [];
  for (const finding of report.findings) {
    const stem = `${findingFileStem(finding.kind, finding.fn)}-seed${finding.seed}`;
    const tag = tagFor(report.variant, report.fixes, finding.failure, { seed: finding.seed, ops: report.maxOps });
    const args = variantArgs(report.variant, report.fixes);
    const regenerate = `ioptrace fuzz ${args} --seed ${finding.seed} --ops ${report.maxOps} --iterations 1`;
    out.push({
      name: `${stem}.jsonl`,
      kind: 'trace',
      finding,
      text: reproducerText({
        header: finding.trace.header,
        ops: finding.trace.ops,
        variant: report.variant,
        tag,
        failure: finding.failure,
        about: [
          `Generated by ioptrace fuzz from seed ${finding.seed} (at most ${report.maxOps} ops); ${finding.count} trace(s) of the campaign showed this failure.`,
          `Regenerate: ${regenerate}`,
        ],
      }),
    });
    const shrunk = finding.shrunk;
    if (shrunk !== null) {
      out.push({
        name: `${stem}.min.jsonl`,
        kind: 'shrunk',
        finding,
        text: reproducerText({
          header: shrunk.header,
          ops: shrunk.ops,
          variant: report.variant,
          tag,
          failure: shrunk.failure,
          about: [
            `Shrunk by ioptrace from the trace of seed ${finding.seed}: ${shrunk.before} ops -> ${shrunk.after} ops in ${shrunk.tests} replays${shrunk.exhausted ? ' (budget ran out: may shrink further)' : ''}.`,
            `Replay: ioptrace replay ${join(dir, `${stem}.min.jsonl`)} ${args}`,
          ],
        }),
      });
    }
  }
  return out;
}
