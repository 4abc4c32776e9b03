// SPDX-License-Identifier: GPL-2.0-only
/**
 * The raw better-sqlite3 connection behind a store, with its prepared statements. Each SQL text is
 * compiled once per connection and reused; this file and the others of src/store/ are the only code that
 * sees SQLite.
 */

import type BetterSqlite3 from 'better-sqlite3';

export type Statement<P extends unknown[] = unknown[], R = unknown> = BetterSqlite3.Statement<P, R>;
export type Transaction<F extends (...args: never[]) => unknown> = BetterSqlite3.Transaction<F>;

/** What a writer thread needs to open a connection of its own to the same file (writer-thread.ts). */
export interface WriterHome {
  path: string;
  /** The busy timeout, in ms. */
  timeout: number;
  /** Per-connection settings to repeat on the thread's connection (the test seam of testing.ts adds to them). */
  pragmas: string[];
}

export class Connection {
  readonly raw: BetterSqlite3.Database;
  /** The migrations the schema has: a store opened read-only may lack the optional ones. */
  readonly migrations: ReadonlySet<string>;
  /** Null for a database no other connection can reach (in memory): its runs are written on this thread. */
  readonly home: WriterHome | null;
  /** Writer threads not yet ended: closing the store ends them. */
  readonly threads = new Set<{ close(): Promise<void> }>();
  readonly #statements = new Map<string, Statement>();

  constructor(raw: BetterSqlite3.Database, migrations: ReadonlySet<string>, home: WriterHome | null = null) {
    this.raw = raw;
    this.migrations = migrations;
    this.home = home;
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
