// SPDX-License-Identifier: GPL-2.0-only
/**
 * B10 serve: the server time of `GET /api/runs/RUN/view?seq=S` (the state of one event as the browser view
 * draws it: snapshot + tail, the view's lists, the JSON text) for `count` seqs drawn uniformly from the run,
 * over `ioptrace serve`'s own server (src/web/server.ts) on a loopback port in this process. Server time is
 * measured inside the server around the handler and the JSON encoding (its onTiming hook), so the HTTP
 * client's share is left out. The last request, at the run's end, is checked against the recorded digest.
 */
import { InternalError } from '../src/lib/errors.js';
import { openStore } from '../src/store/index.js';
import { startServer } from '../src/web/server.js';
import { Rng } from './generate.js';
import { loadAverage, quantile } from './timing.js';

export interface ServeMeasurement {
  events: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** p99 of the CPU time of each answer: its cost without the waits a busy machine adds. */
  p99CpuMs: number;
  /** Mean size of one answer, in bytes. */
  meanBytes: number;
  load: number;
}

export async function measureServe(
  dbPath: string,
  run: number,
  count: number,
  seed: number,
): Promise<ServeMeasurement> {
  const store = await openStore(dbPath, { readonly: true });
  const ms: number[] = [];
  const cpuMs: number[] = [];
  const server = await startServer({
    store,
    onTiming: (route, t, cpu) => {
      if (route !== 'view') return;
      ms.push(t);
      cpuMs.push(cpu);
    },
  });
  try {
    const events = await store.eventCount(run);
    const rng = new Rng(seed ^ 0x5e4e);
    const seqs = [...Array.from({ length: count - 1 }, () => rng.int(1, events)), events];
    let bytes = 0;
    let last: { view: { digest: string } } | null = null;
    for (const seq of seqs) {
      const res = await fetch(`${server.url}api/runs/${run}/view?seq=${seq}`);
      const text = await res.text();
      if (res.status !== 200) throw new InternalError(`view of event ${seq}: HTTP ${res.status}: ${text}`);
      bytes += text.length;
      last = JSON.parse(text) as { view: { digest: string } };
    }
    const recorded = (await store.run(run))?.finalDigest ?? null;
    if (last?.view.digest !== recorded)
      throw new InternalError(
        `view of the last event: digest ${String(last?.view.digest)}, recorded ${String(recorded)}`,
      );
    return {
      events,
      requests: ms.length,
      p50Ms: quantile(ms, 0.5),
      p99Ms: quantile(ms, 0.99),
      maxMs: ms.reduce((a, b) => Math.max(a, b), 0),
      p99CpuMs: quantile(cpuMs, 0.99),
      meanBytes: bytes / seqs.length,
      load: loadAverage(),
    };
  } finally {
    await server.close();
    await store.close();
  }
}
