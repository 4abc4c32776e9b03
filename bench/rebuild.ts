// SPDX-License-Identifier: GPL-2.0-only
/**
 * B2 rebuild: the final state of a stored run rebuilt from its log alone (no snapshot): the initial state,
 * then the reducers over every event read back through the store (StoreSource: keyset chunks, decodeEvent),
 * checked against the run's recorded final digest. The limit beside it is the raw scan of the same rows with
 * the same decoding (limits.ts), measured in the same process right before.
 */

import { InternalError } from '../src/lib/errors.js';
import { digestHex } from '../src/lib/digest.js';
import { openStore } from '../src/store/index.js';
import { StoreSource, rebuildFinal } from '../src/timetravel/index.js';
import { rawScan } from './limits.js';
import type { RawScanResult } from './limits.js';
import { cpuSeconds, seconds, stopwatch } from './timing.js';

export interface RebuildMeasurement {
  events: number;
  seconds: number;
  cpuSeconds: number;
  eventsPerSec: number;
  limit: RawScanResult;
}

export async function measureRebuild(dbPath: string, run: number): Promise<RebuildMeasurement> {
  const limit = rawScan(dbPath, run);
  const store = await openStore(dbPath, { readonly: true });
  try {
    const source = await StoreSource.open(store, run);
    const events = source.eventCount();
    const cpu0 = cpuSeconds();
    const clock = stopwatch();
    const state = await rebuildFinal(source);
    const s = seconds(clock);
    const cpu = cpuSeconds() - cpu0;
    const recorded = (await store.run(run))?.finalDigest ?? null;
    const rebuilt = digestHex(state.digest);
    if (recorded !== rebuilt)
      throw new InternalError(`rebuild of run ${run}: digest ${rebuilt}, recorded ${String(recorded)}`);
    return { events, seconds: s, cpuSeconds: cpu, eventsPerSec: events / s, limit };
  } finally {
    await store.close();
  }
}
