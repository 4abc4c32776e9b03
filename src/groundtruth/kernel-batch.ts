// SPDX-License-Identifier: GPL-2.0-only
/**
 * A batch of traces through the ground-truth kernel: all of them in one boot through the trace runner
 * (runner.ts; a crash costs a boot for the traces after it), each result compared with the model
 * (kernel-run.ts). `ioptrace export-c` remains the standalone program of one trace.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { VariantSpec } from '../kernel/variants.js';
import { parseTraceText } from '../replay/parse.js';
import { buildKernel } from './kernel-build.js';
import type { KernelBuild, Say } from './kernel-build.js';
import { compareRun, modelRun, observedRecording, kernelOutputOf, storeRecording } from './kernel-run.js';
import type { KernelOutput, TraceComparison } from './kernel-run.js';
import { runOnKernel } from './runner.js';
import type { BootStat } from './runner.js';

export interface BatchTrace extends TraceComparison {
  path: string;
  name: string;
  exitStatus: number | undefined;
  kernel: KernelOutput;
  recording: string | null;
}

export interface BatchResult {
  kernel: KernelBuild;
  vm: {
    release: string | undefined;
    hugepages: number | undefined;
    /** Guest seconds to /init of the first boot. */
    bootSeconds: number | undefined;
    /** Host wall seconds of all boots. */
    wallSeconds: number;
    /** Every trace ran to its end in the boots (no crash, no timeout). */
    completed: boolean;
    boots: BootStat[];
  };
  variant: string;
  traces: BatchTrace[];
}

/** A name the runner accepts, unique in the batch. */
export function programName(path: string, taken: Set<string>): string {
  const base =
    basename(path)
      .replace(/\.jsonl$/, '')
      .replace(/[^A-Za-z0-9._-]/g, '_') || 'trace';
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
  taken.add(name);
  return name;
}

export async function runKernelBatch(
  paths: readonly string[],
  variant: VariantSpec & { label: string },
  opts: { say: Say; recordDir?: string },
): Promise<BatchResult> {
  const kernel = await buildKernel(opts.say);
  const taken = new Set<string>();
  const items = paths.map((path) => {
    const text = readFileSync(path, 'utf8');
    return { path, text, trace: parseTraceText(text, path), name: programName(path, taken) };
  });
  opts.say(`booting ${kernel.release} for ${items.length} trace(s) through the trace runner`);
  const run = await runOnKernel(kernel, items, { say: opts.say });
  const traces = items.map((item): BatchTrace => {
    const r = run.runs.get(item.name);
    const output = kernelOutputOf(r);
    const comparison = compareRun(item.trace, output, modelRun(item.trace, variant));
    const recording =
      opts.recordDir === undefined
        ? null
        : storeRecording(
            opts.recordDir,
            item.name,
            observedRecording(
              item.text,
              item.trace,
              output,
              `${run.release ?? kernel.release} (model variant ${variant.label})`,
            ),
          );
    return {
      ...comparison,
      path: item.path,
      name: item.name,
      exitStatus: r?.how === 'exit' ? (r.status ?? undefined) : undefined,
      kernel: output,
      recording,
    };
  });
  return {
    kernel,
    vm: {
      release: run.release,
      hugepages: run.hugepages,
      bootSeconds: run.boots[0]?.bootSeconds,
      wallSeconds: run.boots.reduce((s, b) => s + b.wallSeconds, 0),
      completed: [...run.runs.values()].every((r) => r.how === 'exit'),
      boots: run.boots,
    },
    variant: variant.label,
    traces,
  };
}
