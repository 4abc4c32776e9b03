// SPDX-License-Identifier: GPL-2.0-only
/**
 * The SQLite store: opening a database file (pragmas, schema migration) and the Store object that ties
 * append.ts, read.ts and verify.ts to one connection.
 *
 * Migrations run through kysely's Migrator from the static list in migrations/index.ts, all pending ones in
 * one IMMEDIATE transaction: a failed migration leaves the schema as it was, and two processes opening a
 * new file at once migrate it once (the second waits for the lock, then finds nothing pending). kysely's
 * SQLite adapter does not use transactions for DDL, though SQLite supports them; StoreDialect turns them on.
 *
 * A database migrated by a newer ioptrace (a migration name we do not know) is refused rather than used.
 */

import Database from 'better-sqlite3';
import {
  CompiledQuery,
  DEFAULT_MIGRATION_TABLE,
  Kysely,
  Migrator,
  SqliteAdapter,
  SqliteDialect,
  SqliteDriver,
  sql,
  type DatabaseConnection,
  type DialectAdapter,
  type Driver,
  type SqliteDialectConfig,
} from 'kysely';
import { migrations } from '../../migrations/index.js';
import { beginRun } from './append.js';
import { Connection } from './connection.js';
import { NotAStoreError, StoreError, describeCause, messageOf } from './errors.js';
import { inspectFile, openReadOnly, storeContents } from './file.js';
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
import type { Database as Schema } from './schema.js';
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
} from './types.js';
import { verifyRuns } from './verify.js';

export interface OpenStoreOptions {
  /** Open without writing anything; the schema must already be current. */
  readonly?: boolean;
  /** How long to wait for another process's write lock, in ms (5000 unless given). */
  busyTimeoutMs?: number;
}

class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class StoreDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;

  constructor(config: SqliteDialectConfig) {
    super(config);
    this.#config = config;
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }

  override createAdapter(): DialectAdapter {
    return new TransactionalSqliteAdapter();
  }
}

/**
 * Migrations that only add what readers do without: a read-only open of a store that lacks them still works
 * (an archived ledger cannot be migrated), and read.ts fills the missing columns with null.
 */
const READ_OPTIONAL = new Set(['0002_run_failure']);

/**
 * Opens (creating and migrating unless readonly) the store in the SQLite file at `path`. Refuses, without
 * writing to it, a path that holds anything but an ioptrace store or an empty database (NotAStoreError);
 * read-only, a path that holds no store at all.
 */
export async function openStore(path: string, options: OpenStoreOptions = {}): Promise<Store> {
  const readonly = options.readonly ?? false;
  const timeout = options.busyTimeoutMs ?? 5000;
  const kind = inspectFile(path);
  if (readonly && kind !== 'sqlite') {
    throw new NotAStoreError('no-store', `no ioptrace store at ${path}${kind === 'empty' ? ' (an empty file)' : ''}`, {
      path,
    });
  }
  let raw: Database.Database;
  try {
    if (kind === 'sqlite') {
      const probe = openReadOnly(path, timeout);
      try {
        const contents = storeContents(probe, path);
        if (readonly && contents === 'empty') {
          throw new NotAStoreError('no-store', `no ioptrace store at ${path} (an empty SQLite database)`, { path });
        }
      } catch (error) {
        probe.close();
        throw error;
      }
      if (readonly) raw = probe;
      else {
        probe.close();
        raw = new Database(path, { fileMustExist: true, timeout });
      }
    } else {
      raw = new Database(path, { timeout });
    }
  } catch (error) {
    if (error instanceof StoreError || error instanceof NotAStoreError) throw error;
    throw new StoreError('open-failed', `cannot open ${path}: ${describeCause(error)}`, { path }, { cause: error });
  }
  const db = new Kysely<Schema>({ dialect: new StoreDialect({ database: raw }) });
  let executed: string[];
  try {
    if (!readonly) {
      // Takes effect only on a new file (before WAL and the first table). Larger pages mean fewer page
      // splits and fewer WAL frames per appended batch: about a third faster appends than 4 KiB.
      raw.pragma('page_size = 16384');
      raw.pragma('journal_mode = WAL');
      // In WAL mode NORMAL loses at most the last commits on power loss, never consistency.
      raw.pragma('synchronous = NORMAL');
    }
    raw.pragma('foreign_keys = ON');
    executed = await migrate(db, path, readonly);
  } catch (error) {
    await db.destroy();
    if (raw.open) raw.close();
    if (error instanceof StoreError) throw error;
    throw new StoreError('open-failed', `cannot open ${path}: ${describeCause(error)}`, { path }, { cause: error });
  }
  return new SqliteStore(path, readonly, new Connection(raw, new Set(executed)), db);
}

