// SPDX-License-Identifier: GPL-2.0-only
/**
 * B4 bisect: two stored runs of the same guest trace that diverge at one op chosen at random: run A on
 * upstream (already recorded by B5), run B on upstream without map-requires-prot, recorded here into the
 * same database. The trace carries one ioas_map without READ or WRITE at the chosen op (generate.ts: the
 * probe), which upstream's core refuses and run B's mock domain answers (with the iommupt mock: a WARN and
 * -EINVAL), so every op before it agrees.
 *
 * Timed: bisectRuns (src/bisect) from its call to its answer, which includes the structural diff of the two
 * states after the divergent op and the op's events side by side. The answer is checked: the divergence
 * must be the probe's op. Recording run B is not timed.
 */

import { InternalError } from '../src/lib/errors.js';
import { bisectRuns } from '../src/bisect/bisect-runs.js';
import { openStore } from '../src/store/index.js';
import { recordGuest } from './append.js';
import type { VariantChoice } from './append.js';
import type { GuestOptions } from './generate.js';
import { guestTrace } from './generate.js';
import { seconds, stopwatch } from './timing.js';

export const DIVERGENT: VariantChoice = {
  label: 'upstream-map-requires-prot',
  variant: 'upstream',
  without: ['map-requires-prot'],
};

export interface BisectMeasurement {
  seconds: number;
  eventsA: number;
  eventsB: number;
  runB: number;
  divergenceOp: number;
  probeOp: number;
  differingOps: number;
  diffLines: number;
}

export async function measureBisect(
  dbPath: string,
  runA: number,
  eventsA: number,
  options: GuestOptions,
): Promise<BisectMeasurement> {
  const guest = guestTrace(options);
  if (guest.probeAt === null) throw new InternalError('the bisect workload needs a probe op');
  const b = await recordGuest(dbPath, guest, DIVERGENT, false);
  const store = await openStore(dbPath, { readonly: true });
  try {
    const clock = stopwatch();
    const report = await bisectRuns(store, runA, b.run);
    const s = seconds(clock);
    const op = report.divergence?.op ?? -1;
    if (op !== guest.probeAt) throw new InternalError(`bisect found op ${op}, the probe is op ${guest.probeAt}`);
    return {
      seconds: s,
      eventsA,
      eventsB: b.events,
      runB: b.run,
      divergenceOp: op,
      probeOp: guest.probeAt,
      differingOps: report.differingOps,
      diffLines: report.divergence?.diff.lines.length ?? 0,
    };
  } finally {
    await store.close();
  }
}
