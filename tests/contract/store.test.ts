// SPDX-License-Identifier: GPL-2.0-only
// The store contract against every backend: SQLite (the embedded default, a file) and PostgreSQL (a
// throwaway server started by tests/support/pg-global.ts; each store is a new database on it).
import { join } from 'node:path';
import { describe, inject, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { freshDatabase } from '../support/pg-server.js';
import { tempDir } from '../support/store-rows.js';
import { storeContract } from './store.contract.js';

storeContract('SQLite', async () => {
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
  describe('store contract: PostgreSQL', () => {
    it.skip(`skipped: ${inject('pgSkip')}`, () => undefined);
  });
} else {
  storeContract('PostgreSQL', async () => {
    const store = await openStore(await freshDatabase(pgUrl));
    return { store, dispose: () => store.close() };
  });
}
