// SPDX-License-Identifier: GPL-2.0-only
/**
 * B3 seek: `count` calls of stateAt(StoreSource, seq) at seqs drawn uniformly from the whole run by a seeded
 * PRNG, in the order drawn (no two seeks share work beyond the source's snapshot list). Each call is timed
 * alone; p50 and p99 by the nearest-rank rule. The last seek is checked against the recorded final digest.
 */

import { maxOf } from '../src/lib/arrays.js';
import { InternalError } from '../src/lib/errors.js';
import { digestHex } from '../src/lib/digest.js';
import { openStore } from '../src/store/index.js';
import { StoreSource, stateAt } from '../src/timetravel/index.js';
import { Rng } from './generate.js';
import { loadAverage, quantile, seconds, stopwatch } from './timing.js';

export interface SeekMeasurement {
  events: number;
  seeks: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** p99 of the CPU time of each seek: what the seek costs, without the waits a busy machine adds. */
  p99CpuMs: number;
  snapshots: number;
  load: number;
}

export async function measureSeeks(dbPath: string, run: number, count: number, seed: number): Promise<SeekMeasurement> {
  const store = await openStore(dbPath, { readonly: true });
  try {
    const source = await StoreSource.open(store, run);
    const events = source.eventCount();
    const rng = new Rng(seed);
    const seqs = Array.from({ length: count }, () => rng.int(1, events));
    const ms: number[] = [];
    const cpuMs: number[] = [];
    for (const seq of seqs) {
      const cpu0 = process.cpuUsage();
      const clock = stopwatch();
      await stateAt(source, seq);
      ms.push(seconds(clock) * 1000);
      const cpu = process.cpuUsage(cpu0);
      cpuMs.push((cpu.user + cpu.system) / 1000);
    }
    const final = digestHex((await stateAt(source, events)).digest);
    const recorded = (await store.run(run))?.finalDigest ?? null;
    if (final !== recorded)
      throw new InternalError(`seek to the end of run ${run}: digest ${final}, recorded ${String(recorded)}`);
    return {
      events,
      seeks: count,
      p50Ms: quantile(ms, 0.5),
      p99Ms: quantile(ms, 0.99),
      maxMs: maxOf(ms),
      meanMs: ms.reduce((a, b) => a + b, 0) / ms.length,
      p99CpuMs: quantile(cpuMs, 0.99),
      snapshots: source.snapshotSeqs().length,
      load: loadAverage(),
    };
  } finally {
    await store.close();
  }
}
