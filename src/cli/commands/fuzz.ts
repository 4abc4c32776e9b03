// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace fuzz`: generate traces, replay them in memory on a variant, and save a reproducer (the first
 * failing trace and its shrunk form) for every distinct failure, counted by (kind, function).
 *
 * Bounds: --iterations N traces, --time S seconds, or both (whichever comes first); without either, 60 s.
 * A campaign bounded by --iterations alone is deterministic. Nothing goes to the database, unless:
 *
 * --record: the campaign is a worker of a farm (src/fuzz/farm.ts): every failing trace is counted in the
 * --db store, and a failure new to the store is claimed there, shrunk, and its trace and reproducer
 * recorded as runs (and saved in --out). --workers N: this process starts N such workers as child
 * processes of the built CLI on disjoint seeds, waits for them, and lists what the store holds.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { fuzzIntoStore } from '../../fuzz/farm.js';
import type { ClaimedFailure, FarmWorkerReport } from '../../fuzz/farm.js';
import { openStore } from '../../store/index.js';
import { runFarm } from './fuzz-farm.js';

import { describeKey } from '../../fuzz/dedupe.js';
import { buildKernel } from '../../groundtruth/kernel-build.js';
import { kernelFuzz } from '../../groundtruth/kernel-fuzz.js';
import type { KernelFuzzReport } from '../../groundtruth/kernel-fuzz.js';
import { fuzz, reproducerFiles, seedAt } from '../../fuzz/fuzz.js';
import type { FuzzReport } from '../../fuzz/fuzz.js';
import { findingFileStem } from '../../fuzz/write.js';
import { UsageError } from '../errors.js';
import type { CommandOutput } from '../command.js';
import { defineCommand } from '../command.js';
import { VARIANT_OPTIONS, flag, int, positive, text } from '../options.js';
import { Progress, table } from '../output.js';
import type { CommandEnv } from '../command.js';
import { KERNEL_VARIANT } from './kernel.js';
import { variantFromArgs } from './replay.js';

const DEFAULT_SECONDS = 60;
const DEFAULT_OPS = 40;
const DEFAULT_SHRINK_BUDGET = 3000;
const DEFAULT_KERNEL_COUNT = 200;
const DEFAULT_BATCH = 250;
const DEFAULT_SHRINK_BOOTS = 6;

