// SPDX-License-Identifier: GPL-2.0-only
/**
 * The Store over a PostgreSQL server: append.ts, read.ts and verify.ts on a pg pool (the hot paths, plain
 * SQL), and the query files on kysely's own PostgresDialect with the spellings of dialect.ts.
 */

import type { Kysely } from 'kysely';
import type pg from 'pg';
import { storeOver } from '../backend.js';
import type { Database as Schema } from '../schema.js';
import type { Store } from '../types.js';
import { beginRun } from './append.js';
import { postgresSql } from './dialect.js';
import {
  readEventCount,
  readEvents,
  readReplayRows,
  readReplayPayloads,
  readOpAt,
  readOps,
  readRun,
  readRuns,
  readSnapshotAtOrBefore,
  readSnapshotSeqs,
  readTraceText,
} from './read.js';
import { verifyRuns } from './verify.js';

export function postgresStore(
  path: string,
  readonly: boolean,
  pool: pg.Pool,
  db: Kysely<Schema>,
  migrations: ReadonlySet<string>,
): Store {
  // Ends the pool too (kysely's destroy ends it).
  const close = (): Promise<void> => db.destroy();
  return storeOver(
    { path, dialect: 'postgres', readonly, db, sql: postgresSql, close },
    {
      beginRun: (info, options) => beginRun(pool, info, options),
      runs: () => readRuns(pool, migrations),
      run: (id) => readRun(pool, migrations, id),
      traceText: (run) => readTraceText(pool, run),
      ops: (run, first, last) => readOps(pool, run, first, last),
      opAt: (run, seq) => readOpAt(pool, run, seq),
      events: (run, filter) => readEvents(pool, run, filter),
      replayRows: (run, fromSeq, toSeq) => readReplayRows(pool, run, fromSeq, toSeq),
      replayPayloads: (run, fromSeq, toSeq) => readReplayPayloads(pool, run, fromSeq, toSeq),
      eventCount: (run) => readEventCount(pool, run),
      snapshotAtOrBefore: (run, seq) => readSnapshotAtOrBefore(pool, run, seq),
      snapshots: (run) => readSnapshotSeqs(pool, run),
      verify: (run) => verifyRuns(pool, run),
    },
  );
}
