// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace fuzz`: generate traces, replay them in memory on a variant, and save a reproducer (the first
 * failing trace and its shrunk form) for every distinct failure, counted by (kind, function).
 *
 * Bounds: --iterations N traces, --time S seconds, or both (whichever comes first); without either, 60 s.
 * A campaign bounded by --iterations alone is deterministic. Nothing goes to the database.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describeKey } from '../../fuzz/dedupe.js';
import { buildKernel } from '../../groundtruth/kernel-build.js';
import { kernelFuzz } from '../../groundtruth/kernel-fuzz.js';
import type { KernelFuzzReport } from '../../groundtruth/kernel-fuzz.js';
import { fuzz, reproducerFiles } from '../../fuzz/fuzz.js';
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
    'ioptrace fuzz [--variant V] [--fix F]... [--without F]... [--seed N] [--ops N] [--time S] [--iterations N] [--shrink-budget N] [--out DIR] [--json]\n' +
    '       ioptrace fuzz --against-kernel [--count N] [--seed N] [--ops N] [--batch N] [--shrink-boots N] [--variant V] [--out DIR] [--json]',
  help: [
    'Trace i of the campaign is generated from seed N + i (default N = 1), with at most --ops ops (default 40).',
    `Stops after --iterations traces or --time seconds, whichever comes first (default: ${DEFAULT_SECONDS} s).`,
    'A failure is a violation or WARN (including the invariant checks), identified by its kind and function;',
    'each is reported once with the number of traces that showed it. For each, --out DIR (default ./fuzz-out)',
    'receives <kind>-<fn>-seed<N>.jsonl (the first trace that showed it) and <kind>-<fn>-seed<N>.min.jsonl (shrunk',
    `with at most --shrink-budget replays, default ${DEFAULT_SHRINK_BUDGET}; 0 = no shrinking).`,
    'Exit 1 when anything failed, 0 when every trace replayed clean. Nothing is stored in the database.',
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
  },
  // async so that every failure, usage errors included, is a rejected promise as for the other commands.
  async run(positionals, values, env): Promise<CommandOutput> {
    if (positionals.length > 0) throw new UsageError(`fuzz takes no positional argument\nusage: ${this.usage}`);
    if (values['against-kernel']) {
      if (values.time !== null || values.iterations !== null)
        throw new UsageError('fuzz --against-kernel takes --count N (not --time or --iterations)');
      return againstKernel(values, env);
    }
    if (values.count !== null) throw new UsageError('--count goes with --against-kernel (else: --iterations N)');
    const { variant, fixes } = variantFromArgs(values);
    const { seed, ops: maxOps, iterations, out: dir } = values;
    const seconds = values.time ?? (iterations === null ? DEFAULT_SECONDS : null);
    const shrinkBudget = values['shrink-budget'];

    const started = performance.now();
    const deadline = seconds === null ? null : started + seconds * 1000;
    const progress = new Progress(iterations ?? (seconds ?? 0) * 1000, `fuzz ${variant}`, env.stderr);
    const report = fuzz({
      variant,
      fixes,
      seed,
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
    if (files.length > 0) {
      try {
        mkdirSync(dir, { recursive: true });
        for (const file of files) writeFileSync(join(dir, file.name), file.text);
      } catch (error) {
        throw new UsageError(
          `cannot write to ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
        );
      }
    }
    return output(report, dir, files.length, elapsed);
  },
});

function output(report: FuzzReport, dir: string, saved: number, elapsed: number): CommandOutput {
  const { variant, traces, findings } = report;
  const last = (report.seed + traces - 1) % 0x1_0000_0000;
  const head =
    `fuzz on ${variant}: ${traces} traces (seeds ${report.seed}..${last}, at most ${report.maxOps} ops each) in ` +
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
