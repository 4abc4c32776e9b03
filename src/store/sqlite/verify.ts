// SPDX-License-Identifier: GPL-2.0-only
/**
 * verify on SQLite: the walk of ../verify.ts over prepared statements, inside one deferred read transaction
 * (the read snapshot is taken at the first SELECT and held until COMMIT), so a writer committing meanwhile
 * is not seen half-way. The statements run synchronously; the walk awaits only between chunks.
 */

import type { Connection } from './connection.js';
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

function sqliteSource(conn: Connection): VerifySource {
  return {
    runIds: () => Promise.resolve(conn.prepare<[], number>('SELECT id FROM runs ORDER BY id').pluck().all()),
    run: (id) => Promise.resolve(conn.prepare<[number], RunRecord>(`${VERIFY_RUN_SQL} WHERE id = ?`).get(id)),
    blocks: (run) =>
      Promise.resolve(
        conn
          .prepare<[number], BlockRecord>(
            'SELECT first_seq, last_seq, types FROM event_blocks WHERE run = ? ORDER BY first_seq',
          )
          .all(run),
      ),
    events: (run, afterSeq) =>
      Promise.resolve(
        conn
          .prepare<[number, number], RawEvent>(
            `SELECT id, seq, op, type, v, payload, hash FROM events WHERE run = ? AND seq > ? ORDER BY seq LIMIT ${VERIFY_CHUNK}`,
          )
          .all(run, afterSeq),
      ),
    ops: (run, fromIndex) =>
      Promise.resolve(
        conn
          .prepare<[number, number], RawOp>(
            `SELECT idx, line, op, errno, result, first_seq, last_seq, digest, hash FROM ops WHERE run = ? AND idx >= ? ORDER BY idx LIMIT ${VERIFY_CHUNK}`,
          )
          .all(run, fromIndex),
      ),
  };
}

export async function verifyRuns(conn: Connection, run?: number): Promise<VerifyReport> {
  // Deferred: the read snapshot is taken at the first SELECT and held until the end.
  conn.raw.exec('BEGIN');
  try {
    return await verifyWith(sqliteSource(conn), run);
  } finally {
    if (conn.raw.inTransaction) conn.raw.exec('COMMIT');
  }
}