export const fuzzCommand = defineCommand({
  name: 'fuzz',
  summary: 'generate traces, replay them on a variant, save and shrink a reproducer of every distinct failure',
  usage:
    'ioptrace fuzz [--variant V] [--fix F]... [--without F]... [--seed N] [--seed-stride N] [--ops N] [--time S] [--iterations N] [--shrink-budget N] [--out DIR] [--record | --workers N] [--json] [--db FILE]\n' +
    '       ioptrace fuzz --against-kernel [--count N] [--seed N] [--ops N] [--batch N] [--shrink-boots N] [--variant V] [--out DIR] [--json]',
  help: [
    'Trace i of the campaign is generated from seed N + i (default N = 1), with at most --ops ops (default 40).',
    `Stops after --iterations traces or --time seconds, whichever comes first (default: ${DEFAULT_SECONDS} s).`,
    'A failure is a violation or WARN (including the invariant checks), identified by its kind and function;',
    'each is reported once with the number of traces that showed it. For each, --out DIR (default ./fuzz-out)',
    'receives <kind>-<fn>-seed<N>.jsonl (the first trace that showed it) and <kind>-<fn>-seed<N>.min.jsonl (shrunk',
    `with at most --shrink-budget replays, default ${DEFAULT_SHRINK_BUDGET}; 0 = no shrinking).`,
    'Exit 1 when anything failed, 0 when every trace replayed clean. Nothing is stored in the database, unless:',
    '--record: report into the --db store, as one worker of a farm. Every failing trace is counted there (once',
    'per failure, by seed and --ops); a failure the store has not seen (same variant label, kind and function)',
    "is claimed through the store's primary key, so of many workers exactly one shrinks it and records the",
    'failing trace and its reproducer as runs (and saves them in --out). `ioptrace runs --failures` lists them.',
    '--workers N: start N --record workers as child processes on disjoint seeds (worker k: seeds N*i + k after',
    "--seed; --iterations is the total, split between them; --time is each one's), wait, list the store's",
    'failures of this variant. Separate `ioptrace fuzz --record` processes on one store form a farm too.',
    '--seed-stride N: trace i is generated from seed --seed + i * N (default 1).',
    '',
    `--against-kernel: --count traces (default ${DEFAULT_KERNEL_COUNT}) of the exportable subset (what user space can do) run on`,
    `the ground-truth kernel (ioptrace kernel build; --batch traces per boot, default ${DEFAULT_BATCH}, through one static`,
    `trace runner) and in the model on V (default ${KERNEL_VARIANT}), compared op by op as ioptrace kernel run compares.`,
    'Disagreements are grouped by category (kind, op, both answers); the first trace of each is shrunk with the',
    `kernel in the loop (--shrink-boots boots per category, default ${DEFAULT_SHRINK_BOOTS}; each boot runs a whole generation of`,
    'candidates) and saved in --out DIR as a pair: <kind>-<op>-seed<N>.min.jsonl and .min.c (and the first trace).',
    'A kernel WARN the model lacks on a trace the model on upstream replays clean is labelled a kernel defect',
    'candidate. Exit 1 when any trace disagreed or did not finish in the VM.',
  ],
  options: {
    ...VARIANT_OPTIONS,
    seed: int(1, { below: { value: 0x1_0000_0000, text: '2^32' } }),
    ops: positive(DEFAULT_OPS),
    time: positive(null),
    iterations: positive(null),
    'shrink-budget': int(DEFAULT_SHRINK_BUDGET),
    out: text('./fuzz-out'),
    'against-kernel': flag(),
    count: positive(null),
    batch: positive(DEFAULT_BATCH),
    'shrink-boots': int(DEFAULT_SHRINK_BOOTS),
    'seed-stride': positive(1),
    record: flag(),
    workers: positive(null),
  },
  // async so that every failure, usage errors included, is a rejected promise as for the other commands.
  async run(positionals, values, env): Promise<CommandOutput> {
    if (positionals.length > 0) throw new UsageError(`fuzz takes no positional argument\nusage: ${this.usage}`);
    if (values['against-kernel']) {
      if (values.time !== null || values.iterations !== null)
        throw new UsageError('fuzz --against-kernel takes --count N (not --time or --iterations)');
      if (values.record || values.workers !== null)
        throw new UsageError('fuzz --against-kernel does not record into a store (no --record or --workers)');
      return againstKernel(values, env);
    }
    if (values.count !== null) throw new UsageError('--count goes with --against-kernel (else: --iterations N)');
    const { variant, fixes, label } = variantFromArgs(values);
    const { seed, ops: maxOps, iterations, out: dir } = values;
    const seconds = values.time ?? (iterations === null ? DEFAULT_SECONDS : null);
    const shrinkBudget = values['shrink-budget'];
    const stride = values['seed-stride'];
    if (values.workers !== null) {
      if (values.record)
        throw new UsageError('--workers already records (each worker runs with --record): give one of them');
      return runFarm({ values, label, fixes, seconds, workers: values.workers }, env);
    }

    const started = performance.now();
    if (values.record) {
      const store = await openStore(env.db, { busyTimeoutMs: FARM_BUSY_TIMEOUT_MS });
      let farmReport: FarmWorkerReport;
      try {
        const deadline = seconds === null ? null : started + seconds * 1000;
        farmReport = await fuzzIntoStore({
          store,
          variant,
          label,
          fixes,
          seed,
          stride,
          maxOps,
          iterations,
          shrinkBudget,
          dir,
          ...(deadline === null ? {} : { shouldStop: () => performance.now() >= deadline }),
        });
      } finally {
        await store.close();
      }
      const files = [...farmReport.claimed, ...farmReport.adopted].flatMap((c) => c.files);
      saveFiles(dir, files);
      return recordOutput(farmReport, env.db, dir, (performance.now() - started) / 1000);
    }
    const deadline = seconds === null ? null : started + seconds * 1000;
    const progress = new Progress(iterations ?? (seconds ?? 0) * 1000, `fuzz ${variant}`, env.stderr);
    const report = fuzz({
      variant,
      fixes,
      seed,
      stride,
      maxOps,
      iterations,
      shrinkBudget,
      ...(deadline === null ? {} : { shouldStop: () => performance.now() >= deadline }),
      // The bar counts traces when their number is bounded, else elapsed milliseconds.
      onTrace: (done) => progress.update(iterations !== null ? done : performance.now() - started),
    });
    progress.finish();
    const elapsed = (performance.now() - started) / 1000;

    const files = reproducerFiles(report, dir);
    saveFiles(dir, files);
    return output(report, dir, files.length, elapsed);
  },
});

/**
 * How long a farm worker waits for another's write lock on an SQLite store: a batch commit of a recorded
 * run holds it for a moment, but a loaded machine with many workers can stretch that far past 5 s.
 */
export const FARM_BUSY_TIMEOUT_MS = 60_000;

