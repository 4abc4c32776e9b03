// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace fuzz --workers N`: a farm on this machine. N child processes of the built CLI, each an
 * `ioptrace fuzz --record` worker on its own seeds (worker k starts at seed S + k * stride and steps by
 * N * stride, so between them they generate the traces of one campaign from S, each once), all writing into
 * the --db store; the store's primary keys deduplicate their failures (src/fuzz/farm.ts). The parent
 * migrates the store before starting them, waits for every one, and lists the store's failures of the
 * variant. A worker that fails (exit 2 or more) fails the farm with its own message.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describeKey } from '../../fuzz/dedupe.js';
import { seedAt } from '../../fuzz/fuzz.js';
import { packageRoot } from '../../lib/paths.js';
import { farmFailuresQuery, openStore } from '../../store/index.js';
import type { CommandEnv, CommandOutput } from '../command.js';
import { table } from '../output.js';

/** What the farm needs of the fuzz command's flags. */
export interface FarmArgs {
  values: {
    variant: string | undefined;
    fix: readonly string[];
    without: readonly string[];
    seed: number;
    'seed-stride': number;
    ops: number;
    iterations: number | null;
    'shrink-budget': number;
    out: string;
  };
  /** The variant label: the store's failures are listed for it. */
  label: string;
  fixes: readonly string[];
  /** Each worker's time budget (null: bounded by iterations alone). */
  seconds: number | null;
  workers: number;
}

interface WorkerResult {
  worker: number;
  status: number;
  json: { traces?: number; failingTraces?: number; claimed?: unknown[]; error?: { message?: string } } | null;
  stderr: string;
}

/** The built CLI: next to this file in dist/, else (running from src/ under a test) the package's dist/. */
function cliPath(): string {
  const beside = fileURLToPath(new URL('../bin.js', import.meta.url));
  return existsSync(beside) ? beside : join(packageRoot(), 'dist/src/cli/bin.js');
}

/** Traces of worker k when `total` are split round-robin between `workers`. */
function shareOf(total: number, workers: number, k: number): number {
  return k < total ? Math.floor((total - 1 - k) / workers) + 1 : 0;
}

function workerArgs(args: FarmArgs, env: CommandEnv, k: number, iterations: number | null): string[] {
  const { values } = args;
  const stride = values['seed-stride'];
  return [
    'fuzz',
    ...(values.variant === undefined ? [] : ['--variant', values.variant]),
    ...values.fix.flatMap((f) => ['--fix', f]),
    ...values.without.flatMap((f) => ['--without', f]),
    '--seed',
    String(seedAt(values.seed, stride, k)),
    '--seed-stride',
    String(stride * args.workers),
    '--ops',
    String(values.ops),
    '--shrink-budget',
    String(values['shrink-budget']),
    '--out',
    values.out,
    ...(iterations === null ? [] : ['--iterations', String(iterations)]),
    ...(args.seconds === null ? [] : ['--time', String(args.seconds)]),
    '--record',
    '--json',
    '--db',
    env.db,
  ];
}

function runWorker(worker: number, argv: string[]): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath(), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      let json: WorkerResult['json'] = null;
      try {
        json = JSON.parse(stdout) as WorkerResult['json'];
      } catch {
        json = null;
      }
      resolve({ worker, status: code ?? (signal === null ? -1 : 128), json, stderr });
    });
  });
}

export async function runFarm(args: FarmArgs, env: CommandEnv): Promise<CommandOutput> {
  const started = performance.now();
  // The workers would migrate a new store safely (open.ts), but one migration up front is simpler to read.
  await (await openStore(env.db)).close();
  const { iterations } = args.values;
  const shares = Array.from({ length: args.workers }, (_, k) =>
    iterations === null ? null : shareOf(iterations, args.workers, k),
  );
  const results = await Promise.all(
    shares.flatMap((share, k) => (share === 0 ? [] : [runWorker(k, workerArgs(args, env, k, share))])),
  );
  const failed = results.find((r) => r.status !== 0 && r.status !== 1);
  if (failed !== undefined) {
    const why = failed.json?.error?.message ?? failed.stderr.trim().split('\n').slice(-3).join(' / ');
    throw new Error(`fuzz worker ${failed.worker} exited with status ${failed.status}: ${why}`);
  }
  const elapsed = (performance.now() - started) / 1000;
  const traces = results.reduce((n, r) => n + (r.json?.traces ?? 0), 0);
  const failingTraces = results.reduce((n, r) => n + (r.json?.failingTraces ?? 0), 0);
  const claimed = results.reduce((n, r) => n + (r.json?.claimed?.length ?? 0), 0);

  const store = await openStore(env.db, { readonly: true });
  let failures;
  try {
    failures = await store.query(farmFailuresQuery(args.label));
  } finally {
    await store.close();
  }
  const text = [
    `fuzz farm on ${args.label} into ${env.db}: ${results.length} workers, ${traces} traces in ${elapsed.toFixed(1)} s: ` +
      `${failingTraces} failing traces, ${claimed} failures new to the store; the store holds ${failures.length} for ${args.label}`,
  ];
  if (failures.length > 0) {
    const rows = failures.map((f) => [
      String(f.count),
      describeKey(f),
      String(f.seed),
      f.traceRun === null ? '-' : String(f.traceRun),
      f.reproducerRun === null ? '-' : `${f.reproducerRun} (${f.reproducerOps ?? '?'} ops)`,
    ]);
    for (const l of table(['traces', 'failure', 'seed', 'trace run', 'reproducer run'], rows)) text.push(`  ${l}`);
  }
  const json = {
    variant: args.label,
    flags: [...args.fixes],
    workers: results.length,
    traces,
    failingTraces,
    newFailures: claimed,
    seconds: Number(elapsed.toFixed(3)),
    db: env.db,
    failures,
  };
  return { exitCode: failingTraces > 0 ? 1 : 0, json, text };
}
