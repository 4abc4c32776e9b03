// SPDX-License-Identifier: GPL-2.0-only
// The fuzz farm's failure queries on SQLite (PostgreSQL joins with a line of its own, as in store.test.ts).
import { join } from 'node:path';
import { openStore } from '../../src/store/index.js';
import { tempDir } from '../support/store-rows.js';
import { failuresContract } from './failures.contract.js';

failuresContract('SQLite', async () => {
  const tmp = tempDir();
  const store = await openStore(join(tmp.dir, 'failures.db'));
  return {
    store,
    dispose: async () => {
      await store.close();
      tmp.remove();
    },
  };
});
