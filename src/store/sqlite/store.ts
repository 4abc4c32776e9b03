// SPDX-License-Identifier: GPL-2.0-only
/**
 * The Store over one SQLite connection: append.ts, read.ts and verify.ts on the raw better-sqlite3
 * connection (the hot paths, prepared once), and the query files on kysely with the SQLite spellings.
 *
 * better-sqlite3 is synchronous: each read runs to completion before its promise settles, so the async
 * interface costs one microtask per call (per event for events(), which yields from chunks of rows).
 */

import type { Kysely } from 'kysely';
import { StoreError } from '../errors.js';
import type { StoreQuery } from '../queries/context.js';
import type { Database as Schema } from '../schema.js';
import type {
  BeginRunOptions,
  EventFilter,
  RunInfo,
  RunRow,
  RunWriter,
  Snapshot,
  Store,
  StoredEvent,
  StoredOp,
  VerifyReport,
} from '../types.js';
import { beginRun } from './append.js';
import type { Connection } from './connection.js';
import { sqliteSql } from './dialect.js';
import {
  readEventCount,
  readEvents,
  readOpAt,
  readOps,
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

export class SqliteStore implements Store {
  readonly path: string;
  readonly dialect = 'sqlite';
  readonly readonly: boolean;
  readonly #db: Kysely<Schema>;
  readonly #conn: Connection;

  constructor(path: string, readonly: boolean, conn: Connection, db: Kysely<Schema>) {
    this.path = path;
    this.readonly = readonly;
    this.#conn = conn;
    this.#db = db;
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- a throw must become a rejection
  async beginRun(info: RunInfo, options?: BeginRunOptions): Promise<RunWriter> {
    if (this.readonly) throw new StoreError('readonly', `${this.path} is open read-only`, { path: this.path });
    return beginRun(this.#conn, info, options);
  }

  runs(): Promise<RunRow[]> {
    return settle(() => readRuns(this.#conn));
  }

  run(id: number): Promise<RunRow | undefined> {
    return settle(() => readRun(this.#conn, id));
  }

  traceText(run: number): Promise<string | undefined> {
    return settle(() => readTraceText(this.#conn, run));
  }

  ops(run: number, first?: number, last?: number): Promise<StoredOp[]> {
    return settle(() => readOps(this.#conn, run, first, last));
  }

  opAt(run: number, seq: number): Promise<StoredOp | undefined> {
    return settle(() => readOpAt(this.#conn, run, seq));
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- the driver is synchronous: rows are read in keyset chunks
  async *events(run: number, filter?: EventFilter): AsyncGenerator<StoredEvent, void, undefined> {
    yield* readEvents(this.#conn, run, filter);
  }

  eventCount(run: number): Promise<number> {
    return settle(() => readEventCount(this.#conn, run));
  }

  snapshotAtOrBefore(run: number, seq: number): Promise<Snapshot | undefined> {
    return settle(() => readSnapshotAtOrBefore(this.#conn, run, seq));
  }

  snapshots(run: number): Promise<number[]> {
    return settle(() => readSnapshotSeqs(this.#conn, run));
  }

  verify(run?: number): Promise<VerifyReport> {
    return verifyRuns(this.#conn, run);
  }

  query<T>(query: StoreQuery<T>): Promise<T> {
    return query({ db: this.#db, dialect: sqliteSql });
  }

  /**
   * Runs a pragma on this store's own connection (some, like max_page_count, hold per connection). For
   * tests of SQLite's limits only: reached through sqlitePragma of testing.ts, never through Store.
   */
  pragma(text: string): unknown {
    return this.#conn.raw.pragma(text);
  }

  /** Closes the connection; a writer not finished by then leaves its run 'running' (incomplete). */
  async close(): Promise<void> {
    await this.#db.destroy();
    if (this.#conn.raw.open) this.#conn.raw.close();
  }
}