async function executedMigrations(db: Kysely<Schema>): Promise<string[]> {
  const tables = await db.introspection.getTables({ withInternalKyselyTables: true });
  if (!tables.some((table) => table.name === DEFAULT_MIGRATION_TABLE)) return [];
  const rows = await sql<{ name: string }>`select name from ${sql.table(DEFAULT_MIGRATION_TABLE)}`.execute(db);
  return rows.rows.map((row) => row.name);
}

/** Runs the pending migrations (unless readonly); returns the names of those the schema now has. */
async function migrate(db: Kysely<Schema>, path: string, readonly: boolean): Promise<string[]> {
  const known = Object.keys(migrations).sort();
  const executed = await executedMigrations(db);
  const unknown = executed.filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    throw new StoreError(
      'database-newer',
      `${path} was written by a newer ioptrace (migrations ${unknown.join(', ')} are unknown here); upgrade ioptrace to open it`,
      { path, unknown },
    );
  }
  const pending = known.filter((name) => !executed.includes(name));
  if (pending.length === 0) return executed;
  if (readonly) {
    if (pending.every((name) => READ_OPTIONAL.has(name))) return executed;
    throw new StoreError(
      'schema-outdated',
      `${path} needs migrations ${pending.join(', ')}; open it once for writing`,
      {
        path,
        pending,
      },
    );
  }
  const migrator = new Migrator({ db, provider: { getMigrations: () => Promise.resolve(migrations) } });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((result) => result.status === 'Error')?.migrationName ?? null;
    throw new StoreError(
      'migration-failed',
      `cannot migrate ${path}${failed === null ? '' : ` (migration ${failed})`}: ${messageOf(error)}; the schema is unchanged`,
      { path, migration: failed },
      { cause: error },
    );
  }
  return known;
}

class SqliteStore implements Store {
  readonly path: string;
  readonly readonly: boolean;
  readonly db: Kysely<Schema>;
  readonly #conn: Connection;

  constructor(path: string, readonly: boolean, conn: Connection, db: Kysely<Schema>) {
    this.path = path;
    this.readonly = readonly;
    this.#conn = conn;
    this.db = db;
  }

  beginRun(info: RunInfo, options?: BeginRunOptions): RunWriter {
    if (this.readonly) throw new StoreError('readonly', `${this.path} is open read-only`, { path: this.path });
    return beginRun(this.#conn, info, options);
  }

  runs(): RunRow[] {
    return readRuns(this.#conn);
  }

  run(id: number): RunRow | undefined {
    return readRun(this.#conn, id);
  }

  traceText(run: number): string | undefined {
    return readTraceText(this.#conn, run);
  }

  ops(run: number, first?: number, last?: number): StoredOp[] {
    return readOps(this.#conn, run, first, last);
  }

  opAt(run: number, seq: number): StoredOp | undefined {
    return readOpAt(this.#conn, run, seq);
  }

  events(run: number, filter?: EventFilter): IterableIterator<StoredEvent> {
    return readEvents(this.#conn, run, filter);
  }

  eventCount(run: number): number {
    return readEventCount(this.#conn, run);
  }

  snapshotAtOrBefore(run: number, seq: number): Snapshot | undefined {
    return readSnapshotAtOrBefore(this.#conn, run, seq);
  }

  snapshots(run: number): number[] {
    return readSnapshotSeqs(this.#conn, run);
  }

  verify(run?: number): VerifyReport {
    return verifyRuns(this.#conn, run);
  }

  /** Closes the connection; a writer not finished by then leaves its run 'running' (incomplete). */
  async close(): Promise<void> {
    await this.db.destroy();
    if (this.#conn.raw.open) this.#conn.raw.close();
  }
}
