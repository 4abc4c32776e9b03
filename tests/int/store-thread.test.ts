// SPDX-License-Identifier: GPL-2.0-only
// SQLite's writer thread (src/store/sqlite/writer-thread.ts): batches commit while the appends go on, and
// what that must not change: a failed batch fails the run at the op where it was cut, readers see only
// committed batches, closing the store commits what was handed over and ends the thread.
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseTraceText } from '../../src/replay/parse.js';
import { recordReplay } from '../../src/replay/record.js';
import { openStore, type Store } from '../../src/store/index.js';
import { childLines } from '../support/child-lines.js';
import { appendOps, opRow, runInfo, tempDir } from '../support/store-rows.js';

let tmp: ReturnType<typeof tempDir>;
let path: string;
const open: Store[] = [];

async function openTracked(options?: { readonly?: boolean }): Promise<Store> {
  const store = await openStore(path, options);
  open.push(store);
  return store;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

/** A trigger on the store's file (so on every connection, the writer thread's too) refusing event `seq`. */
function refuseSeq(seq: number): void {
  const raw = new Database(path);
  raw.exec(
    `CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.seq = ${seq} BEGIN SELECT RAISE(ABORT, 'refused'); END`,
  );
  raw.close();
}

beforeEach(() => {
  tmp = tempDir();
  path = join(tmp.dir, 'log.sqlite');
});

afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
  tmp.remove();
});

describe('a batch that fails on the writer thread', () => {
  it('while later ops are appended: the error names the op where it was cut; the run keeps what committed before', async () => {
    const store = await openTracked();
    const writer = await store.beginRun(runInfo(), { batchSize: 1000 });
    refuseSeq(1500);
    // Batch 2 (events 1001..2000) is cut by the last event of op 199; ops 200..249 are appended after it,
    // and no append waits (two batches in flight at most), so the failure shows at settle().
    appendOps(writer, 2500);
    const failure = await rejection(writer.settle());
    expect(failure).toMatchObject({
      code: 'write-failed',
      message: `run ${writer.run}: batch of events 1001..2000 not written: refused (SQLITE_CONSTRAINT_TRIGGER)`,
      details: { run: writer.run, firstSeq: 1001, lastSeq: 2000, op: 199, line: opRow(199).line },
    });
    // The chains went back to the last committed batch.
    expect(writer.seq).toBe(1000);
    await expect(writer.settle()).rejects.toMatchObject({ code: 'writer-broken' });
    await writer.finish('failed', { error: 'refused', errorOp: 199, errorLine: opRow(199).line });
    expect(await store.run(writer.run)).toMatchObject({
      status: 'failed',
      error: 'refused',
      errorOp: 199,
      errorLine: opRow(199).line,
      eventCount: 1000,
      // Op 99 ended after the event that cut batch 1: its row went with batch 2.
      opCount: 99,
    });
    expect(await store.verify()).toMatchObject({ ok: true, runs: [{ events: 1000, ops: 99, batches: 1, ok: true }] });
  });

  it('in a replay: the run is failed at the op that cut the batch, not where the failure was noticed', async () => {
    // Two mmaps of 16 MiB of 4 KiB pages, each about 4,096 events: batch 1 is cut in op 4, batch 2 in op 5.
    const text = [
      '{"op":"process","pid":1,"memlock":"unlimited"}',
      '{"op":"open","ctx":1,"pid":1}',
      '{"op":"ioas_alloc","ioas":1}',
      '{"op":"mmap","pid":1,"addr":"0x10000000","length":"0x1000000"}',
      '{"op":"mmap","pid":1,"addr":"0x20000000","length":"0x1000000"}',
      '{"op":"domain_attach","domain":1,"ioas":1}',
      '{"op":"ioas_map","ioas":1,"pid":1,"uptr":"0x10000000","length":"0x1000000","iova":"0x100000000"}',
      '',
    ].join('\n');
    const store = await openTracked();
    refuseSeq(6000);
    const error = await rejection(
      recordReplay(store, parseTraceText(text, 'two.jsonl'), {
        tracePath: 'two.jsonl',
        traceText: text,
        variant: 'upstream',
        fixes: [],
        failNth: null,
      }),
    );
    expect(error).toMatchObject({
      code: 'run-failed',
      message:
        'run 1 failed at op 5 (trace line 5): batch of events 4097..8192 not written: refused (SQLITE_CONSTRAINT_TRIGGER); the run is marked failed with the events committed before',
      details: { run: 1, op: 5, line: 5, marked: true },
    });
    expect(await store.run(1)).toMatchObject({ status: 'failed', errorOp: 5, errorLine: 5, eventCount: 4096 });
    expect((await store.verify()).ok).toBe(true);
  });
});

describe('readers during a run', () => {
  it('see the committed batches only', async () => {
    const store = await openTracked();
    const writer = await store.beginRun(runInfo(), { batchSize: 100 });
    appendOps(writer, 250);
    await writer.settle();
    const reader = await openTracked({ readonly: true });
    expect(await reader.eventCount(writer.run)).toBe(200);
    expect(await reader.run(writer.run)).toMatchObject({ status: 'running', eventCount: 200, opCount: 19 });
    await writer.flush();
    expect(await reader.eventCount(writer.run)).toBe(250);
    expect((await reader.verify()).runs[0]).toMatchObject({ ok: true, events: 250, batches: 3, ops: 25 });
  });
});

describe('closing the store', () => {
  it('with batches in flight: commits what was handed over, ends the thread, leaves the run running', async () => {
    const store = await openStore(path);
    const writer = await store.beginRun(runInfo(), { batchSize: 100 });
    appendOps(writer, 250);
    // No settle: two batches are on their way to the thread, 50 events are still buffered.
    await store.close();
    const reader = await openTracked({ readonly: true });
    expect(await reader.run(writer.run)).toMatchObject({ status: 'running', incomplete: true, eventCount: 200 });
    expect((await reader.verify()).runs[0]).toMatchObject({ ok: true, incomplete: true, events: 200, batches: 2 });
  });

  it('is not needed for the process to end once the run is finished', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const child = spawn(
      process.execPath,
      [
        join(root, 'node_modules/vite-node/vite-node.mjs'),
        join(root, 'tests/support/children/store-writer.ts'),
        'finish',
        path,
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    expect(await childLines(child, (lines) => lines.includes('finished'))).toEqual(['finished']);
    // The child leaves its store open: a writer thread still holding it would keep it alive (a hung test).
    expect(await exited).toBe(0);
    const reader = await openTracked({ readonly: true });
    expect((await reader.verify()).runs[0]).toMatchObject({ ok: true, status: 'complete', events: 250, batches: 3 });
  });
});
