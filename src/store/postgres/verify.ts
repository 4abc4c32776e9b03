// SPDX-License-Identifier: GPL-2.0-only
/**
 * verify on PostgreSQL: the walk of ../verify.ts on one connection inside one REPEATABLE READ, READ ONLY
 * transaction, so every read sees the same snapshot: writers committing meanwhile (other runs, or more
 * batches of a run being walked) are not seen half-way and raise no false alarm.
 */

import type pg from 'pg';
import {
  VERIFY_CHUNK,
  VERIFY_RUN_SQL,
  verifyWith,
  type BlockRecord,
  type RawEvent,
  type RawOp,
  type RunRecord,
  type VerifySource,
} from '../verify.js';
import type { VerifyReport } from '../types.js';

function pgSource(client: pg.PoolClient): VerifySource {
  return {
    runIds: async () => (await client.query<{ id: number }>('SELECT id FROM runs ORDER BY id')).rows.map((r) => r.id),
    run: async (id) => (await client.query<RunRecord>(`${VERIFY_RUN_SQL} WHERE id = $1`, [id])).rows[0],
    blocks: async (run) =>
      (
        await client.query<BlockRecord>(
          'SELECT first_seq, last_seq, types FROM event_blocks WHERE run = $1 ORDER BY first_seq',
          [run],
        )
      ).rows,
    events: async (run, afterSeq) =>
      (
        await client.query<RawEvent>(
          `SELECT id, seq, op, type, v, payload, hash FROM events WHERE run = $1 AND seq > $2 ORDER BY seq LIMIT ${VERIFY_CHUNK}`,
          [run, afterSeq],
        )
      ).rows,
    ops: async (run, fromIndex) =>
      (
        await client.query<RawOp>(
          `SELECT idx, line, op, errno, result, first_seq, last_seq, digest, hash FROM ops WHERE run = $1 AND idx >= $2 ORDER BY idx LIMIT ${VERIFY_CHUNK}`,
          [run, fromIndex],
        )
      ).rows,
  };
}

export async function verifyRuns(pool: pg.Pool, run?: number): Promise<VerifyReport> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      return await verifyWith(pgSource(client), run);
    } finally {
      await client.query('COMMIT');
    }
  } finally {
    client.release();
  }
}
