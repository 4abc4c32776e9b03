// SPDX-License-Identifier: GPL-2.0-only
/**
 * The model's column of the selftest table: the same selftest sources, built dynamically (LD_PRELOAD
 * needs the dynamic loader; the VM's copies are static), run on this machine under `ioptrace run` with
 * the CLI of this package, one run per program. Each test's outcome comes from the program's TAP output;
 * the first failed expectation the harness printed inside that test (`# iommufd.c:LINE:test:...`, between
 * its RUN line and its result) is its reason.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
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
  /** Per test name, the first failure line the harness printed inside it (file:line: expectation). */
  reasons: Record<string, string>;
  /** What `ioptrace run` answered as out of scope, by name and count. */
  unserved: Record<string, number>;
  /** The run's own summary lines (ioptrace: ...), or its error. */
  report: string[];
}

/** `# iommufd.c:118:cmd_length:Expected 22 (22) == errno (25)`: file, line, test, what failed. */
const FAILURE = /^# ([\w.]+:\d+):(\w+):(.*)$/;
/** `#  RUN           fixture.variant.name ...`: the harness starts a test (stdout, flushed before its fork). */
const RUN = /^#\s+RUN\s+(\S+) \.\.\.$/;
/** `# access_rw: Test terminated by timeout`: how the harness ended a test (timeout, signal, assertion). */
const TERMINATED = /^# \w+: Test terminated by (.*)$/;
/** `ok N name` / `not ok N name`: the test has ended. */
const RESULT = /^(?:not )?ok \d+ /;

/**
 * The first failure line of each test, read from the program's stdout and stderr as one stream (both
 * written to one file, so the harness's flush before each test's fork keeps them in order): a failure line
 * belongs to the test whose RUN line came last and that has not printed its result yet. A line of another
 * function (a helper's) is taken too: the harness names the test's function on every line of that test.
 */
export function failureReasons(output: string, tests: readonly string[]): Record<string, string> {
  const wanted = new Set(tests);
  const out: Record<string, string> = {};
  let current: string | null = null;
  for (const raw of output.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const run = RUN.exec(line);
    if (run) {
      current = run[1] ?? null;
      continue;
    }
    if (RESULT.test(line)) {
      current = null;
      continue;
    }
    if (current === null || !wanted.has(current) || out[current] !== undefined) continue;
    const m = FAILURE.exec(line);
    // A test the harness killed (its 30 s timeout, a signal) printed no failed expectation: that is the reason.
    const end = m ? null : TERMINATED.exec(line);
    if (m) out[current] = `${m[1]}: ${(m[3] ?? '').trim()}`;
    else if (end && end[1] !== 'assertion') out[current] = `terminated by ${(end[1] ?? '').trim()}`;
  }
  return out;
}

/**
 * How much longer the kselftest harness's per-test alarm (30 s, sized for the kernel) runs under the model
 * (native/preload/preload.c, alarm): the model answers each ioctl tens of times slower than the kernel,
 * and on a loaded machine the longest loops (mock_domain_limit's ioas_iova_alloc, fork_gone) would be
 * killed for the model's speed rather than judged on its answers. A test that hangs still ends, later.
 */
export const HARNESS_TIMEOUT_SCALE = 10;

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
    // One open file for both stdout and stderr: one offset, so lines land in the order they were written
    // (separate pipes would lose which test a failure line belongs to).
    const outputPath = join(dir, 'output.log');
    const outputFd = openSync(outputPath, 'w');
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(process.execPath, args, {
        stdio: ['ignore', outputFd, outputFd],
        env: { ...process.env, IOPTRACE_ALARM_SCALE: String(HARNESS_TIMEOUT_SCALE) },
      });
    } finally {
      closeSync(outputFd);
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      let output = '';
      try {
        output = readFileSync(outputPath, 'utf8');
      } catch {
        // no output file: the run's error is in its exit status
      }
      const tap = parseTap(output);
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
          output,
          tap.tests.map((t) => t.name),
        ),
        unserved,
        report: output.split('\n').filter((l) => l.startsWith('ioptrace')),
      });
    });
  });
}
