// SPDX-License-Identifier: GPL-2.0-only
/**
 * Fault injection as a program under `ioptrace run` sees it: the per-task /proc/PID/task/TID/fail-nth file
 * and the debugfs knobs of the fault attributes (/sys/kernel/debug/failslab, fail_page_alloc, ...).
 *
 * The kernel keeps one counter per task (task->fail_nth). Writing N arms it; every should_fail site the task
 * then reaches, of any fault attribute, counts it down (should_fail_ex's fail-nth branch comes before the
 * attribute's own probability), and the site that brings it to zero fails. Reading the file gives the
 * counter as "%u\n": 0 once the fault fired, the rest otherwise.
 *
 * Here the sites are the model's fault points (each op run while the caller's counter is armed is preceded
 * in the trace by a `fault` op with the counter's value, and what the op reached is counted off) plus the
 * sites of the kernel's paths that the server itself stands for (the usercopies of an ioctl, the
 * allocations of open and of the device and hwpt objects). Sites the model has no counterpart for (the VFS,
 * the driver core, the page cache, xarray nodes) are not counted, so a sweep reaches fewer sites than the
 * kernel's does; each one it does reach fails where the kernel's would.
 *
 * The debugfs knobs are plain files in a directory of the run (IOPTRACE_DEBUGFS): what the program writes
 * there is kept, and the counting above is the one the settings iommufd_fail_nth.c makes give
 * (failslab/ignore-gfp-wait N: sleeping allocations count too).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EINVAL, ERANGE } from '../machine/errno.js';

/** The fault attributes a CONFIG_FAULT_INJECTION_DEBUG_FS kernel of the ground-truth config shows, and their knobs. */
const ATTRIBUTES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  failslab: { 'ignore-gfp-wait': 'Y', 'cache-filter': 'N' },
  fail_page_alloc: { 'ignore-gfp-wait': 'Y', 'ignore-gfp-highmem': 'Y', 'min-order': '1' },
  fail_usercopy: {},
  fail_iommufd: {},
};
/** The knobs every fault attribute has (lib/fault-inject.c fault_create_debugfs_attr), with their defaults. */
const COMMON_KNOBS: Readonly<Record<string, string>> = {
  probability: '0',
  interval: '1',
  times: '1',
  space: '0',
  verbose: '2',
  verbose_ratelimit_interval_ms: '5000',
  verbose_ratelimit_burst: '10',
  'task-filter': 'N',
};

/** Create the emulated debugfs fault attributes under `dir`. */
export function createDebugfs(dir: string): void {
  for (const [attr, knobs] of Object.entries(ATTRIBUTES)) {
    mkdirSync(join(dir, attr), { recursive: true });
    for (const [knob, value] of Object.entries({ ...COMMON_KNOBS, ...knobs }))
      writeFileSync(join(dir, attr, knob), `${value}\n`);
  }
}

/**
 * kstrtouint of what a write to fail-nth carried (at most 23 bytes are looked at: kstrtouint_from_user's
 * buffer): an optional '+', base 0 (0x for hex, a leading 0 for octal), digits, one optional newline.
 * The value, or EINVAL / ERANGE as a negative number.
 */
export function parseFailNth(bytes: Buffer): number {
  let s = bytes.subarray(0, 23).toString('latin1');
  const nul = s.indexOf('\0');
  if (nul >= 0) s = s.slice(0, nul);
  if (s.startsWith('+')) s = s.slice(1);
  let base = 10;
  if (/^0[xX][0-9a-fA-F]/.test(s)) {
    base = 16;
    s = s.slice(2);
  } else if (s.startsWith('0') && s.length > 1 && s[1] !== '\n') {
    base = 8;
    s = s.slice(1);
  }
  const digits = s.endsWith('\n') ? s.slice(0, -1) : s;
  const valid = base === 16 ? /^[0-9a-fA-F]+$/ : base === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!valid.test(digits)) return -EINVAL;
  const value = BigInt(base === 16 ? `0x${digits}` : base === 8 ? `0o${digits}` : digits);
  return value > 0xffffffffn ? -ERANGE : Number(value);
}

/** The fail-nth counters of the run's tasks, by thread id. */
export class FailNth {
  private readonly counters = new Map<number, number>();

  /** The counter of task `tid` (0: not armed). */
  value(tid: number): number {
    return this.counters.get(tid) ?? 0;
  }

  /** A write of fail-nth: the task's counter becomes `n`. */
  set(tid: number, n: number): void {
    if (n === 0) this.counters.delete(tid);
    else this.counters.set(tid, n);
  }

  /** A should_fail site reached by task `tid`: true when it is the one that fails. */
  point(tid: number): boolean {
    const n = this.value(tid);
    if (n === 0) return false;
    this.set(tid, n - 1);
    return n === 1;
  }

  /** A model op run with the counter armed at `armedWith` reached `reached` fault points. */
  afterOp(tid: number, armedWith: number, reached: number): void {
    this.set(tid, reached >= armedWith ? 0 : armedWith - reached);
  }
}
