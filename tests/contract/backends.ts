// SPDX-License-Identifier: GPL-2.0-only
// Every backend a contract runs against: SQLite (the embedded default, a file) and PostgreSQL (a throwaway
// server started by tests/support/pg-global.ts; each store is a new database on it).
import { join } from 'node:path';
import { describe, inject, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { freshDatabase } from '../support/pg-server.js';
import { tempDir } from '../support/store-rows.js';
import type { StoreFactory } from './store.contract.js';

/** Runs `contract` once per backend; PostgreSQL is skipped, with the reason, only when no server started. */
export function onEveryBackend(contract: (backend: string, factory: StoreFactory) => void): void {
  contract('SQLite', async () => {
    const tmp = tempDir();
    const store = await openStore(join(tmp.dir, 'contract.db'));
    return {
      store,
      dispose: async () => {
        await store.close();
        tmp.remove();
      },
    };
  });
  const pgUrl = inject('pgUrl');
  if (pgUrl === '') {
    describe('PostgreSQL', () => {
      it.skip(`skipped: ${inject('pgSkip')}`, () => undefined);
    });
    return;
  }
  contract('PostgreSQL', async () => {
    const store = await openStore(await freshDatabase(pgUrl));
    return { store, dispose: () => store.close() };
  });
}
