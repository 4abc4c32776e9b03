// SPDX-License-Identifier: GPL-2.0-only
/**
 * The raw better-sqlite3 connection behind a store, with its prepared statements. Each SQL text is
 * compiled once per connection and reused; this file and the others of src/store/ are the only code that
 * sees SQLite.
 */

import type BetterSqlite3 from 'better-sqlite3';

export type Statement<P extends unknown[] = unknown[], R = unknown> = BetterSqlite3.Statement<P, R>;
export type Transaction<F extends (...args: never[]) => unknown> = BetterSqlite3.Transaction<F>;

export class Connection {
  readonly raw: BetterSqlite3.Database;
  /** The migrations the schema has: a store opened read-only may lack the optional ones. */
  readonly migrations: ReadonlySet<string>;
  readonly #statements = new Map<string, Statement>();

  constructor(raw: BetterSqlite3.Database, migrations: ReadonlySet<string>) {
    this.raw = raw;
    this.migrations = migrations;
  }

  /** The prepared statement for `sql`, compiled on first use. */
  prepare<P extends unknown[] = unknown[], R = unknown>(sql: string): Statement<P, R> {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.raw.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement as Statement<P, R>;
  }
}
