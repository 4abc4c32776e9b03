// SPDX-License-Identifier: GPL-2.0-only
/**
 * Bringing a store's schema up to date, the same for every backend: kysely's Migrator runs the static list
 * of migrations/index.ts (each migration spells what differs per dialect inside itself). Each backend makes
 * the run atomic its own way: SQLite in one IMMEDIATE transaction (sqlite/dialect.ts), PostgreSQL in one
 * transaction under kysely's advisory lock, so two processes opening a new store at once migrate it once.
 *
 * A store migrated by a newer ioptrace (a migration name we do not know) is refused rather than used.
 */

import { DEFAULT_MIGRATION_TABLE, Migrator, sql, type Kysely } from 'kysely';
import { migrations } from '../../migrations/index.js';
import { StoreError, messageOf } from './errors.js';
import type { Database as Schema } from './schema.js';

/**
 * Migrations that only add what readers do without: a read-only open of a store that lacks them still works
 * (an archived ledger cannot be migrated), and the readers fill the missing columns with null.
 */
export const READ_OPTIONAL = new Set(['0002_run_failure', '0003_fuzz_failures', '0004_fuzz_claims']);

async function executedMigrations(db: Kysely<Schema>): Promise<string[]> {
  const tables = await db.introspection.getTables({ withInternalKyselyTables: true });
  if (!tables.some((table) => table.name === DEFAULT_MIGRATION_TABLE)) return [];
  const rows = await sql<{ name: string }>`select name from ${sql.table(DEFAULT_MIGRATION_TABLE)}`.execute(db);
  return rows.rows.map((row) => row.name);
}

/** Runs the pending migrations (unless readonly); returns the names of those the schema now has. */
export async function migrate(db: Kysely<Schema>, path: string, readonly: boolean): Promise<string[]> {
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
