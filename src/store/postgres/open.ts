// SPDX-License-Identifier: GPL-2.0-only
/**
 * Opening a store on a PostgreSQL server (`postgres://user:password@host:port/database`): connect, check
 * that the database holds an ioptrace store or nothing of ours' concern, and migrate it (../migrate.ts) in
 * one transaction under kysely's advisory lock, so processes opening a new store at once migrate it once.
 *
 * The store lives in the connection's current schema (search_path): several stores can share a database
 * in schemas of their own (`?options=-csearch_path%3Dteam_a` in the URL).
 */

import { Kysely, PostgresDialect, sql, DEFAULT_MIGRATION_TABLE } from 'kysely';
import { NotAStoreError, StoreError } from '../errors.js';
import { migrate } from '../migrate.js';
import type { Database as Schema } from '../schema.js';
import type { Store } from '../types.js';
import { describePgCause, newPool, shownUrl } from './pool.js';
import { postgresStore } from './store.js';

export interface OpenPostgresOptions {
  readonly?: boolean;
  /** Connections in the pool (4 unless given): one writer commits on one at a time, readers share the rest. */
  maxConnections?: number;
}

export async function openPostgresStore(url: string, options: OpenPostgresOptions = {}): Promise<Store> {
  const readonly = options.readonly ?? false;
  const shown = shownUrl(url);
  const pool = newPool(url, options.maxConnections ?? 4);
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  try {
    let tables: string[];
    try {
      const result = await sql<{ name: string }>`select table_name as name from information_schema.tables
        where table_schema = current_schema() order by table_name`.execute(db);
      tables = result.rows.map((r) => r.name);
    } catch (error) {
      throw new StoreError(
        'open-failed',
        `cannot open ${shown}: ${describePgCause(error)}`,
        { path: shown },
        { cause: error },
      );
    }
    const ours = tables.includes(DEFAULT_MIGRATION_TABLE) && tables.includes('runs');
    if (!ours && readonly) {
      throw new NotAStoreError('no-store', `no ioptrace store at ${shown}`, { path: shown });
    }
    if (!ours && tables.some((t) => !t.startsWith('kysely_'))) {
      const shownTables =
        tables.length > 6 ? `${tables.slice(0, 6).join(', ')} and ${tables.length - 6} more` : tables.join(', ');
      throw new NotAStoreError(
        'not-a-store',
        `${shown} holds tables of another program (${shownTables}), not an ioptrace store; it was left untouched`,
        { path: shown, tables },
      );
    }
    const executed = await migrate(db, shown, readonly);
    return postgresStore(shown, readonly, pool, db, new Set(executed));
  } catch (error) {
    await db.destroy();
    if (error instanceof StoreError || error instanceof NotAStoreError) throw error;
    throw new StoreError(
      'open-failed',
      `cannot open ${shown}: ${describePgCause(error)}`,
      { path: shown },
      { cause: error },
    );
  }
}
