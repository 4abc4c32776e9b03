// SPDX-License-Identifier: GPL-2.0-only
/**
 * Opening the SQLite store: the file checks (file.ts), pragmas, schema migration; store.ts is the Store
 * object over the open connection.
 *
 * Migrations run through kysely's Migrator (../migrate.ts), all pending ones in one IMMEDIATE transaction: a failed migration leaves the schema as it was, and two processes opening a
 * new file at once migrate it once (the second waits for the lock, then finds nothing pending); StoreDialect
 * (dialect.ts) makes that possible.
 */

import Database from 'better-sqlite3';
import { Kysely } from 'kysely';
import { Connection } from './connection.js';
import { NotAStoreError, StoreError } from '../errors.js';
import { migrate } from '../migrate.js';
import { describeCause } from './cause.js';
import { StoreDialect } from './dialect.js';
import { inspectFile, openReadOnly, storeContents } from './file.js';
import type { Database as Schema } from '../schema.js';
import type { Store } from '../types.js';
import { sqliteStore } from './store.js';

// In WAL mode NORMAL loses at most the last commits on power loss, never consistency.
const SYNCHRONOUS = 'synchronous = NORMAL';
const FOREIGN_KEYS = 'foreign_keys = ON';

export interface OpenStoreOptions {
  /** Open without writing anything; the schema must already be current. */
  readonly?: boolean;
  /** How long to wait for another process's write lock, in ms (5000 unless given). */
  busyTimeoutMs?: number;
}

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
      raw.pragma(SYNCHRONOUS);
    }
    raw.pragma(FOREIGN_KEYS);
    executed = await migrate(db, path, readonly);
  } catch (error) {
    await db.destroy();
    if (raw.open) raw.close();
    if (error instanceof StoreError) throw error;
    throw new StoreError('open-failed', `cannot open ${path}: ${describeCause(error)}`, { path }, { cause: error });
  }
  // A run's batches are committed by a writer thread with a connection of its own (writer-thread.ts).
  const home = readonly || raw.memory ? null : { path, timeout, pragmas: [SYNCHRONOUS, FOREIGN_KEYS] };
  return sqliteStore(path, readonly, new Connection(raw, new Set(executed), home), db);
}
