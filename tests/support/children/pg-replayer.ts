// SPDX-License-Identifier: GPL-2.0-only
/**
 * Child process of the PostgreSQL concurrency test (tests/long/pg-concurrency.test.ts), run with
 * vite-node: replays each trace given on variant v3 into the store DB (one run each, the product's own
 * recordReplay), one after another, and writes "run <id> <head> <path>" to fd 1 after each.
 *
 *   pg-replayer.ts DB TRACE...
 */
import { readFileSync, writeSync } from 'node:fs';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { recordReplay } from '../../../src/replay/record.js';
import { openStore } from '../../../src/store/index.js';

const [db, ...paths] = process.argv.slice(2);
if (db === undefined || paths.length === 0) throw new Error('usage: pg-replayer.ts DB TRACE...');
const store = await openStore(db);
const spec = resolveVariant('v3', [], []);
try {
  for (const path of paths) {
    const text = readFileSync(path, 'utf8');
    const { run, head } = await recordReplay(store, parseTraceText(text, path), {
      tracePath: path,
      traceText: text,
      variant: spec.variant,
      fixes: spec.fixes,
    });
    writeSync(1, `run ${run} ${head} ${path}\n`);
  }
} finally {
  await store.close();
}
