// SPDX-License-Identifier: GPL-2.0-only
/**
 * The Store over one SQLite connection: append.ts, read.ts and verify.ts on the raw better-sqlite3
 * connection (the hot paths, prepared once), and the query files on kysely with the SQLite spellings.
 *
 * better-sqlite3 is synchronous: each read runs to completion before its promise settles, so the async
 * interface costs one microtask per call (per event for events(), which yields from chunks of rows).
 */

import type { Kysely } from 'kysely';
import { storeOver } from '../backend.js';
import type { Database as Schema } from '../schema.js';
import type { Store } from '../types.js';
import { beginRun } from './append.js';
import type { Connection } from './connection.js';
import { sqliteSql } from './dialect.js';
import {
  readEventCount,
  readEvents,
  readOpAt,
  readOps,
  readReplayRows,
  readReplayPayloads,
  readRun,
  readRuns,
  readSnapshotAtOrBefore,
  readSnapshotSeqs,
  readTraceText,
} from './read.js';
import { verifyRuns } from './verify.js';

/** The value of a synchronous read as a promise; a throw becomes a rejection, as with a server database. */
function settle<T>(read: () => T): Promise<T> {
  return new Promise((resolve) => resolve(read()));
}

/** The connection of each SQLite store, for the test seams of testing.ts (never reached through Store). */
const connections = new WeakMap<Store, Connection>();

export function sqliteStore(path: string, readonly: boolean, conn: Connection, db: Kysely<Schema>): Store {
  const close = async (): Promise<void> => {
    // A writer thread first commits the batches it was handed: a run left unfinished keeps them.
    await Promise.all([...conn.threads].map((thread) => thread.close()));
    await db.destroy();
    if (conn.raw.open) conn.raw.close();
  };
  const store = storeOver(
    { path, dialect: 'sqlite', readonly, db, sql: sqliteSql, close },
    {
      beginRun: (info, options) => settle(() => beginRun(conn, info, options)),
      runs: () => settle(() => readRuns(conn)),
      run: (id) => settle(() => readRun(conn, id)),
      traceText: (run) => settle(() => readTraceText(conn, run)),
      ops: (run, first, last) => settle(() => readOps(conn, run, first, last)),
      opAt: (run, seq) => settle(() => readOpAt(conn, run, seq)),
      // eslint-disable-next-line @typescript-eslint/require-await -- the driver is synchronous: rows are read in keyset chunks
      events: async function* (run, filter) {
        yield* readEvents(conn, run, filter);
      },
      // eslint-disable-next-line @typescript-eslint/require-await -- as events: synchronous chunks
      replayRows: async function* (run, fromSeq, toSeq) {
        yield* readReplayRows(conn, run, fromSeq, toSeq);
      },
      // eslint-disable-next-line @typescript-eslint/require-await -- as events: synchronous chunks
      replayPayloads: async function* (run, fromSeq, toSeq) {
        yield* readReplayPayloads(conn, run, fromSeq, toSeq);
      },
      eventCount: (run) => settle(() => readEventCount(conn, run)),
      snapshotAtOrBefore: (run, seq) => settle(() => readSnapshotAtOrBefore(conn, run, seq)),
      snapshots: (run) => settle(() => readSnapshotSeqs(conn, run)),
      verify: (run) => verifyRuns(conn, run),
    },
  );
  connections.set(store, conn);
  return store;
}

/** The connection of a store opened by sqliteStore; undefined for any other store. */
export function sqliteConnectionOf(store: Store): Connection | undefined {
  return connections.get(store);
}
