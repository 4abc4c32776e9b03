// SPDX-License-Identifier: GPL-2.0-only
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eventHash, genesisHash } from '../../src/store/chain.js';
import {
  NotAStoreError,
  StoreError,
  eventBlocksQuery,
  openStore,
  type Store,
  type StoredEvent,
} from '../../src/store/index.js';
import { childLines } from '../support/child-lines.js';
import { appendOps, collect, eventRow, opRow, runInfo, tempDir } from '../support/store-rows.js';

let tmp: ReturnType<typeof tempDir>;
let path: string;
const open: Store[] = [];

async function openTracked(options?: { readonly?: boolean }): Promise<Store> {
  const store = await openStore(path, options);
  open.push(store);
  return store;
}

/** A database with one complete run of `count` events (ops of ten) in batches of 4096. */
async function storeWithRun(count: number): Promise<{ store: Store; run: number }> {
  const store = await openTracked();
  const writer = await store.beginRun(runInfo(), { batchSize: 4096 });
  appendOps(writer, count);
  await writer.finish('complete', { finalDigest: 'feedfacecafebeef' });
  return { store, run: writer.run };
}

async function seqs(events: AsyncIterable<StoredEvent>): Promise<number[]> {
  return (await collect(events)).map((e) => e.seq);
}

function range(first: number, last: number, step = 1): number[] {
  const out: number[] = [];
  for (let n = first; n <= last; n += step) out.push(n);
  return out;
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

async function closeAll(): Promise<void> {
  for (const store of open.splice(0)) await store.close();
}

beforeEach(() => {
  tmp = tempDir();
  path = join(tmp.dir, 'log.sqlite');
});

afterEach(async () => {
  await closeAll();
  tmp.remove();
});

/** A trigger on the store's file (so on every connection, the writer thread's too) refusing event `seq`. */
function refuseSeq(seq: number): void {
  const raw = new Database(path);
  raw.exec(
    `CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.seq = ${seq} BEGIN SELECT RAISE(ABORT, 'refused'); END`,
  );
  raw.close();
}

describe('RunWriter and reads', () => {
  it('appends 10,000 events in three batches and reads every row back exactly', async () => {
    const { store, run } = await storeWithRun(10_000);
    const events = await collect(store.events(run));
    expect(events).toHaveLength(10_000);
    let prev = genesisHash(runInfo().traceSha256, 'v3', '[]', '{"failAt":"3n"}');
    for (const [i, event] of events.entries()) {
      const row = eventRow(i + 1);
      expect({ seq: event.seq, op: event.op, type: event.type, v: event.v, payload: event.payload }).toEqual(row);
      expect(event.run).toBe(run);
      expect(event.hash).toBe(eventHash(prev, row.seq, row.op, row.v, row.type, row.payload));
      prev = event.hash;
    }
    expect(events.map((e) => e.id)).toEqual(range(1, 10_000));
    expect(await store.eventCount(run)).toBe(10_000);
    const blocks = await store.query(eventBlocksQuery(run));
    expect(blocks.map((b) => [b.firstSeq, b.lastSeq])).toEqual([
      [1, 4096],
      [4097, 8192],
      [8193, 10_000],
    ]);
  });

  it('filters events by type, op and seq range', async () => {
    const { store, run } = await storeWithRun(10_000);
    expect(await seqs(store.events(run, { types: ['XaStored'] }))).toEqual(range(2, 10_000, 4));
    expect(await seqs(store.events(run, { types: ['PagesPinned', 'IommuMapped'] }))).toEqual(range(1, 10_000, 2));
    expect(await seqs(store.events(run, { types: [] }))).toEqual([]);
    expect(await seqs(store.events(run, { types: ['NoSuchType'] }))).toEqual([]);
    expect(await seqs(store.events(run, { op: 7 }))).toEqual(range(71, 80));
    expect(await seqs(store.events(run, { op: 1000 }))).toEqual([]);
    expect(await seqs(store.events(run, { fromSeq: 4090, toSeq: 4100 }))).toEqual(range(4090, 4100));
    expect(await seqs(store.events(run, { fromSeq: 9995 }))).toEqual(range(9995, 10_000));
    expect(await seqs(store.events(run, { fromSeq: 4090, toSeq: 4110, types: ['AccountingCharged'] }))).toEqual([
      4092, 4096, 4100, 4104, 4108,
    ]);
    expect(await seqs(store.events(run, { op: 409, types: ['PagesPinned'] }))).toEqual([4093, 4097]);
    expect(await seqs(store.events(run + 1))).toEqual([]);
  });

  it('reads op rows by index range and finds the op of an event', async () => {
    const { store, run } = await storeWithRun(10_000);
    expect(await store.ops(run)).toHaveLength(1000);
    const ops = await store.ops(run, 5, 7);
    expect(ops.map(({ hash: _hash, ...rest }) => rest)).toEqual([5, 6, 7].map((index) => ({ run, ...opRow(index) })));
    expect((await store.opAt(run, 75))?.index).toBe(7);
    expect((await store.opAt(run, 80))?.index).toBe(7);
    expect((await store.opAt(run, 81))?.index).toBe(8);
    expect(await store.opAt(run, 10_001)).toBeUndefined();
  });

  it('lists the run with its summary and keeps the trace text', async () => {
    const { store, run } = await storeWithRun(100);
    const info = runInfo();
    const head = (await collect(store.events(run))).at(-1)?.hash;
    expect(await store.runs()).toEqual([
      {
        id: run,
        tracePath: info.tracePath,
        traceSha256: info.traceSha256,
        variant: 'v3',
        flags: [],
        faultPlan: { failAt: 3n },
        header: { ioptrace: 1 },
        status: 'complete',
        incomplete: false,
        error: null,
        errorOp: null,
        errorLine: null,
        eventCount: 100,
        opCount: 10,
        headHash: head,
        opsHeadHash: (await store.ops(run, 9, 9))[0]?.hash,
        finalDigest: 'feedfacecafebeef',
        createdSeq: 0,
      },
    ]);
    expect(await store.traceText(run)).toBe(info.traceText);
    expect(await store.run(run + 1)).toBeUndefined();
  });

  it('gives the same head hash to the same trace and variant, a different one to another variant', async () => {
    const store = await openTracked();
    const heads: string[] = [];
    for (const variant of ['v3', 'v3', 'v3+fix']) {
      const writer = await store.beginRun(runInfo(variant));
      appendOps(writer, 500);
      await writer.finish('complete', { finalDigest: '0000000000000001' });
      heads.push(writer.head);
    }
    expect(heads[1]).toBe(heads[0]);
    expect(heads[2]).not.toBe(heads[0]);
    expect((await store.runs()).map((r) => r.createdSeq)).toEqual([0, 500, 1000]);
  });

  it('refuses a gap in seqs and an op that does not cover its events, and stays usable', async () => {
    const store = await openTracked();
    const writer = await store.beginRun(runInfo());
    writer.append(eventRow(1));
    const gap = thrown(() => writer.append(eventRow(3)));
    expect(gap).toBeInstanceOf(StoreError);
    expect((gap as StoreError).code).toBe('seq-gap');
    expect((gap as StoreError).details).toEqual({ run: writer.run, expected: 2, actual: 3 });
    for (let seq = 2; seq <= 10; seq++) writer.append(eventRow(seq));
    const badOp = thrown(() => writer.endOp({ ...opRow(0), lastSeq: 9 }));
    expect((badOp as StoreError).code).toBe('bad-op');
    expect((badOp as StoreError).message).toBe(
      `run ${writer.run}: op 0 claims events 1..9, but the events appended since the previous op are 1..10`,
    );
    writer.endOp(opRow(0));
    await writer.finish('complete', { finalDigest: '0000000000000001' });
    expect(await store.eventCount(writer.run)).toBe(10);
    expect((thrown(() => writer.append(eventRow(11))) as StoreError).code).toBe('writer-closed');
  });

  it('round-trips snapshots and picks the one at or before a seq', async () => {
    const store = await openTracked();
    const writer = await store.beginRun(runInfo());
    writer.putSnapshot(0, 0, '0000000000000000', new Uint8Array([0]), 1);
    appendOps(writer, 6000);
    writer.putSnapshot(1000, 99, '00000000000003e8', new Uint8Array([1, 2, 3]), 1);
    writer.putSnapshot(5000, 499, '0000000000001388', Buffer.from([5, 0, 255]), 2);
    expect(
      (thrown(() => writer.putSnapshot(5000, 499, '0000000000001388', new Uint8Array(), 2)) as StoreError).code,
    ).toBe('bad-snapshot');
    await writer.finish('complete', { finalDigest: '0000000000000001' });
    expect(await store.snapshots(writer.run)).toEqual([0, 1000, 5000]);
    const at4999 = await store.snapshotAtOrBefore(writer.run, 4999);
    expect(at4999 && { ...at4999, state: [...at4999.state] }).toEqual({
      seq: 1000,
      op: 99,
      digest: '00000000000003e8',
      format: 1,
      state: [1, 2, 3],
    });
    expect((await store.snapshotAtOrBefore(writer.run, 5000))?.seq).toBe(5000);
    expect([...((await store.snapshotAtOrBefore(writer.run, 6000))?.state ?? [])]).toEqual([5, 0, 255]);
    expect((await store.snapshotAtOrBefore(writer.run, 0))?.seq).toBe(0);
    expect(await store.snapshotAtOrBefore(writer.run, -1)).toBeUndefined();
  });
});

describe('append-only log', () => {
  it('refuses UPDATE and DELETE on events, ops, snapshots and blocks through a raw connection', async () => {
    const { store, run } = await storeWithRun(100);
    (await store.beginRun(runInfo())).putSnapshot(0, 0, '0000000000000000', new Uint8Array([1]), 1);
    await closeAll();
    const raw = new Database(path);
    try {
      expect(() => raw.prepare('UPDATE events SET payload = ? WHERE seq = 5').run('{}')).toThrow(
        'events are append-only',
      );
      expect(() => raw.prepare('DELETE FROM events WHERE seq = 5').run()).toThrow('events are append-only');
      expect(() => raw.prepare('UPDATE ops SET digest = ?').run('0000000000000000')).toThrow('ops are append-only');
      expect(() => raw.prepare('DELETE FROM ops').run()).toThrow('ops are append-only');
      expect(() => raw.prepare('DELETE FROM event_blocks').run()).toThrow('event blocks are append-only');
      expect(() => raw.prepare('DELETE FROM runs').run()).toThrow('runs are never deleted');
      expect(() => raw.prepare('UPDATE runs SET variant = ? WHERE id = ?').run('v4', run)).toThrow(
        'a finished run is immutable',
      );
      expect(raw.prepare('SELECT count(*) FROM events').pluck().get()).toBe(100);
    } finally {
      raw.close();
    }
  });
});

describe('verify', () => {
  /** Edits the database behind the store's back, as another tool could, with the guard triggers dropped. */
  async function tamper(edit: (raw: Database.Database) => void): Promise<void> {
    await closeAll();
    const raw = new Database(path);
    try {
      raw.exec(
        'DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; DROP TRIGGER runs_no_update_when_finished',
      );
      edit(raw);
    } finally {
      raw.close();
    }
  }

  it('reports a complete run as ok with its counts', async () => {
    const { store, run } = await storeWithRun(10_000);
    expect(await store.verify()).toEqual({
      ok: true,
      runs: [
        { run, status: 'complete', incomplete: false, events: 10_000, batches: 3, ops: 1000, ok: true, mismatches: [] },
      ],
    });
  });

  it('names the event whose payload lost one byte of integrity', async () => {
    const { store, run } = await storeWithRun(10_000);
    const [before, target] = await collect(store.events(run, { fromSeq: 4999, toSeq: 5000 }));
    if (before === undefined || target === undefined) throw new Error('missing rows');
    const edited = target.payload.replace('"index":5000', '"index":5001');
    await tamper((raw) => raw.prepare('UPDATE events SET payload = ? WHERE run = ? AND seq = 5000').run(edited, run));
    const report = await (await openTracked()).verify(run);
    expect(report.ok).toBe(false);
    expect(report.runs[0]?.firstBroken).toEqual({
      seq: 5000,
      id: target.id,
      expected: eventHash(before.hash, 5000, target.op, target.v, target.type, edited),
      actual: target.hash,
      reason: 'hash-mismatch',
    });
    expect(report.runs[0]?.events).toBe(4999);
  });

  it('names an event whose type was changed', async () => {
    const { run } = await storeWithRun(1000);
    await tamper((raw) => raw.prepare("UPDATE events SET type = 'XaErased' WHERE run = ? AND seq = 777").run(run));
    const report = await (await openTracked()).verify();
    expect(report.runs[0]?.firstBroken).toMatchObject({ seq: 777, reason: 'hash-mismatch' });
  });

  it('names the first missing event of a deleted row', async () => {
    const { run } = await storeWithRun(1000);
    await tamper((raw) => raw.prepare('DELETE FROM events WHERE run = ? AND seq = 300').run(run));
    expect((await (await openTracked()).verify()).runs[0]?.firstBroken).toEqual({
      seq: 300,
      id: null,
      expected: '300',
      actual: '301',
      reason: 'seq-gap',
    });
  });

  it('refuses to hand out the payloads of a run with a missing seq, which could not be placed', async () => {
    const { run } = await storeWithRun(1000);
    await tamper((raw) => raw.prepare('DELETE FROM events WHERE run = ? AND seq = 300').run(run));
    const store = await openTracked();
    const read = collect(store.replayPayloads(run, 1, 1000));
    await expect(read).rejects.toMatchObject({ code: 'seq-gap', details: { run, seq: 1 } });
    // Up to the gap, the payloads are there.
    expect((await collect(store.replayPayloads(run, 1, 299))).flat()).toHaveLength(299);
  });

  it('reports a truncated complete run by its stored count and head hash', async () => {
    const { store, run } = await storeWithRun(1000);
    const head = (await store.run(run))?.headHash;
    const newHead = (await collect(store.events(run, { fromSeq: 999, toSeq: 999 })))[0]?.hash;
    await tamper((raw) => raw.prepare('DELETE FROM events WHERE run = ? AND seq = 1000').run(run));
    const result = (await (await openTracked()).verify()).runs[0];
    expect(result?.firstBroken).toBeUndefined();
    expect(result?.mismatches).toEqual([
      { what: 'event-blocks', expected: 'events up to seq 1000', actual: 'events up to seq 999' },
      { what: 'event-count', expected: '1000', actual: '999' },
      { what: 'head-hash', expected: head, actual: newHead },
    ]);
  });

  it('breaks the chain at seq 1 when the run header it hashes is edited', async () => {
    const { run } = await storeWithRun(100);
    await tamper((raw) => raw.prepare("UPDATE runs SET variant = 'v4' WHERE id = ?").run(run));
    expect((await (await openTracked()).verify()).runs[0]?.firstBroken).toMatchObject({
      seq: 1,
      reason: 'hash-mismatch',
    });
  });

  it('throws for a run that does not exist', async () => {
    const { store } = await storeWithRun(10);
    expect(((await rejection(store.verify(42))) as StoreError).code).toBe('no-such-run');
  });
});

describe('failed batches', () => {
  it('writes nothing of a batch whose commit fails, then records the run as failed', async () => {
    const store = await openTracked();
    const writer = await store.beginRun(runInfo(), { batchSize: 1000 });
    const saboteur = new Database(path);
    saboteur.exec(`CREATE TRIGGER sabotage BEFORE INSERT ON events WHEN NEW.seq = 2500
      BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`);
    saboteur.close();
    // The writer thread commits batches while appends go on: the failure shows at the append that waits for
    // room, or at settle; either way it names the batch and the op (and trace line) where it was cut.
    const failure = await rejection(
      (async () => {
        appendOps(writer, 3000);
        await writer.settle();
      })(),
    );
    expect(failure).toMatchObject({
      code: 'write-failed',
      message: `run ${writer.run}: batch of events 2001..3000 not written: disk on fire (SQLITE_CONSTRAINT_TRIGGER)`,
      details: { firstSeq: 2001, lastSeq: 3000, op: 299, line: opRow(299).line },
    });
    expect(await store.eventCount(writer.run)).toBe(2000);
    expect((await store.run(writer.run))?.status).toBe('running');
    expect((thrown(() => writer.append(eventRow(2001))) as StoreError).code).toBe('writer-broken');
    await expect(writer.finish('complete', { finalDigest: '0000000000000001' })).rejects.toMatchObject({
      code: 'writer-broken',
    });

    await writer.finish('failed', { error: 'disk on fire', finalDigest: '0000000000000001' });
    // Op 199 (events 1991..2000) ended after its last event filled the batch, so its row was in the lost one.
    expect(await store.run(writer.run)).toMatchObject({
      status: 'failed',
      incomplete: false,
      error: 'disk on fire',
      eventCount: 2000,
      opCount: 199,
    });
    expect(await store.verify()).toMatchObject({ ok: true, runs: [{ events: 2000, ops: 199, ok: true }] });
  });
});

describe('openStore', () => {
  it('migrates a new file once and reopens it without migrating again', async () => {
    await openTracked();
    await closeAll();
    const store = await openTracked();
    const migrated = new Database(path, { readonly: true });
    try {
      expect(migrated.prepare('SELECT name FROM kysely_migration').pluck().all()).toEqual([
        '0001_initial',
        '0002_run_failure',
        '0003_fuzz_failures',
        '0004_fuzz_claims',
      ]);
      expect(migrated.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      migrated.close();
    }
    expect(await store.runs()).toEqual([]);
  });

  it('refuses a database migrated by a newer ioptrace', async () => {
    await openTracked();
    await closeAll();
    const raw = new Database(path);
    raw
      .prepare('INSERT INTO kysely_migration (name, timestamp) VALUES (?, ?)')
      .run('9999_future', '2100-01-01T00:00:00.000Z');
    raw.close();
    const refused = await openStore(path).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(StoreError);
    expect((refused as StoreError).code).toBe('database-newer');
    expect((refused as StoreError).details).toEqual({ path, unknown: ['9999_future'] });
  });

  it('opens read-only: reads work and beginRun is refused', async () => {
    await storeWithRun(100);
    await closeAll();
    const store = await openTracked({ readonly: true });
    expect(await store.eventCount(1)).toBe(100);
    expect((await store.verify()).ok).toBe(true);
    await expect(store.beginRun(runInfo())).rejects.toMatchObject({ code: 'readonly' });
  });

  it('refuses to open a missing file read-only, and creates nothing', async () => {
    const missing = join(tmp.dir, 'missing.sqlite');
    const refused = await openStore(missing, { readonly: true }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(NotAStoreError);
    expect(refused).toMatchObject({ code: 'no-store', message: `no ioptrace store at ${missing}` });
    expect(existsSync(missing)).toBe(false);
  });
});

describe("SQLite's writer thread: a failed batch", () => {
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
});

describe('batches of large events', () => {
  it('are cut at 4 Mi units of payload whatever their event count', async () => {
    const store = await openTracked();
    const writer = await store.beginRun(runInfo(), {});
    // Ten events of 1.1 Mi units each (a list event of a scattered guest is tens of KB; these are larger, so
    // that a few of them cross the limit): cut after the 4th and the 8th.
    for (let seq = 1; seq <= 10; seq++) {
      const row = eventRow(seq);
      writer.append({ ...row, op: 0, payload: row.payload.replace('"note":"', `"note":"${'y'.repeat(1_100_000)}`) });
    }
    writer.endOp({ ...opRow(0), firstSeq: 1, lastSeq: 10 });
    await writer.finish('complete', { finalDigest: '0000000000000001' });
    expect((await store.verify()).runs[0]).toMatchObject({ ok: true, events: 10, batches: 3, ops: 1 });
  });
});

describe("SQLite's writer thread: readers during a run", () => {
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

describe("SQLite's writer thread: closing the store", () => {
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
