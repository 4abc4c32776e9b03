// SPDX-License-Identifier: GPL-2.0-only
// The store never writes to what is not its own, a failed replay says why and is marked failed, verify
// reads one snapshot, and a store without the newest optional migration still reads.
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql } from 'kysely';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as m0001 from '../../migrations/0001_initial.js';
import * as m0002 from '../../migrations/0002_run_failure.js';
import { parseTraceText } from '../../src/replay/parse.js';
import { recordReplay } from '../../src/replay/record.js';
import {
  NotAStoreError,
  StoreError,
  claimFailureQuery,
  farmFailuresQuery,
  openStore,
  type RunWriter,
  type Store,
} from '../../src/store/index.js';
import { sqlitePragma, verifyTestHooks } from '../../src/store/sqlite/testing.js';
import { EVENTS_PER_OP, appendOps, eventRow, opRow, runInfo, tempDir } from '../support/store-rows.js';

let tmp: ReturnType<typeof tempDir>;
let path: string;
const open: Store[] = [];

async function openTracked(options?: { readonly?: boolean }): Promise<Store> {
  const store = await openStore(path, options);
  open.push(store);
  return store;
}

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

async function refusal(file: string, options?: { readonly?: boolean }): Promise<NotAStoreError> {
  const error = await openStore(file, options).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(NotAStoreError);
  return error as NotAStoreError;
}

/** An SQLite database with a header and no table (opening alone leaves a 0-byte file). */
function emptyDatabase(file: string): void {
  const raw = new Database(file);
  raw.pragma('user_version = 1');
  raw.close();
}

beforeEach(() => {
  tmp = tempDir();
  path = join(tmp.dir, 'log.sqlite');
});

afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
  delete verifyTestHooks.afterBlocks;
  tmp.remove();
});

describe('openStore on a file that is not an ioptrace store', () => {
  it('refuses a text file, read-only or not, and leaves it byte for byte', async () => {
    writeFileSync(path, 'my notes\n');
    for (const readonly of [false, true]) {
      const error = await refusal(path, { readonly });
      expect(error.code).toBe('not-a-store');
      expect(error.message).toBe(`${path} is not an ioptrace store (not an SQLite database); it was left untouched`);
    }
    expect(readFileSync(path, 'utf8')).toBe('my notes\n');
    expect(readdirSync(tmp.dir)).toEqual(['log.sqlite']);
  });

  it('refuses the SQLite database of another program without running a migration in it', async () => {
    const foreign = new Database(path);
    foreign.exec("CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('ada')");
    foreign.close();
    const before = sha(path);
    const error = await refusal(path);
    expect(error.code).toBe('not-a-store');
    expect(error.message).toBe(
      `${path} is an SQLite database of another program (tables people), not an ioptrace store; it was left untouched`,
    );
    expect(sha(path)).toBe(before);
    const raw = new Database(path, { readonly: true });
    expect(raw.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all()).toEqual(['people']);
    expect(raw.pragma('journal_mode', { simple: true })).toBe('delete');
    raw.close();
  });

  it('makes a store of an empty file or an empty SQLite database', async () => {
    writeFileSync(path, '');
    const store = await openTracked();
    expect(await store.runs()).toEqual([]);
    const other = join(tmp.dir, 'empty.sqlite');
    emptyDatabase(other);
    const second = await openStore(other);
    open.push(second);
    expect(await second.runs()).toEqual([]);
  });

  it('read-only: a missing file, an empty file and an empty database hold no store, and nothing is created', async () => {
    expect((await refusal(path, { readonly: true })).message).toBe(`no ioptrace store at ${path}`);
    expect(existsSync(path)).toBe(false);
    writeFileSync(path, '');
    expect((await refusal(path, { readonly: true })).message).toBe(`no ioptrace store at ${path} (an empty file)`);
    const other = join(tmp.dir, 'empty.sqlite');
    emptyDatabase(other);
    expect((await refusal(other, { readonly: true })).message).toBe(
      `no ioptrace store at ${other} (an empty SQLite database)`,
    );
  });
});

