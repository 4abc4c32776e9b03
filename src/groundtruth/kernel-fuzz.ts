// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace fuzz --against-kernel`: a differential campaign. Traces from the generator's exportable subset
 * (fuzz/generate.ts `exportable`) run in batches on the ground-truth kernel through the trace runner
 * (runner.ts) and in the model on the kernel's variant (v6.12.y); every op is compared as `kernel run`
 * compares it (kernel-run.ts compareRun). Disagreements are grouped by category (kernel-shrink.ts
 * disagreementKey, taken from the first disagreement of a trace: later ones tend to follow from it); the
 * first trace of each category is shrunk with the kernel in the loop and saved as a reproducer pair, the
 * trace and its standalone C program (export-c).
 *
 * A category is a model defect until shown otherwise; one whose kernel side is a WARN the model does not
 * give, on a trace the model's `upstream` variant replays clean, is labelled a kernel defect candidate.
 *
 * Seeds: the i-th trace is generated from seed (S + i) mod 2^32 with at most `maxOps` ops and the
 * exportable flag, so `ioptrace fuzz --against-kernel --seed N --count 1` runs trace N again.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TraceHeader, TraceOp } from '../events/trace.js';
import { failuresOf } from '../fuzz/dedupe.js';
import { generateTrace } from '../fuzz/generate.js';
import { pushAll } from '../lib/arrays.js';
import { serializeTrace } from '../fuzz/write.js';
import { parseVariantSpec } from '../kernel/variant-spec.js';
import type { VariantSpec } from '../kernel/variants.js';
import { parseTraceText } from '../replay/parse.js';
import type { ParsedTrace } from '../replay/parse.js';
import { replay } from '../replay/replayer.js';
import { exportC } from './export-c.js';
import type { KernelBuild, Say } from './kernel-build.js';
import { compareRun, modelRun, kernelOutputOf } from './kernel-run.js';
import type { Disagreement } from './kernel-run.js';
import { disagreementKey, shrinkOnKernel } from './kernel-shrink.js';
import type { KernelShrinkResult } from './kernel-shrink.js';
import { runOnKernel } from './runner.js';
import type { BootStat } from './runner.js';

export interface KernelFuzzOptions {
  kernel: KernelBuild;
  variant: VariantSpec & { label: string };
  seed: number;
  count: number;
  maxOps: number;
  /** Traces per boot. */
  batchSize: number;
  /** Boots each category's shrink may use; 0: no shrinking. */
  shrinkBoots: number;
  /** Where reproducer pairs go; null: nowhere. */
  outDir: string | null;
  say: Say;
  /** After each batch: traces done, categories so far. */
  onBatch?: (done: number, categories: number) => void;
}

export interface KernelFuzzCategory {
  key: string;
  kind: Disagreement['kind'];
  op: string;
  /** Traces whose first disagreement is this one. */
  count: number;
  seed: number;
  first: Disagreement;
  trace: { header: TraceHeader; ops: TraceOp[] };
  kernelDefectCandidate: boolean;
  shrunk: KernelShrinkResult | null;
  files: string[];
}

export interface KernelFuzzReport {
  variant: string;
  release: string | undefined;
  seed: number;
  maxOps: number;
  traces: number;
  /** Ops compared (ops after a not-exportable op, and ops of traces that died, are not). */
  comparedOps: number;
  disagreeingTraces: number;
  /** Traces whose run did not end in the VM (crash or timeout). */
  unfinished: number;
  categories: KernelFuzzCategory[];
  boots: BootStat[];
  /** Host wall seconds in the VM (boots included) and in the model (replays of the same traces). */
  vmSeconds: number;
  modelSeconds: number;
}

const seedAt = (start: number, i: number): number => (start + i) % 0x1_0000_0000;

/** The trace of a seed in the exportable subset, parsed. */
export function exportableTrace(
  seed: number,
  maxOps: number,
): { header: TraceHeader; ops: TraceOp[]; parsed: ParsedTrace } {
  const g = generateTrace({ seed, maxOps, exportable: true });
  return { header: g.header, ops: g.ops, parsed: parseTraceText(serializeTrace(g), `seed ${seed}`) };
}

/** A kernel WARN the model does not give, on a trace that the `upstream` model replays without a failure. */
export function isKernelDefectCandidate(d: Disagreement, trace: ParsedTrace): boolean {
  if (d.kind !== 'warn' || d.kernel === 'none') return false;
  const upstream = parseVariantSpec('upstream');
  try {
    return failuresOf(replay(trace, { variant: upstream.label, fixes: upstream.fixes })).length === 0;
  } catch {
    return false;
  }
}

