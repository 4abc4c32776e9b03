// SPDX-License-Identifier: GPL-2.0-only
/**
 * SQLite as kysely and the query files see it.
 *
 * kysely's SQLite adapter does not use transactions for DDL, though SQLite supports them, and begins
 * transactions DEFERRED; StoreDialect turns DDL transactions on and begins IMMEDIATE, so migrations run all
 * at once under the write lock (see open.ts). sqliteSql spells JSON field access with json_extract.
 */

import {
  CompiledQuery,
  SqliteAdapter,
  SqliteDialect,
  SqliteDriver,
  sql,
  type DatabaseConnection,
  type DialectAdapter,
  type Driver,
  type RawBuilder,
  type SqliteDialectConfig,
} from 'kysely';
import { InternalError } from '../../lib/errors.js';
import type { SqlDialect } from '../queries/context.js';

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

export class StoreDialect extends SqliteDialect {
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

/** A JSON path of constant keys ('$.tree.pages'); keys come from the query files, never from input. */
function jsonPath(path: readonly string[]): string {
  for (const key of path) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new InternalError(`JSON key '${key}' is not a plain identifier`);
  }
  return `$.${path.join('.')}`;
}

function jsonExtract<T>(column: string, path: readonly string[]): RawBuilder<T> {
  return sql<T>`json_extract(${sql.ref(column)}, ${sql.lit(jsonPath(path))})`;
}

export const sqliteSql: SqlDialect = {
  jsonNumber: (column, path) => jsonExtract<number | null>(column, path),
  jsonText: (column, path) => jsonExtract<string | null>(column, path),
};