describe('a store made before migration 0003', () => {
  it('reads read-only with no farm failures, and a writer migrates it', async () => {
    const raw = new Database(path);
    raw.pragma('journal_mode = WAL');
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: raw }) });
    const old = new Migrator({
      db,
      provider: { getMigrations: () => Promise.resolve({ '0001_initial': m0001, '0002_run_failure': m0002 }) },
    });
    expect((await old.migrateToLatest()).error).toBeUndefined();
    await db.destroy();

    const reader = await openTracked({ readonly: true });
    expect(await reader.runs()).toEqual([]);
    expect(await reader.query(farmFailuresQuery())).toEqual([]);
    await reader.close();
    open.length = 0;
    const writer = await openTracked();
    const claim = { variant: 'v3', kind: 'warn', fn: 'f', seed: 1, ops: 40, op: 2, detail: 'd' };
    expect(await writer.query(claimFailureQuery(claim, { claimant: 'here/1/ab', leaseUntil: 0 }))).toBe(true);
    expect((await writer.query(farmFailuresQuery())).map((f) => [f.kind, f.fn, f.count])).toEqual([['warn', 'f', 0]]);
  });
});

describe('a store made before migration 0002', () => {
  it('reads read-only (failure columns null) and is migrated by a writer', async () => {
    const raw = new Database(path);
    raw.pragma('journal_mode = WAL');
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: raw }) });
    const old = new Migrator({ db, provider: { getMigrations: () => Promise.resolve({ '0001_initial': m0001 }) } });
    expect((await old.migrateToLatest()).error).toBeUndefined();
    await sql`INSERT INTO runs (trace_path, trace_sha256, trace_text, variant, flags, fault_plan, header, status, error,
      created_seq) VALUES ('t', 'x', '', 'v3', '[]', 'null', 'null', 'failed', 'old reason', 0)`.execute(db);
    await db.destroy();

    const reader = await openTracked({ readonly: true });
    expect(await reader.run(1)).toMatchObject({
      status: 'failed',
      error: 'old reason',
      errorOp: null,
      errorLine: null,
    });
    await reader.close();
    open.length = 0;
    const writer = await openTracked();
    expect(await writer.run(1)).toMatchObject({ error: 'old reason', errorOp: null, errorLine: null });
    const migrated = new Database(path, { readonly: true });
    expect(migrated.prepare('SELECT name FROM kysely_migration ORDER BY name').pluck().all()).toEqual([
      '0001_initial',
      '0002_run_failure',
      '0003_fuzz_failures',
      '0004_fuzz_claims',
    ]);
    migrated.close();
  });
});

const TRACE = [
  '{"op":"process","pid":1,"memlock":"unlimited"}',
  '{"op":"open","ctx":1,"pid":1}',
  '{"op":"ioas_alloc","ioas":1}',
  '{"op":"mmap","pid":1,"addr":"0x10000000","length":"0x1000000"}',
  '{"op":"domain_attach","domain":1,"ioas":1}',
  '{"op":"ioas_map","ioas":1,"pid":1,"uptr":"0x10000000","length":"0x1000000","iova":"0x100000000"}',
  '',
].join('\n');

