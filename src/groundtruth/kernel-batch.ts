// SPDX-License-Identifier: GPL-2.0-only
/**
 * A batch of traces through the ground-truth kernel: export each (export-c.ts), compile it statically,
 * boot the VM once for all of them, and compare each result with the model (kernel-run.ts).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { VariantSpec } from '../kernel/variants.js';
import { parseTraceText } from '../replay/parse.js';
import { runTool } from './exec.js';
import { exportC } from './export-c.js';
import type { PlannedProgram } from './initramfs.js';
import { buildKernel } from './kernel-build.js';
import type { KernelBuild, Say } from './kernel-build.js';
import { compareRun, modelRun, observedRecording, parseKernelOutput, storeRecording } from './kernel-run.js';
import type { KernelOutput, TraceComparison } from './kernel-run.js';
import { runVm } from './vm.js';
import type { VmResult } from './vm.js';

export interface BatchTrace extends TraceComparison {
  path: string;
  name: string;
  exitStatus: number | undefined;
  kernel: KernelOutput;
  recording: string | null;
}

export interface BatchResult {
  kernel: KernelBuild;
  vm: Pick<VmResult, 'release' | 'bootSeconds' | 'wallSeconds' | 'hugepages' | 'completed'>;
  variant: string;
  traces: BatchTrace[];
}

/** A name the VM's plan accepts, unique in the batch. */
function programName(path: string, taken: Set<string>): string {
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
  opts: { say: Say; recordDir?: string; timeoutMs?: number },
): Promise<BatchResult> {
  const kernel = await buildKernel(opts.say);
  const work = mkdtempSync(join(tmpdir(), 'ioptrace-kernel-run-'));
  try {
    const taken = new Set<string>();
    const items = paths.map((path) => {
      const text = readFileSync(path, 'utf8');
      return { path, text, trace: parseTraceText(text, path), name: programName(path, taken) };
    });
    const programs: PlannedProgram[] = [];
    for (const item of items) {
      const source = join(work, `${item.name}.c`);
      const file = join(work, item.name);
      writeFileSync(source, exportC(item.trace, item.path).source);
      await runTool('gcc', ['-O1', '-w', '-static', '-o', file, source], {
        log: join(work, 'cc.log'),
        nice: true,
        what: `compiling the program of ${item.path}`,
      });
      programs.push({ name: item.name, file });
    }
    opts.say(`booting ${kernel.release} once for ${programs.length} program(s)`);
    const vm = await runVm({
      bzImage: kernel.bzImage,
      programs,
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    });
    const traces = items.map((item): BatchTrace => {
      const run = vm.runs.find((r) => r.name === item.name);
      const output = parseKernelOutput(run?.output ?? '');
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
                `${vm.release ?? kernel.release} (model variant ${variant.label})`,
              ),
            );
      return {
        ...comparison,
        path: item.path,
        name: item.name,
        exitStatus: run?.exitStatus,
        kernel: output,
        recording,
      };
    });
    return {
      kernel,
      vm: {
        release: vm.release,
        bootSeconds: vm.bootSeconds,
        wallSeconds: vm.wallSeconds,
        hugepages: vm.hugepages,
        completed: vm.completed,
      },
      variant: variant.label,
      traces,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
