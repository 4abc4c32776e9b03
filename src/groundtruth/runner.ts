// SPDX-License-Identifier: GPL-2.0-only
/**
 * Traces on the ground-truth kernel through the trace runner (native/export-c/runner.c): the runner is
 * compiled once (statically, cached by the hash of its sources), the traces go into the initramfs as one
 * batch in the compact form (compact.ts), and one boot runs them all. A trace that kills the VM or hangs
 * the kernel is reported as unfinished and the traces after it run again in a new boot.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ParsedTrace } from '../replay/parse.js';
import { encodeBatch, parseRunnerOutput } from './compact.js';
import type { RunnerTrace } from './compact.js';
import { runTool } from './exec.js';
import { exportOps } from './export-c.js';
import type { NotExportable } from './export-c.js';
import type { KernelBuild, Say } from './kernel-build.js';
import { cacheRoot, nativeFile } from './paths.js';
import { runVm } from './vm.js';

/** The runner binary for the current sources: compiled on first use, then cached. */
export async function buildRunner(say: Say): Promise<string> {
  const sources = ['runtime.c', 'runner.c'].map((f) => readFileSync(nativeFile('export-c', f)));
  const hash = createHash('sha256');
  for (const s of sources) hash.update(s);
  const dir = join(cacheRoot(), 'runner', hash.digest('hex').slice(0, 16));
  const file = join(dir, 'runner');
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  say('compiling the trace runner (static)');
  const tmp = `${file}.tmp-${process.pid}`;
  await runTool('gcc', ['-O1', '-Wall', '-static', '-o', tmp, nativeFile('export-c', 'runner.c')], {
    log: join(dir, 'cc.log'),
    nice: true,
    what: 'compiling the trace runner',
  });
  renameSync(tmp, file);
  return file;
}

export interface RunnerInput {
  /** A compact-form name: [A-Za-z0-9._-]+, unique in the batch. */
  name: string;
  trace: ParsedTrace;
}

export interface BootStat {
  traces: number;
  finished: number;
  wallSeconds: number;
  bootSeconds: number | undefined;
  completed: boolean;
}

export interface RunnerBatch {
  release: string | undefined;
  hugepages: number | undefined;
  /** By trace name; a trace that never ended has how `unfinished` (its output as far as it got). */
  runs: Map<string, RunnerTrace>;
  notExportable: Map<string, NotExportable[]>;
  boots: BootStat[];
}

export interface RunnerOptions {
  say: Say;
  /** Seconds one trace may run in the VM before the runner kills it (default 60). */
  traceTimeoutSeconds?: number;
  /** The most boots (a crash costs one; default: the number of traces plus one). */
  maxBoots?: number;
  memoryMb?: number;
}

/** Whole-VM limit of a boot of `n` traces: the boot, then up to 20 s a trace (software emulation, loaded host). */
const vmTimeoutMs = (n: number): number => (180 + 20 * n) * 1000;

/** Run `inputs` on the kernel in as few boots as crashes allow. */
export async function runOnKernel(
  kernel: KernelBuild,
  inputs: readonly RunnerInput[],
  opts: RunnerOptions,
): Promise<RunnerBatch> {
  const runner = await buildRunner(opts.say);
  const rows = new Map<string, ReturnType<typeof exportOps>>();
  for (const input of inputs) rows.set(input.name, exportOps(input.trace));
  const result: RunnerBatch = {
    release: undefined,
    hugepages: undefined,
    runs: new Map(),
    notExportable: new Map([...rows].map(([name, r]) => [name, r.notExportable])),
    boots: [],
  };
  let pending = inputs.map((i) => i.name);
  const maxBoots = opts.maxBoots ?? inputs.length + 1;
  const timeout = String(opts.traceTimeoutSeconds ?? 60);
  while (pending.length > 0 && result.boots.length < maxBoots) {
    const batch = encodeBatch(pending.map((name) => ({ name, rows: rows.get(name)?.rows ?? [] })));
    const vm = await runVm({
      bzImage: kernel.bzImage,
      programs: [{ name: 'runner', file: runner, args: ['--timeout', timeout, '/tests/batch'] }],
      files: [{ path: 'tests/batch', data: Buffer.from(batch) }],
      timeoutMs: vmTimeoutMs(pending.length),
      partialOnTimeout: true,
      ...(opts.memoryMb === undefined ? {} : { memoryMb: opts.memoryMb }),
    });
    result.release ??= vm.release;
    result.hugepages ??= vm.hugepages;
    const seen = parseRunnerOutput(vm.runs.find((r) => r.name === 'runner')?.output ?? '');
    let finished = 0;
    for (const run of seen) {
      if (!pending.includes(run.name) || result.runs.has(run.name)) continue;
      result.runs.set(run.name, run);
      if (run.how !== 'unfinished') finished += 1;
    }
    result.boots.push({
      traces: pending.length,
      finished,
      wallSeconds: vm.wallSeconds,
      bootSeconds: vm.bootSeconds,
      completed: vm.completed,
    });
    const rest = pending.filter((name) => !result.runs.has(name));
    if (rest.length > 0) {
      // The trace that was running when the VM died is the culprit: it keeps its partial output as unfinished.
      // When the runner itself stopped the batch (a trace it timed out could not be reaped: a task stuck in
      // the kernel), that trace has its status already and no one else is to blame. Only when nothing at
      // all came back is the first pending trace blamed, so that every boot makes progress.
      const culprit = seen.find((r) => r.how === 'unfinished')?.name ?? (finished === 0 ? rest[0] : undefined);
      if (culprit !== undefined && !result.runs.has(culprit))
        result.runs.set(culprit, { name: culprit, output: '', how: 'unfinished', status: null });
      // The console says why (an oops, the OOM killer, a panic): keep it.
      const logDir = join(cacheRoot(), 'runs');
      mkdirSync(logDir, { recursive: true });
      const log = join(logDir, `runner-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
      writeFileSync(log, vm.console);
      const where =
        culprit === undefined ? 'after a trace it could not reap (stuck in the kernel)' : `at trace ${culprit}`;
      const again = rest.filter((name) => name !== culprit).length;
      opts.say(`the VM stopped ${where} (console: ${log}); ${again} trace(s) go to a new boot`);
    }
    pending = pending.filter((name) => !result.runs.has(name));
  }
  for (const name of pending) result.runs.set(name, { name, output: '', how: 'unfinished', status: null });
  return result;
}
