// SPDX-License-Identifier: GPL-2.0-only
/** The zone map of a run (event_blocks, see schema.ts): which event types each committed batch holds. */
import type { StoreQuery } from './context.js';

export interface EventBlock {
  firstSeq: number;
  lastSeq: number;
  /** The distinct types of the block's events, sorted. */
  types: string[];
}

/** The run's event blocks by first seq. */
export function eventBlocksQuery(run: number): StoreQuery<EventBlock[]> {
  return async ({ db }) => {
    const rows = await db
      .selectFrom('event_blocks')
      .where('run', '=', run)
      .select(['first_seq', 'last_seq', 'types'])
      .orderBy('first_seq')
      .execute();
    return rows.map((r) => ({ firstSeq: r.first_seq, lastSeq: r.last_seq, types: JSON.parse(r.types) as string[] }));
  };
}
