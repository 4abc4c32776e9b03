// SPDX-License-Identifier: GPL-2.0-only
// The store contract against every backend. SQLite is the embedded default; PostgreSQL joins here with a
// describe of its own (issue 17) once it exists.
import { join } from 'node:path';
import { openStore } from '../../src/store/index.js';
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
