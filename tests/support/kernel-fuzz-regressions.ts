// SPDX-License-Identifier: GPL-2.0-only
/**
 * The regression pairs of fuzz --against-kernel (tests/fixtures/kernel-fuzz/, README.md there): each trace
 * with what the trace runner printed for it on the 6.12.118 kernel (NAME.kernel.jsonl: the program's JSON
 * lines and the runner's status line), and the exact answers the tests hold both sides to.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseRunnerOutput } from '../../src/groundtruth/compact.js';
import type { RunnerTrace } from '../../src/groundtruth/compact.js';
import { parseTraceText } from '../../src/replay/parse.js';
import type { ParsedTrace } from '../../src/replay/parse.js';

export const KERNEL_FUZZ_DIR = 'tests/fixtures/kernel-fuzz';

export interface RegressionPair {
  name: string;
  /** How the kernel's run ended: `exit` (status 0), or `timeout` (an op never returned). */
  how: 'exit' | 'timeout';
  /** The ops the kernel answered (all of them, or those before the hung op). */
  answered: number;
  /** [op, WARN site] of every kernel WARN, in order. */
  warns: [number, string][];
  /** [op, errno] of the ops that pin the disagreement down (the kernel's answer, which the model must give). */
  errnos: [number, string][];
  /** The op that hung (the model: errno HUNG; the kernel: no answer, the trace killed). */
  hung: number | null;
}

export const REGRESSION_PAIRS: readonly RegressionPair[] = [
  // (b) the stale last_npinned of a dead opener: the attach / access_rw pins from the dead mm and WARNs.
  {
    name: 'dead-opener-stale-attach',
    how: 'exit',
    answered: 9,
    warns: [[9, 'pfn_reader_destroy']],
    errnos: [[9, 'EFAULT']],
    hung: null,
  },
  {
    name: 'dead-opener-stale-rw',
    how: 'exit',
    answered: 11,
    warns: [[11, 'pfn_reader_destroy']],
    errnos: [[11, 'EFAULT']],
    hung: null,
  },
  {
    name: 'seed1461',
    how: 'exit',
    answered: 30,
    warns: [
      [23, 'pfn_reader_destroy'],
      [24, 'pfn_reader_destroy'],
      [25, 'pfn_reader_destroy'],
    ],
    errnos: [
      [23, 'EFAULT'],
      [24, 'EFAULT'],
      [25, 'EFAULT'],
    ],
    hung: null,
  },
  {
    name: 'seed4191',
    how: 'exit',
    answered: 33,
    warns: [[28, 'pfn_reader_destroy']],
    errnos: [[28, 'EFAULT']],
    hung: null,
  },
  // (a) the same stale pair, then a fill that pins nothing: update_mm_locked_vm's unlock of a lock not held.
  { name: 'dead-opener-second-domain-hang', how: 'timeout', answered: 8, warns: [], errnos: [], hung: 9 },
  { name: 'seed3620', how: 'timeout', answered: 28, warns: [], errnos: [], hung: 29 },
  // Found by the campaign of seeds 10000-11499 as an agreement: the kernel hangs in ioas_copy exactly where the model does.
  { name: 'seed10665', how: 'timeout', answered: 24, warns: [], errnos: [], hung: 25 },
  // (c) an unpin after a failed pin of the same range: the oldest pin still held is undone.
  {
    name: 'unpin-after-failed-pin',
    how: 'exit',
    answered: 10,
    warns: [],
    errnos: [
      [7, 'ok'],
      [8, 'EPERM'],
      [9, 'ok'],
      [10, 'ENOENT'],
    ],
    hung: null,
  },
  {
    name: 'seed2179',
    how: 'exit',
    answered: 21,
    warns: [],
    errnos: [
      [19, 'EPERM'],
      [20, 'ok'],
      [21, 'ok'],
    ],
    hung: null,
  },
  // (d) ops on an access that was never created (EADDRINUSE from iopt_add_access) or is destroyed.
  {
    name: 'access-gone',
    how: 'exit',
    answered: 14,
    warns: [],
    errnos: [
      [8, 'ENOENT'],
      [9, 'ENOENT'],
      [10, 'ENOENT'],
      [12, 'ok'],
      [13, 'ok'],
      [14, 'ok'],
    ],
    hung: null,
  },
  {
    name: 'seed10037',
    how: 'exit',
    answered: 23,
    warns: [],
    errnos: [
      [14, 'EADDRINUSE'],
      [17, 'ENOENT'],
      [18, 'ENOENT'],
      [20, 'ENOENT'],
      [23, 'ENOENT'],
    ],
    hung: null,
  },
];

export function regressionTrace(name: string): { text: string; trace: ParsedTrace } {
  const path = join(KERNEL_FUZZ_DIR, `${name}.jsonl`);
  const text = readFileSync(path, 'utf8');
  return { text, trace: parseTraceText(text, path) };
}

/** What the runner printed for the pair's trace on 6.12.118 (recorded). */
export function recordedKernelRun(name: string): RunnerTrace {
  const runs = parseRunnerOutput(readFileSync(join(KERNEL_FUZZ_DIR, `${name}.kernel.jsonl`), 'utf8'));
  const run = runs.find((r) => r.name === name);
  if (run === undefined) throw new Error(`${name}.kernel.jsonl has no run of ${name}`);
  return run;
}