export async function kernelFuzz(opts: KernelFuzzOptions): Promise<KernelFuzzReport> {
  const report: KernelFuzzReport = {
    variant: opts.variant.label,
    release: undefined,
    seed: opts.seed,
    maxOps: opts.maxOps,
    traces: 0,
    comparedOps: 0,
    disagreeingTraces: 0,
    unfinished: 0,
    categories: [],
    boots: [],
    vmSeconds: 0,
    modelSeconds: 0,
  };
  const byKey = new Map<string, KernelFuzzCategory>();
  for (let start = 0; start < opts.count; start += opts.batchSize) {
    const n = Math.min(opts.batchSize, opts.count - start);
    const items = Array.from({ length: n }, (_, k) => {
      const seed = seedAt(opts.seed, start + k);
      return { seed, name: `seed${seed}`, ...exportableTrace(seed, opts.maxOps) };
    });
    const run = await runOnKernel(
      opts.kernel,
      items.map((it) => ({ name: it.name, trace: it.parsed })),
      { say: opts.say },
    );
    report.release ??= run.release;
    pushAll(report.boots, run.boots);
    report.vmSeconds += run.boots.reduce((s, b) => s + b.wallSeconds, 0);
    for (const it of items) {
      const r = run.runs.get(it.name);
      if (r?.how !== 'exit') report.unfinished += 1;
      const t0 = performance.now();
      const model = modelRun(it.parsed, opts.variant);
      report.modelSeconds += (performance.now() - t0) / 1000;
      const cmp = compareRun(it.parsed, kernelOutputOf(r), model);
      report.traces += 1;
      report.comparedOps += cmp.compared;
      const first = cmp.disagreements[0];
      if (first === undefined) continue;
      report.disagreeingTraces += 1;
      const key = disagreementKey(first);
      const known = byKey.get(key);
      if (known !== undefined) {
        known.count += 1;
        continue;
      }
      const category: KernelFuzzCategory = {
        key,
        kind: first.kind,
        op: first.name,
        count: 1,
        seed: it.seed,
        first,
        trace: { header: it.header, ops: it.ops },
        kernelDefectCandidate: isKernelDefectCandidate(first, it.parsed),
        shrunk: null,
        files: [],
      };
      byKey.set(key, category);
      report.categories.push(category);
      opts.say(`new disagreement (seed ${it.seed}): ${key}`);
    }
    opts.onBatch?.(report.traces, report.categories.length);
  }
  for (const c of report.categories) {
    if (opts.shrinkBoots > 0) {
      opts.say(`shrinking ${c.key} (seed ${c.seed}, ${c.trace.ops.length} ops) with the kernel in the loop`);
      c.shrunk = await shrinkOnKernel(c.trace.header, c.trace.ops, c.first, {
        kernel: opts.kernel,
        variant: opts.variant,
        key: c.key,
        maxBoots: opts.shrinkBoots,
        say: opts.say,
      });
      c.kernelDefectCandidate =
        c.kernelDefectCandidate ||
        isKernelDefectCandidate(
          c.shrunk.disagreement,
          parseTraceText(serializeTrace({ header: c.trace.header, ops: c.shrunk.ops })),
        );
    }
    if (opts.outDir !== null) c.files = saveCategory(opts.outDir, c, report);
  }
  return report;
}

/** A file-name-safe stem of a category: `errno-ioas_map-seed42`. */
export function categoryStem(c: Pick<KernelFuzzCategory, 'kind' | 'op' | 'seed'>): string {
  return `${c.kind}-${c.op.replace(/[^A-Za-z0-9_]+/g, '_')}-seed${c.seed}`;
}

function describe(d: Disagreement): string {
  return `${d.kind} at op ${d.op} (${d.name}): kernel ${d.kernel}, model ${d.model}`;
}

/** The reproducer pair (and the first trace) of a category; returns the paths written. */
export function saveCategory(
  dir: string,
  c: KernelFuzzCategory,
  report: Pick<KernelFuzzReport, 'variant' | 'release' | 'maxOps'>,
): string[] {
  mkdirSync(dir, { recursive: true });
  const stem = categoryStem(c);
  const about = [
    `A disagreement between the kernel ${report.release ?? '?'} and the model on ${report.variant}, found by`,
    `ioptrace fuzz --against-kernel --seed ${c.seed} --count 1 --ops ${report.maxOps} (the exportable generator).`,
    `Category: ${c.key}${c.kernelDefectCandidate ? ' -- a kernel defect candidate: the model on upstream replays it clean and the kernel WARNs' : ''}.`,
  ];
  const files: string[] = [];
  const write = (name: string, text: string): void => {
    const path = join(dir, name);
    writeFileSync(path, text);
    files.push(path);
  };
  write(
    `${stem}.jsonl`,
    serializeTrace({
      header: c.trace.header,
      ops: c.trace.ops,
      comments: [...about, `First shows as ${describe(c.first)}.`],
    }),
  );
  const s = c.shrunk;
  if (s !== null) {
    const text = serializeTrace({
      header: c.trace.header,
      ops: s.ops,
      comments: [
        ...about,
        `Shrunk with the kernel in the loop: ${s.before} -> ${s.after} ops in ${s.boots} boots (${s.candidates} candidate runs)${s.exhausted ? '; the boot budget ran out first' : ''}${s.flaky ? '; the kernel did not answer the same way in every boot' : ''}.`,
        `Shows as ${describe(s.disagreement)}.`,
        `Check: ioptrace kernel run ${join(dir, `${stem}.min.jsonl`)}`,
      ],
    });
    write(`${stem}.min.jsonl`, text);
    write(`${stem}.min.c`, exportC(parseTraceText(text, `${stem}.min.jsonl`), `${stem}.min.jsonl`).source);
  } else {
    write(`${stem}.c`, exportC(parseTraceText(serializeTrace(c.trace), `${stem}.jsonl`), `${stem}.jsonl`).source);
  }
  return files;
}
