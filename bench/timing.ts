// SPDX-License-Identifier: GPL-2.0-only
/**
 * Clocks and memory readings for the benchmark (monotonic, nanosecond resolution), and the percentile
 * rule used for seek latencies. Only bench/ reads clocks: the product is deterministic.
 *
 * Wall time is what the figures are; CPU time is kept beside the big ones because on a shared machine other
 * processes stretch wall time but not this process's CPU time, so a ratio of CPU times still compares like
 * with like when the machine is busy.
 */

import { loadavg } from 'node:os';

export type Stopwatch = bigint;

export function stopwatch(): Stopwatch {
  return process.hrtime.bigint();
}

/** Seconds since the stopwatch started. */
export function seconds(start: Stopwatch): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** CPU time of this process (user + system), in seconds: unlike wall time, other processes' load does not add to it. */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** The 1-minute load average: how busy the machine was while a figure was measured. */
export function loadAverage(): number {
  return loadavg()[0] ?? 0;
}

/** The process's peak resident set so far, in MiB (the kernel's high-water mark, not a sample). */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/**
 * The q-quantile (0 < q <= 1) of `values` by the nearest-rank rule: the smallest value with at least
 * q * n values at or below it. p99 of 1000 samples is the 990th smallest.
 */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0 || !(q > 0 && q <= 1)) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}
