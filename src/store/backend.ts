// SPDX-License-Identifier: GPL-2.0-only
/**
 * A Store from a backend's own reads and writes: what every store adds on top of its dialect (the
 * read-only guard of beginRun, the query files run on kysely with the dialect's spellings) is here once;
 * sqlite/store.ts and postgres/store.ts supply only how they reach their connection.
 */

import type { Kysely } from 'kysely';
import { StoreError } from './errors.js';
import type { SqlDialect } from './queries/context.js';
import type { Database as Schema } from './schema.js';
import type { Store } from './types.js';

/** The reads and writes a backend runs on its own connection. */
export type StoreBackend = Omit<Store, 'path' | 'dialect' | 'readonly' | 'query' | 'close'>;

/** Where a store lives and what it closes. */
export interface StoreHome {
  path: string;
  dialect: Store['dialect'];
  readonly: boolean;
  /** Kysely on the same database, for the query files. */
  db: Kysely<Schema>;
  sql: SqlDialect;
  /** Ends the connections; a writer not finished by then leaves its run 'running' (incomplete). */
  close(): Promise<void>;
}

export function storeOver(home: StoreHome, backend: StoreBackend): Store {
  const { path, db, sql } = home;
  return {
    ...backend,
    path,
    dialect: home.dialect,
    readonly: home.readonly,
    beginRun: async (info, options) => {
      if (home.readonly) throw new StoreError('readonly', `${path} is open read-only`, { path });
      return backend.beginRun(info, options);
    },
    query: (query) => query({ db, dialect: sql }),
    close: () => home.close(),
  };
}
