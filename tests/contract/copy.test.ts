// SPDX-License-Identifier: GPL-2.0-only
// Copying runs between stores, on SQLite (PostgreSQL joins with a line of its own, as in store.test.ts).
import { join } from 'node:path';
import { openStore } from '../../src/store/index.js';
import { tempDir } from '../support/store-rows.js';
import { copyContract } from './copy.contract.js';

copyContract('SQLite', async () => {
  const tmp = tempDir();
  const store = await openStore(join(tmp.dir, 'copy.db'));
  return {
    store,
    dispose: async () => {
      await store.close();
      tmp.remove();
    },
  };
});
