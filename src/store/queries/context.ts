// SPDX-License-Identifier: GPL-2.0-only
/**
 * The seam between the query files and a dialect, shaped like kysely's own: a query is written once with
 * kysely's builder over the tables of schema.ts, and runs against whatever Kysely instance the backend
 * gives it. Kysely compiles the builder for its dialect; what kysely does not abstract (reading a field of
 * a JSON text column) the backend supplies through SqlDialect.
 *
 * A query is a function of the context, so callers hold a query value (ledgerLinesQuery(run, ...)) and
 * hand it to Store.query without ever seeing Kysely or SQL.
 */

import type { Kysely, RawBuilder } from 'kysely';
import type { Database } from '../schema.js';

/** The SQL spellings that differ between backends. */
export interface SqlDialect {
  /**
   * A number field of a JSON text column (`column` as a table reference, `path` the keys from the top,
   * e.g. ['tree', 'pages']); SQL null when absent. SQLite: json_extract(column, '$.tree.pages');
   * PostgreSQL: (column::jsonb #>> '{tree,pages}')::bigint.
   */
  jsonNumber(column: string, path: readonly string[]): RawBuilder<number | null>;
  /** A text field of a JSON text column; SQL null when absent. */
  jsonText(column: string, path: readonly string[]): RawBuilder<string | null>;
}

export interface QueryContext {
  readonly db: Kysely<Database>;
  readonly dialect: SqlDialect;
}

/** A read of the store, written against the neutral context; Store.query runs it. */
export type StoreQuery<T> = (ctx: QueryContext) => Promise<T>;
