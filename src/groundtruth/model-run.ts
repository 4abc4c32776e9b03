// SPDX-License-Identifier: GPL-2.0-only
/**
 * The model's column of the selftest table: the same selftest sources, built dynamically (LD_PRELOAD
 * needs the dynamic loader; the VM's copies are static), run on this machine under `ioptrace run` with
 * the CLI of this package, one run per program. Each test's outcome comes from the program's TAP output;
 * the first failed expectation the harness printed for it (`# iommufd.c:LINE:test:...`) is its reason.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { parseTap } from './tap.js';
import type { TapResult } from './tap.js';

export interface ModelRun {
  program: string;
  variant: string;
  exitStatus: number | null;
  wallSeconds: number;
  tap: TapResult;
  /** Per test name, the first failure line the harness printed for it (file:line: expectation). */
  reasons: Record<string, string>;
  /** What `ioptrace run` answered as out of scope, by name and count. */
  unserved: Record<string, number>;
  /** The run's own summary lines (ioptrace: ...), or its error. */
  report: string[];
}

/** `# iommufd.c:118:cmd_length:Expected 22 (22) == errno (25)`: file, line, test, what failed. */
const FAILURE = /^# ([\w.]+:\d+):(\w+):(.*)$/;

/** The first failure line of each test function, by the function's name (the last part of a test name). */
export function failureReasons(stderr: string, tests: readonly string[]): Record<string, string> {
  const byFunction = new Map<string, string[]>();
  for (const line of stderr.split('\n')) {
    const m = FAILURE.exec(line);
    if (!m) continue;
    const list = byFunction.get(m[2] ?? '') ?? [];
    list.push(`${m[1]}: ${(m[3] ?? '').trim()}`);
    byFunction.set(m[2] ?? '', list);
  }
  // Several variants share a function: their failures come in test order, one or more lines each, so a
  // reason is exact for the first failing variant and indicative for the later ones.
  const out: Record<string, string> = {};
  for (const name of tests) {
    const fn = name.split('.').pop() ?? name;
    const first = byFunction.get(fn)?.[0];
    if (first !== undefined) out[name] = first;
  }
  return out;
}

/** Run `program` under `ioptrace run --variant V` and read its TAP output. */
export function runUnderModel(program: string, variant: string, timeoutMs = 20 * 60_000): Promise<ModelRun> {
  const dir = mkdtempSync(join(tmpdir(), 'ioptrace-selftest-model-'));
  const json = join(dir, 'run.json');
  const cli = join(packageRoot(), 'dist', 'src', 'cli', 'bin.js');
  // The VM's /init runs the programs as root with every capability; this machine's root may lack some
  // (CAP_SYS_RESOURCE, which IOMMU_OPTION's RLIMIT_MODE asks for), so the model's column grants them.
  const caps = ['--grant-cap', 'CAP_IPC_LOCK', '--grant-cap', 'CAP_SYS_RESOURCE'];
  const args = [
    cli,
    'run',
    '--variant',
    variant,
    ...caps,
    '--db',
    join(dir, 'runs.db'),
    '--json-out',
    json,
    '--',
    program,
  ];
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      const tap = parseTap(stdout);
      let unserved: Record<string, number> = {};
      try {
        unserved = (JSON.parse(readFileSync(json, 'utf8')) as { unserved: Record<string, number> }).unserved;
      } catch {
        // no report: the run ended in an error, which the report lines below carry
      }
      rmSync(dir, { recursive: true, force: true });
      resolve({
        program,
        variant,
        exitStatus: code,
        wallSeconds: (Date.now() - t0) / 1000,
        tap,
        reasons: failureReasons(
          stderr,
          tap.tests.map((t) => t.name),
        ),
        unserved,
        report: stderr.split('\n').filter((l) => l.startsWith('ioptrace')),
      });
    });
  });
}
