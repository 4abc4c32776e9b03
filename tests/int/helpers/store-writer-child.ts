// SPDX-License-Identifier: GPL-2.0-only
/**
 * Child process for the multi-process store tests, run with vite-node.
 *
 *   store-writer-child.ts open DB         open (migrating) the store, write "opened" to fd 1, exit
 *   store-writer-child.ts write DB BATCH  begin a run and append events in batches of BATCH until killed,
 *                                         writing "committed <seq>" to fd 1 after each batch commits
 *
 * The writer stops by itself after a minute, so a failed parent never leaves it running. Output goes
 * straight to fd 1 so that it is out before the next batch starts.
 */

import { writeSync } from 'node:fs';
import { openStore } from '../../../src/store/index.js';
import { EVENTS_PER_OP, eventRow, opRow, runInfo } from './store-fixtures.js';

const [mode, path, batchText] = process.argv.slice(2);
if (path === undefined || (mode !== 'open' && mode !== 'write'))
  throw new Error('usage: store-writer-child.ts open|write DB [BATCH]');
const store = await openStore(path);
if (mode === 'open') {
  writeSync(1, 'opened\n');
  await store.close();
} else {
  const batchSize = Number(batchText);
  const writer = store.beginRun(runInfo(), { batchSize });
  writeSync(1, `run ${writer.run}\n`);
  const deadline = Date.now() + 60_000;
  for (let seq = 1; Date.now() < deadline; seq++) {
    writer.append(eventRow(seq));
    if (seq % EVENTS_PER_OP === 0) writer.endOp(opRow(seq / EVENTS_PER_OP - 1));
    // append() commits the batch that its row completes.
    if (seq % batchSize === 0) writeSync(1, `committed ${seq}\n`);
  }
}
