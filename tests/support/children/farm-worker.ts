// SPDX-License-Identifier: GPL-2.0-only
/**
 * Child process for tests/pg/farm-claims.test.ts: one fuzz farm worker (src/fuzz/farm.ts) on v3 into the
 * store DB (a SQLite file or a postgres:// URL), over seeds 1..ITERATIONS, at most 40 ops, shrink budget
 * 10, killed by itself (SIGKILL) right after its first claim lands: "claimed KIND FN" goes to fd 1 first.
 *
 *   farm-worker.ts DB ITERATIONS
 */
import { writeSync } from 'node:fs';
import { fuzzIntoStore } from '../../../src/fuzz/farm.js';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { openStore } from '../../../src/store/index.js';

const [db, iterations] = process.argv.slice(2);
if (db === undefined || iterations === undefined) throw new Error('usage: farm-worker.ts DB ITERATIONS');
const store = await openStore(db);
await fuzzIntoStore({
  store,
  variant: 'v3',
  label: 'v3',
  fixes: resolveVariant('v3').fixes,
  seed: 1,
  stride: 1,
  maxOps: 40,
  iterations: Number(iterations),
  shrinkBudget: 10,
  dir: 'farm',
  afterClaim: (failure) => {
    writeSync(1, `claimed ${failure.kind} ${failure.fn}\n`);
    process.kill(process.pid, 'SIGKILL');
  },
});
writeSync(1, 'no claim\n');
await store.close();
