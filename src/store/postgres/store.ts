// SPDX-License-Identifier: GPL-2.0-only
/**
 * The Store over a PostgreSQL server: append.ts, read.ts and verify.ts on a pg pool (the hot paths, plain
 * SQL), and the query files on kysely's own PostgresDialect with the spellings of dialect.ts.
 */

import type { Kysely } from 'kysely';
import type pg from 'pg';
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
import { postgresSql } from './dialect.js';
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

export class PostgresStore implements Store {
  readonly path: string;
  readonly dialect = 'postgres';
  readonly readonly: boolean;
  readonly #pool: pg.Pool;
  readonly #db: Kysely<Schema>;
  readonly #migrations: ReadonlySet<string>;

  constructor(path: string, readonly: boolean, pool: pg.Pool, db: Kysely<Schema>, migrations: ReadonlySet<string>) {
    this.path = path;
    this.readonly = readonly;
    this.#pool = pool;
    this.#db = db;
    this.#migrations = migrations;
  }

  async beginRun(info: RunInfo, options?: BeginRunOptions): Promise<RunWriter> {
    if (this.readonly) throw new StoreError('readonly', `${this.path} is open read-only`, { path: this.path });
    return beginRun(this.#pool, info, options);
  }

  runs(): Promise<RunRow[]> {
    return readRuns(this.#pool, this.#migrations);
  }

  run(id: number): Promise<RunRow | undefined> {
    return readRun(this.#pool, this.#migrations, id);
  }

  traceText(run: number): Promise<string | undefined> {
    return readTraceText(this.#pool, run);
  }

  ops(run: number, first?: number, last?: number): Promise<StoredOp[]> {
    return readOps(this.#pool, run, first, last);
  }

  opAt(run: number, seq: number): Promise<StoredOp | undefined> {
    return readOpAt(this.#pool, run, seq);
  }

  events(run: number, filter?: EventFilter): AsyncIterable<StoredEvent> {
    return readEvents(this.#pool, run, filter);
  }

  eventCount(run: number): Promise<number> {
    return readEventCount(this.#pool, run);
  }

  snapshotAtOrBefore(run: number, seq: number): Promise<Snapshot | undefined> {
    return readSnapshotAtOrBefore(this.#pool, run, seq);
  }

  snapshots(run: number): Promise<number[]> {
    return readSnapshotSeqs(this.#pool, run);
  }

  verify(run?: number): Promise<VerifyReport> {
    return verifyRuns(this.#pool, run);
  }

  query<T>(query: StoreQuery<T>): Promise<T> {
    return query({ db: this.#db, dialect: postgresSql });
  }

  /** Ends the pool (kysely's destroy ends it); a writer not finished by then leaves its run 'running'. */
  async close(): Promise<void> {
    await this.#db.destroy();
  }
}