describe('a replay that fails part way', () => {
  async function record(store: Store, onOp?: (index: number) => void, text = TRACE) {
    const trace = parseTraceText(text, 'grow.jsonl');
    return await recordReplay(store, trace, {
      tracePath: 'grow.jsonl',
      traceText: text,
      variant: 'upstream',
      fixes: [],
      failNth: null,
      onOp: (op) => onOp?.(op.index),
    });
  }

  it('on a full store: names SQLITE_FULL, marks the run failed with the reason and where, verify ok', async () => {
    const store = await openTracked();
    const pages = Number((sqlitePragma(store, 'page_count') as { page_count: number }[])[0]?.page_count);
    // A few pages to spare: the run row fits, the first batch of 4096 events does not.
    sqlitePragma(store, `max_page_count = ${pages + 4}`);
    const error = await (async () => {
      try {
        await record(store);
      } catch (e) {
        return e;
      }
      throw new Error('expected a throw');
    })();
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({
      code: 'run-failed',
      message:
        'run 1 failed at op 4 (trace line 4): batch of events 1..4096 not written: database or disk is full (SQLITE_FULL); the run is marked failed with the events committed before',
      details: { run: 1, op: 4, line: 4, marked: true },
    });
    expect(await store.run(1)).toMatchObject({
      status: 'failed',
      incomplete: false,
      error: 'batch of events 1..4096 not written: database or disk is full (SQLITE_FULL)',
      errorOp: 4,
      errorLine: 4,
      eventCount: 0,
      opCount: 0,
      finalDigest: null,
    });
    expect(await store.verify()).toMatchObject({ ok: true, runs: [{ run: 1, status: 'failed', events: 0, ok: true }] });
  });

  it('on any exception: its own message, not a digest complaint; the events before are kept', async () => {
    const store = await openTracked();
    const error = await (async () => {
      try {
        await record(store, (index) => {
          if (index === 2) throw new RangeError('Invalid string length');
        });
      } catch (e) {
        return e;
      }
      throw new Error('expected a throw');
    })();
    expect(error).toMatchObject({
      code: 'run-failed',
      message:
        'run 1 failed at op 3 (trace line 3): RangeError: Invalid string length; the run is marked failed with the events committed before',
    });
    expect((error as StoreError).cause).toBeInstanceOf(RangeError);
    const run = await store.run(1);
    expect(run).toMatchObject({
      status: 'failed',
      error: 'RangeError: Invalid string length',
      errorOp: 3,
      errorLine: 3,
      opCount: 3,
    });
    expect(run?.eventCount).toBe((await store.ops(1, 2, 2))[0]?.lastSeq);
    expect((await store.verify()).ok).toBe(true);
  });

  it('on a batch that fails on the writer thread: the run is failed at the op that cut the batch, not where the failure was noticed', async () => {
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
    // On the store's file, so on every connection: the writer thread's too.
    const raw = new Database(path);
    raw.exec(
      `CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.seq = 6000 BEGIN SELECT RAISE(ABORT, 'refused'); END`,
    );
    raw.close();
    const error = await record(store, undefined, text).then(
      () => new Error('expected a throw'),
      (e: unknown) => e,
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

describe('verify reads one snapshot', () => {
  it('does not see a batch committed by another connection between its reads', async () => {
    const writerStore = await openTracked();
    const writer = await writerStore.beginRun(runInfo(), { batchSize: 100 });
    appendOps(writer, 300);
    await writer.settle();
    const reader = await openTracked({ readonly: true });
    let more = 0;
    verifyTestHooks.afterBlocks = async () => {
      // The blocks are read; commit two more batches before the events are (flush returns once they are in).
      if (more++ === 0) await appendOpsFrom(writer, 301, 500);
    };
    const report = await reader.verify();
    expect(report).toEqual({
      ok: true,
      runs: [
        { run: 1, status: 'running', incomplete: true, events: 300, batches: 3, ops: 29, ok: true, mismatches: [] },
      ],
    });
    delete verifyTestHooks.afterBlocks;
    expect((await reader.verify()).runs[0]).toMatchObject({ ok: true, events: 500, batches: 5, ops: 50 });
  });
});

/** Appends events first..last of the fixture vocabulary, closing ops of ten, and commits them. */
async function appendOpsFrom(writer: RunWriter, first: number, last: number): Promise<void> {
  for (let seq = first; seq <= last; seq++) {
    writer.append(eventRow(seq));
    if (seq % EVENTS_PER_OP === 0) writer.endOp(opRow(seq / EVENTS_PER_OP - 1));
  }
  await writer.flush();
}
