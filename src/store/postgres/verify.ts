// SPDX-License-Identifier: GPL-2.0-only
/**
 * verify on PostgreSQL: the walk of ../verify.ts on one connection inside one REPEATABLE READ, READ ONLY
 * transaction, so every read sees the same snapshot: writers committing meanwhile (other runs, or more
 * batches of a run being walked) are not seen half-way and raise no false alarm.
 */

import type pg from 'pg';
import { verifySource, verifyWith } from '../verify.js';
import type { VerifyReport } from '../types.js';

export async function verifyRuns(pool: pg.Pool, run?: number): Promise<VerifyReport> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      const query = async (sql: string, params: unknown[]) => (await client.query(sql, params)).rows as unknown[];
      return await verifyWith(
        verifySource(query, (n) => `$${n}`),
        run,
      );
    } finally {
      await client.query('COMMIT');
    }
  } finally {
    client.release();
  }
}
