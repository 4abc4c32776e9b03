// SPDX-License-Identifier: GPL-2.0-only
/**
 * Child process for the multi-process store tests: run with vite-node by tests/int/store-crash.test.ts,
 * and built by tsc (tsconfig.e2e.json) for tests/e2e/verify-interrupted.test.ts, which starts it often.
 *
 * DB is a SQLite file or a postgres:// URL (tests/pg/kill.test.ts).
 *
 *   store-writer.ts open DB          open (migrating) the store, write "opened" to fd 1, exit
 *   store-writer.ts write DB BATCH   begin a run and append events in batches of BATCH until killed,
 *                                          writing "committed <seq>" to fd 1 after each batch commits
 *   store-writer.ts slow DB BATCH    the same, resting 2 ms after each commit (a replay that keeps
 *                                          writing for a while without the run growing past what a test reads)
 *   store-writer.ts finish DB        write the run of PAUSE_RUN below, finish it, write "finished" to
 *                                          fd 1 and leave the store open: the process must end by itself
 *   store-writer.ts pause DB B N     write the run of PAUSE_RUN below, and stop for good at the Nth
 *                                          step (onWriteStep) of batch B, writing "paused <step>" to fd 1;
 *                                          "done" if batch B has fewer steps
 *
 * The writer stops by itself after a minute, so a failed parent never leaves it running. Output goes
 * straight to fd 1 so that it is out before the next batch starts.
 */

import { writeSync } from 'node:fs';
import { openStore, type WriteStep } from '../../../src/store/index.js';
import { EVENTS_PER_OP, appendOps, eventRow, opRow, runInfo } from '../store-rows.js';

/**
 * The run the pause mode writes: 250 events in batches of 100, a snapshot every 50 events, then finish
 * (tests/e2e/verify-interrupted.test.ts counts on these numbers).
 */
const PAUSE_RUN = { events: 250, batchSize: 100, snapshotEvery: 50 } as const;

const [mode, path, ...rest] = process.argv.slice(2);
if (path === undefined || !['open', 'write', 'slow', 'pause', 'finish'].includes(mode ?? ''))
  throw new Error('usage: store-writer.ts open|write|slow|pause|finish DB [BATCH | B N]');
const store = await openStore(path);
const sleeper = new Int32Array(new SharedArrayBuffer(4));

if (mode === 'open') {
  writeSync(1, 'opened\n');
  await store.close();
} else if (mode === 'finish') {
  const writer = await store.beginRun(runInfo(), { batchSize: PAUSE_RUN.batchSize });
  appendOps(writer, PAUSE_RUN.events);
  await writer.finish('complete', { finalDigest: '00000000000000ff' });
  writeSync(1, 'finished\n');
} else if (mode === 'pause') {
  const [batchText, stepText] = rest;
  const pauseBatch = Number(batchText);
  const pauseStep = Number(stepText);
  let steps = 0;
  const onWriteStep = (step: WriteStep, batch: number): void => {
    if (batch !== pauseBatch || ++steps !== pauseStep) return;
    writeSync(1, `paused ${step}\n`);
    // Asleep for good, between two statements (or just after a commit), until the parent kills us.
    Atomics.wait(sleeper, 0, 0, 60_000);
    process.exit(4);
  };
  const writer = await store.beginRun(runInfo(), { batchSize: PAUSE_RUN.batchSize, onWriteStep });
  for (let seq = 1; seq <= PAUSE_RUN.events; seq++) {
    writer.append(eventRow(seq));
    if (seq % EVENTS_PER_OP === 0) writer.endOp(opRow(seq / EVENTS_PER_OP - 1));
    if (seq % PAUSE_RUN.snapshotEvery === 0) {
      writer.putSnapshot(
        seq,
        Math.floor((seq - 1) / EVENTS_PER_OP),
        '00000000000000aa',
        new Uint8Array([seq % 256]),
        1,
      );
    }
  }
  await writer.finish('complete', { finalDigest: '00000000000000ff' });
  writeSync(1, 'done\n');
  await store.close();
} else {
  const batchSize = Number(rest[0]);
  const writer = await store.beginRun(runInfo(), { batchSize });
  writeSync(1, `run ${writer.run}\n`);
  const deadline = Date.now() + 60_000;
  for (let seq = 1; Date.now() < deadline; seq++) {
    writer.append(eventRow(seq));
    if (seq % EVENTS_PER_OP === 0) writer.endOp(opRow(seq / EVENTS_PER_OP - 1));
    // The append that completes a batch cuts it; it is committed once settle() returns (SQLite's writer
    // thread and a server store commit while the appends go on).
    if (seq % batchSize === 0) {
      await writer.settle();
      writeSync(1, `committed ${seq}\n`);
      if (mode === 'slow') Atomics.wait(sleeper, 0, 0, 2);
    }
  }
}
