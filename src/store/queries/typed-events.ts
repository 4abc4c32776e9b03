// SPDX-License-Identifier: GPL-2.0-only
/**
 * A chunk of one run's events of a few types, as seq, op and payload only: the read of a tracker that
 * follows some event types over a long stretch of a run (bisect's neutral digests, src/bisect/bisect-runs.ts),
 * where Store.events' full rows and per-row promises cost more than the events' own handling.
 */
import type { StoreQuery } from './context.js';

export interface TypedEventRow {
  seq: number;
  op: number;
  payload: string;
}

/** Up to `limit` events of `types` with seq in [fromSeq, toSeq], by seq. */
export function typedEventsQuery(
  run: number,
  fromSeq: number,
  toSeq: number,
  types: readonly string[],
  limit: number,
): StoreQuery<TypedEventRow[]> {
  return async ({ db }) => {
    if (types.length === 0) return [];
    const rows = await db
      .selectFrom('events')
      .select(['seq', 'op', 'payload'])
      .where('run', '=', run)
      .where('seq', '>=', fromSeq)
      .where('seq', '<=', toSeq)
      .where('type', 'in', types)
      .orderBy('seq')
      .limit(limit)
      .execute();
    // PostgreSQL's bigint columns come back as strings.
    return rows.map((r) => ({ seq: Number(r.seq), op: Number(r.op), payload: r.payload }));
  };
}
