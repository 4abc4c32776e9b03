// SPDX-License-Identifier: GPL-2.0-only
/**
 * B11 the ground truth's throughput: generated traces of the exportable subset (as `fuzz --against-kernel`
 * makes them) through the VM in one boot of the trace runner, and the model's replay of the same traces on
 * the kernel's variant. Needs the ground-truth kernel (`ioptrace kernel build`; built here when missing),
 * so `npm run bench` runs it only with --kernel.
 */

import { exportableTrace } from '../src/groundtruth/kernel-fuzz.js';
import { buildKernel } from '../src/groundtruth/kernel-build.js';
import { compareRun, modelRun, parseKernelOutput } from '../src/groundtruth/kernel-run.js';
import { runOnKernel } from '../src/groundtruth/runner.js';
import { parseVariantSpec } from '../src/kernel/variant-spec.js';
import { loadAverage, seconds, stopwatch } from './timing.js';

export interface KernelMeasurement {
  traces: number;
  ops: number;
  /** Host wall seconds from QEMU's start to its exit, all boots. */
  vmSeconds: number;
  /** Guest seconds to /init of the first boot. */
  bootSeconds: number | null;
  boots: number;
  finished: number;
  modelSeconds: number;
  comparedOps: number;
  disagreeingTraces: number;
  load: number;
}

export async function measureKernel(count: number, seed: number, maxOps: number): Promise<KernelMeasurement> {
  const say = (msg: string): void => {
    process.stderr.write(`B11: ${msg}\n`);
  };
  const kernel = await buildKernel(say);
  const variant = parseVariantSpec('v6.12.y');
  const items = Array.from({ length: count }, (_, i) => ({
    name: `seed${seed + i}`,
    ...exportableTrace(seed + i, maxOps),
  }));
  const run = await runOnKernel(
    kernel,
    items.map((it) => ({ name: it.name, trace: it.parsed })),
    { say },
  );
  let modelSeconds = 0;
  let comparedOps = 0;
  let disagreeingTraces = 0;
  for (const it of items) {
    const t = stopwatch();
    const model = modelRun(it.parsed, variant);
    modelSeconds += seconds(t);
    const cmp = compareRun(it.parsed, parseKernelOutput(run.runs.get(it.name)?.output ?? ''), model);
    comparedOps += cmp.compared;
    if (cmp.disagreements.length > 0) disagreeingTraces += 1;
  }
  return {
    traces: count,
    ops: items.reduce((n, it) => n + it.ops.length, 0),
    vmSeconds: run.boots.reduce((s, b) => s + b.wallSeconds, 0),
    bootSeconds: run.boots[0]?.bootSeconds ?? null,
    boots: run.boots.length,
    finished: [...run.runs.values()].filter((r) => r.how === 'exit').length,
    modelSeconds,
    comparedOps,
    disagreeingTraces,
    load: loadAverage(),
  };
}
