// SPDX-License-Identifier: GPL-2.0-only
/**
 * verify on SQLite: the walk of ../verify.ts over prepared statements, inside one deferred read transaction
 * (the read snapshot is taken at the first SELECT and held until COMMIT), so a writer committing meanwhile
 * is not seen half-way. The statements run synchronously; the walk awaits only between chunks.
 */

import type { Connection } from './connection.js';
import { verifySource, verifyWith } from '../verify.js';
import type { VerifyReport } from '../types.js';

export async function verifyRuns(conn: Connection, run?: number): Promise<VerifyReport> {
  // Deferred: the read snapshot is taken at the first SELECT and held until the end.
  conn.raw.exec('BEGIN');
  try {
    return await verifyWith(
      verifySource(
        (sql, params) => Promise.resolve(conn.prepare(sql).all(params)),
        () => '?',
      ),
      run,
    );
  } finally {
    if (conn.raw.inTransaction) conn.raw.exec('COMMIT');
  }
}