function saveFiles(dir: string, files: readonly { name: string; text: string }[]): void {
  if (files.length === 0) return;
  try {
    mkdirSync(dir, { recursive: true });
    for (const file of files) writeFileSync(join(dir, file.name), file.text);
  } catch (error) {
    throw new UsageError(
      `cannot write to ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

function claimedJson(c: ClaimedFailure, dir: string) {
  return {
    kind: c.finding.kind,
    function: c.finding.fn,
    seed: c.finding.seed,
    traceRun: c.traceRun,
    reproducerRun: c.reproducerRun,
    reproducerOps: c.finding.shrunk?.after ?? null,
    files: c.files.map((f) => join(dir, f.name)),
  };
}

/** The report of one --record worker: what it saw, and what it claimed and recorded in the store. */
function recordOutput(report: FarmWorkerReport, db: string, dir: string, elapsed: number): CommandOutput {
  const { variant, traces, seen, claimed, adopted } = report;
  const last = seedAt(report.seed, report.stride, traces - 1);
  const seeds = report.stride === 1 ? `${report.seed}..${last}` : `${report.seed}..${last} step ${report.stride}`;
  const text = [
    `fuzz on ${variant} into ${db}: ${traces} traces (seeds ${seeds}, at most ${report.maxOps} ops each) in ` +
      `${elapsed.toFixed(1)} s: ${seen.length === 0 ? 'no failure' : `${seen.length} distinct failures in ${report.failingTraces} failing traces, ${claimed.length} new to the store`}`,
  ];
  if (adopted.length > 0) {
    const names = adopted.map((c) => `${describeKey(c.finding)} (seed ${c.finding.seed}, trace run ${c.traceRun})`);
    text.push(`finished ${adopted.length} claims that other workers abandoned: ${names.join(', ')}`);
  }
  if (report.invalid.length > 0) {
    text.push(`generator defect: the parser refused the traces of seeds ${report.invalid.join(', ')}`);
  }
  const byKey = new Map(claimed.map((c) => [`${c.finding.kind}\u0000${c.finding.fn}`, c]));
  if (seen.length > 0) {
    const rows = seen.map((f) => {
      const c = byKey.get(`${f.kind}\u0000${f.fn}`);
      return [
        String(f.count),
        describeKey(f),
        String(f.seed),
        c === undefined ? 'known' : 'new',
        c === undefined ? '-' : String(c.traceRun),
        c?.reproducerRun == null ? '-' : String(c.reproducerRun),
      ];
    });
    for (const l of table(['traces', 'failure', 'seed', 'store', 'trace run', 'reproducer run'], rows)) {
      text.push(`  ${l}`);
    }
    text.push("`ioptrace runs --failures` lists what the store holds, with every worker's counts");
  }
  const json = {
    variant,
    flags: report.fixes,
    seed: report.seed,
    stride: report.stride,
    ops: report.maxOps,
    traces,
    failingTraces: report.failingTraces,
    seconds: Number(elapsed.toFixed(3)),
    invalid: report.invalid,
    newHits: report.newHits,
    db,
    out: dir,
    seen: seen.map((f) => ({ kind: f.kind, function: f.fn, count: f.count, seed: f.seed })),
    claimed: claimed.map((c) => claimedJson(c, dir)),
    adopted: adopted.map((c) => claimedJson(c, dir)),
  };
  return { exitCode: seen.length > 0 || report.invalid.length > 0 ? 1 : 0, json, text };
}

function output(report: FuzzReport, dir: string, saved: number, elapsed: number): CommandOutput {
  const { variant, traces, findings } = report;
  const last = seedAt(report.seed, report.stride, traces - 1);
  const seeds = report.stride === 1 ? `${report.seed}..${last}` : `${report.seed}..${last} step ${report.stride}`;
  const head =
    `fuzz on ${variant}: ${traces} traces (seeds ${seeds}, at most ${report.maxOps} ops each) in ` +
    `${elapsed.toFixed(1)} s: ${findings.length === 0 ? 'no failure' : `${findings.length} distinct failures in ${report.failingTraces} failing traces`}`;
  const text = [head];
  if (report.invalid.length > 0) {
    text.push(`generator defect: the parser refused the traces of seeds ${report.invalid.join(', ')}`);
  }
  if (findings.length > 0) {
    const rows = findings.map((f) => {
      const stem = join(dir, findingFileStem(f.kind, f.fn));
      return [
        String(f.count),
        describeKey(f),
        String(f.seed),
        String(f.trace.ops.length),
        f.shrunk === null ? '-' : `${f.shrunk.after}${f.shrunk.exhausted ? '+' : ''}`,
        f.shrunk === null ? `${stem}-seed${f.seed}.jsonl` : `${stem}-seed${f.seed}.min.jsonl`,
      ];
    });
    for (const l of table(['traces', 'failure', 'seed', 'ops', 'shrunk', 'reproducer'], rows)) text.push(`  ${l}`);
    text.push(`saved ${saved} files in ${dir} (shrunk "+": the shrink budget or --time ran out first)`);
  }
  const json = {
    variant,
    flags: report.fixes,
    seed: report.seed,
    ops: report.maxOps,
    traces,
    failingTraces: report.failingTraces,
    seconds: Number(elapsed.toFixed(3)),
    invalid: report.invalid,
    out: dir,
    findings: findings.map((f) => ({
      kind: f.kind,
      function: f.fn,
      count: f.count,
      seed: f.seed,
      op: f.failure.op,
      detail: f.failure.detail,
      traceOps: f.trace.ops.length,
      file: join(dir, `${findingFileStem(f.kind, f.fn)}-seed${f.seed}.jsonl`),
      shrunk:
        f.shrunk === null
          ? null
          : {
              file: join(dir, `${findingFileStem(f.kind, f.fn)}-seed${f.seed}.min.jsonl`),
              ops: f.shrunk.after,
              replays: f.shrunk.tests,
              exhausted: f.shrunk.exhausted,
            },
    })),
  };
  return { exitCode: findings.length > 0 || report.invalid.length > 0 ? 1 : 0, json, text };
}

async function againstKernel(
  values: Parameters<typeof variantFromArgs>[0] & {
    seed: number;
    ops: number;
    count: number | null;
    batch: number;
    'shrink-boots': number;
    out: string;
  },
  env: CommandEnv,
): Promise<CommandOutput> {
  const say = (msg: string): void => {
    env.stderr.write(`ioptrace fuzz: ${msg}\n`);
  };
  const variant = variantFromArgs(values, KERNEL_VARIANT);
  const kernel = await buildKernel(say);
  const count = values.count ?? DEFAULT_KERNEL_COUNT;
  const started = performance.now();
  const report = await kernelFuzz({
    kernel,
    variant,
    seed: values.seed,
    count,
    maxOps: values.ops,
    batchSize: values.batch,
    shrinkBoots: values['shrink-boots'],
    outDir: values.out,
    say,
    onBatch: (done, categories) => say(`${done}/${count} traces, ${categories} disagreement categories`),
  });
  return kernelOutput(report, (performance.now() - started) / 1000);
}

function kernelOutput(r: KernelFuzzReport, elapsed: number): CommandOutput {
  const perMinute = r.vmSeconds > 0 ? (r.traces / r.vmSeconds) * 60 : 0;
  const text = [
    `fuzz --against-kernel: kernel ${r.release ?? '?'} vs model ${r.variant}: ${r.traces} traces (seeds ${r.seed}..${(r.seed + r.traces - 1) % 0x1_0000_0000}, at most ${r.maxOps} ops), ${r.comparedOps} ops compared, ` +
      `${r.disagreeingTraces} disagreeing, ${r.unfinished} unfinished; ${r.categories.length} categories`,
    `VM ${r.vmSeconds.toFixed(0)} s in ${r.boots.length} boots (${perMinute.toFixed(0)} traces/min), model ${r.modelSeconds.toFixed(1)} s; ${elapsed.toFixed(0)} s in all`,
  ];
  if (r.categories.length > 0) {
    const rows = r.categories.map((c) => [
      String(c.count),
      c.key,
      String(c.seed),
      c.shrunk === null ? '-' : `${c.shrunk.after}${c.shrunk.exhausted ? '+' : ''}`,
      c.kernelDefectCandidate ? 'kernel defect candidate' : 'model defect until shown otherwise',
      c.files.find((f) => f.endsWith('.min.jsonl')) ?? c.files[0] ?? '-',
    ]);
    for (const l of table(['traces', 'disagreement', 'seed', 'shrunk', 'label', 'reproducer'], rows))
      text.push(`  ${l}`);
  }
  const json = {
    release: r.release,
    variant: r.variant,
    seed: r.seed,
    ops: r.maxOps,
    traces: r.traces,
    comparedOps: r.comparedOps,
    disagreeingTraces: r.disagreeingTraces,
    unfinished: r.unfinished,
    boots: r.boots,
    vmSeconds: Number(r.vmSeconds.toFixed(3)),
    modelSeconds: Number(r.modelSeconds.toFixed(3)),
    categories: r.categories.map((c) => ({
      key: c.key,
      count: c.count,
      seed: c.seed,
      first: c.first,
      kernelDefectCandidate: c.kernelDefectCandidate,
      shrunkOps: c.shrunk?.after ?? null,
      shrinkBoots: c.shrunk?.boots ?? null,
      files: c.files,
    })),
  };
  return { exitCode: r.disagreeingTraces > 0 || r.unfinished > 0 ? 1 : 0, json, text };
}
