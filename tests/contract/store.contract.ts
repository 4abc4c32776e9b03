// SPDX-License-Identifier: GPL-2.0-only
/**
 * The store contract: what every backend of the Store interface (src/store/types.ts) answers, with exact
 * values. A backend joins with one describe: `storeContract('PostgreSQL', () => openPgStore(...))` in a
 * test file of its own (store.test.ts runs it against SQLite). Nothing here names a dialect: the rows go
 * in through RunWriter and come out through the read interface and the queries of src/store/queries/.
 *
 * Hashes are computed with src/store/chain.ts, the definition of the chains: a run must have the same head
 * in every backend (architecture decision 6).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeJson } from '../../src/lib/codec.js';
import { eventHash, genesisHash, opHash } from '../../src/store/chain.js';
import {
  StoreError,
  eventBlocksQuery,
  finalBalancesQuery,
  holdingChangesQuery,
  ledgerLinesQuery,
  type EventRow,
  type OpRow,
  type Store,
} from '../../src/store/index.js';
import { EVENT_CHUNK, REPLAY_CHUNK } from '../../src/store/reads.js';
import { appendOps, collect, eventRow, opRow, runInfo } from '../support/store-rows.js';

/** Makes an empty store and says how to dispose of it. */
export type StoreFactory = () => Promise<{ store: Store; dispose: () => Promise<void> }>;

const DIGEST = 'feedfacecafebeef';

/** The head of the event chain of rows 1..count of store-rows, from the chain's definition. */
function expectedHead(count: number): string {
  const info = runInfo();
  let head = genesisHash(info.traceSha256, info.variant, encodeJson(info.flags), encodeJson(info.faultPlan));
  for (let seq = 1; seq <= count; seq++) {
    const row = eventRow(seq);
    head = eventHash(head, row.seq, row.op, row.v, row.type, row.payload);
  }
  return head;
}

function expectedOpsHead(ops: number): string {
  const info = runInfo();
  let head = genesisHash(info.traceSha256, info.variant, encodeJson(info.flags), encodeJson(info.faultPlan));
  for (let index = 0; index < ops; index++) head = opHash(head, opRow(index));
  return head;
}

/** An accounting run: one pages (7) of user 1000 charged, pinned, partly unpinned and uncharged. */
const LEDGER_EVENTS: { op: number; event: Record<string, unknown> }[] = [
  {
    op: 0,
    event: {
      type: 'AccountingCharged',
      counter: 'user.locked_vm',
      owner: 1000,
      pages: 7,
      delta: 16,
      fn: 'incr_user_locked_vm',
    },
  },
  { op: 0, event: { type: 'NpinnedChanged', pages: 7, delta: 16, fn: 'pfn_reader_user_update_pinned' } },
  { op: 0, event: { type: 'PagesPinned', pfn: 262144, count: 16, mm: 1, fn: 'pin_user_pages_remote' } },
  { op: 0, event: { type: 'LastNpinnedSet', pages: 7, value: 16, fn: 'iopt_pages_update_pinned' } },
  { op: 1, event: { type: 'XaStored', pages: 7, index: 3, fn: 'batch_to_xarray' } },
  {
    op: 1,
    event: { type: 'PagesUnpinned', pfn: 262144, count: 4, dirty: false, fn: 'unpin_user_page_range_dirty_lock' },
  },
  { op: 1, event: { type: 'NpinnedChanged', pages: 7, delta: -4, fn: 'pfn_reader_user_update_pinned' } },
  {
    op: 1,
    event: {
      type: 'AccountingUncharged',
      counter: 'user.locked_vm',
      owner: 1000,
      pages: 7,
      delta: 4,
      fn: 'decr_user_locked_vm',
    },
  },
  { op: 1, event: { type: 'LastNpinnedSet', pages: 7, value: 12, fn: 'iopt_pages_update_pinned' } },
];

async function ledgerRun(store: Store): Promise<number> {
  const writer = await store.beginRun(runInfo());
  let seq = 0;
  for (const op of [0, 1]) {
    const first = seq + 1;
    for (const e of LEDGER_EVENTS.filter((x) => x.op === op)) {
      seq += 1;
      const row: EventRow = { seq, op, type: String(e.event['type']), v: 1, payload: encodeJson({ ...e.event, v: 1 }) };
      writer.append(row);
    }
    const ended: OpRow = { ...opRow(op), firstSeq: first, lastSeq: seq };
    writer.endOp(ended);
  }
  await writer.finish('complete', { finalDigest: DIGEST });
  return writer.run;
}

export function storeContract(backend: string, factory: StoreFactory): void {
  describe(`the store contract on ${backend}`, () => {
    let store: Store;
    let dispose: () => Promise<void>;

    beforeEach(async () => {
      ({ store, dispose } = await factory());
    });

    afterEach(async () => {
      await dispose();
    });

    it('appends a run and reads back its row, events, ops and chains', async () => {
      const writer = await store.beginRun(runInfo(), { batchSize: 16 });
      appendOps(writer, 40);
      writer.putSnapshot(20, 1, DIGEST, new Uint8Array([1, 2, 3]), 1);
      await writer.finish('complete', { finalDigest: DIGEST });
      const run = writer.run;
      expect(writer.head).toBe(expectedHead(40));

      const row = await store.run(run);
      expect(row).toEqual({
        id: run,
        tracePath: 'replays/sample.jsonl',
        traceSha256: runInfo().traceSha256,
        variant: 'v3',
        flags: [],
        faultPlan: { failAt: 3n },
        header: { ioptrace: 1 },
        status: 'complete',
        incomplete: false,
        error: null,
        errorOp: null,
        errorLine: null,
        eventCount: 40,
        opCount: 4,
        headHash: expectedHead(40),
        opsHeadHash: expectedOpsHead(4),
        finalDigest: DIGEST,
        createdSeq: 0,
      });
      expect(await store.traceText(run)).toBe(runInfo().traceText);
      expect(await store.eventCount(run)).toBe(40);

      const events = await collect(store.events(run));
      expect(events.map((e) => [e.seq, e.op, e.type, e.payload])).toEqual(
        Array.from({ length: 40 }, (_, i) => {
          const r = eventRow(i + 1);
          return [r.seq, r.op, r.type, r.payload];
        }),
      );
      expect(events[39]?.hash).toBe(expectedHead(40));

      const seqs = async (filter: Parameters<Store['events']>[1]) =>
        (await collect(store.events(run, filter))).map((e) => e.seq);
      expect(await seqs({ types: ['XaStored'] })).toEqual([2, 6, 10, 14, 18, 22, 26, 30, 34, 38]);
      expect(await seqs({ op: 2 })).toEqual([21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
      expect(await seqs({ fromSeq: 15, toSeq: 18 })).toEqual([15, 16, 17, 18]);
      expect(await seqs({ op: 1, types: ['PagesPinned', 'IommuMapped'] })).toEqual([11, 13, 15, 17, 19]);
      expect(await seqs({ types: [] })).toEqual([]);

      const ops = await store.ops(run);
      expect(ops.map((o) => [o.index, o.line, o.op, o.errno, o.firstSeq, o.lastSeq])).toEqual([
        [0, 2, 'map', null, 1, 10],
        [1, 3, 'unmap', null, 11, 20],
        [2, 4, 'map', null, 21, 30],
        [3, 5, 'unmap', 'ENOMEM', 31, 40],
      ]);
      expect(ops[3]?.hash).toBe(expectedOpsHead(4));
      expect((await store.ops(run, 1, 2)).map((o) => o.index)).toEqual([1, 2]);
      expect((await store.opAt(run, 25))?.index).toBe(2);
      expect(await store.opAt(run, 41)).toBeUndefined();

      expect(await store.snapshots(run)).toEqual([20]);
      const snapshot = await store.snapshotAtOrBefore(run, 39);
      expect({ ...snapshot, state: [...(snapshot?.state ?? [])] }).toEqual({
        seq: 20,
        op: 1,
        digest: DIGEST,
        format: 1,
        state: [1, 2, 3],
      });
      expect(await store.snapshotAtOrBefore(run, 19)).toBeUndefined();
      expect((await store.query(eventBlocksQuery(run))).map((b) => [b.firstSeq, b.lastSeq, b.types])).toEqual([
        [1, 16, ['AccountingCharged', 'IommuMapped', 'PagesPinned', 'XaStored']],
        [17, 32, ['AccountingCharged', 'IommuMapped', 'PagesPinned', 'XaStored']],
        [33, 40, ['AccountingCharged', 'IommuMapped', 'PagesPinned', 'XaStored']],
      ]);
    });

    it('verifies every run: counts, batches, ops, and no mismatch', async () => {
      const writer = await store.beginRun(runInfo(), { batchSize: 16 });
      appendOps(writer, 40);
      await writer.finish('complete', { finalDigest: DIGEST });
      expect(await store.verify()).toEqual({
        ok: true,
        runs: [
          {
            run: writer.run,
            status: 'complete',
            incomplete: false,
            events: 40,
            batches: 3,
            ops: 4,
            ok: true,
            mismatches: [],
          },
        ],
      });
      const error = await store.verify(writer.run + 1).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreError);
      expect((error as StoreError).code).toBe('no-such-run');
    });

    it('lists runs in order, each with the global position it began at', async () => {
      for (const count of [30, 10, 20]) {
        const writer = await store.beginRun(runInfo(count === 10 ? 'upstream' : 'v3'));
        appendOps(writer, count);
        await writer.finish('complete', { finalDigest: DIGEST });
      }
      const runs = await store.runs();
      expect(runs.map((r) => [r.variant, r.eventCount, r.opCount, r.createdSeq])).toEqual([
        ['v3', 30, 3, 0],
        ['upstream', 10, 1, 30],
        ['v3', 20, 2, 40],
      ]);
      expect(runs.map((r) => r.id)).toEqual([runs[0]?.id, (runs[0]?.id ?? 0) + 1, (runs[0]?.id ?? 0) + 2]);
      expect(await store.run((runs[2]?.id ?? 0) + 1)).toBeUndefined();
    });

    it('records a failed run with its reason and place, and verifies it', async () => {
      const writer = await store.beginRun(runInfo());
      appendOps(writer, 20);
      await writer.finish('failed', { error: 'disk full', errorOp: 2, errorLine: 4 });
      expect(await store.run(writer.run)).toMatchObject({
        status: 'failed',
        incomplete: false,
        error: 'disk full',
        errorOp: 2,
        errorLine: 4,
        eventCount: 20,
        opCount: 2,
        headHash: expectedHead(20),
        finalDigest: null,
      });
      expect((await store.verify(writer.run)).ok).toBe(true);
    });

    it('shows a run whose writer never finished as incomplete, with its committed batches only', async () => {
      const writer = await store.beginRun(runInfo(), { batchSize: 8 });
      appendOps(writer, 20);
      // Two batches of 8 events were cut; settle commits them. A server store waits for settle to begin;
      // SQLite's writer thread began at once and may or may not be done, so it is not asked here.
      if (store.dialect === 'postgres') expect(writer.unsettled).toBe(true);
      await writer.settle();
      expect(writer.unsettled).toBe(false);
      // Committed: two batches of 8 events; events 17..20 and op 1's row wait in the writer's buffer.
      expect(await store.run(writer.run)).toMatchObject({
        status: 'running',
        incomplete: true,
        eventCount: 16,
        opCount: 1,
        headHash: null,
        finalDigest: null,
      });
      expect(await store.eventCount(writer.run)).toBe(16);
      expect(await store.verify(writer.run)).toEqual({
        ok: true,
        runs: [
          {
            run: writer.run,
            status: 'running',
            incomplete: true,
            events: 16,
            batches: 2,
            ops: 1,
            ok: true,
            mismatches: [],
          },
        ],
      });
    });

    it('writes every row of a run whose last chunk of rows is cut into several INSERTs', async () => {
      // A full batch, then 304 events (on SQLite: a full chunk, and 48 rows cut as 32 and 16); 440 op rows.
      const count = 4096 + 304;
      const writer = await store.beginRun(runInfo());
      appendOps(writer, count);
      await writer.finish('complete', { finalDigest: DIGEST });
      expect(writer.head).toBe(expectedHead(count));
      const rows = (await collect(store.replayRows(writer.run, 1, count))).flat();
      expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
      expect(rows[count - 1]?.payload).toBe(eventRow(count).payload);
      const ops = await store.ops(writer.run);
      expect(ops.map((o) => o.index)).toEqual(Array.from({ length: count / 10 }, (_, i) => i));
      expect(ops[ops.length - 1]?.hash).toBe(expectedOpsHead(count / 10));
      const report = await store.verify(writer.run);
      expect(report.ok).toBe(true);
      expect(report.runs[0]?.events).toBe(count);
    });

    it('reads replay rows (seq, op, payload) in chunks of EVENT_CHUNK, equal to the events they stand for', async () => {
      const count = 2 * EVENT_CHUNK + 5;
      const writer = await store.beginRun(runInfo());
      appendOps(writer, count);
      await writer.finish('complete', { finalDigest: DIGEST });
      const chunks = await collect(store.replayRows(writer.run, 3, count + 10));
      expect(chunks.map((c) => c.length)).toEqual([EVENT_CHUNK, EVENT_CHUNK, 3]);
      const rows = chunks.flat();
      expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: count - 2 }, (_, i) => i + 3));
      expect(rows[EVENT_CHUNK]).toEqual({
        seq: EVENT_CHUNK + 3,
        op: eventRow(EVENT_CHUNK + 3).op,
        payload: eventRow(EVENT_CHUNK + 3).payload,
      });
      expect(await collect(store.replayRows(writer.run, 7, 6))).toEqual([]);
      expect((await collect(store.replayRows(writer.run, 0, 2))).flat().map((r) => r.seq)).toEqual([1, 2]);
      expect(await collect(store.replayRows(writer.run + 1, 1, 10))).toEqual([]);
    });

    it('reads bare payloads by seq range, REPLAY_CHUNK seqs at a time, clipped to the run', async () => {
      const count = REPLAY_CHUNK + 5;
      const writer = await store.beginRun(runInfo());
      appendOps(writer, count);
      await writer.finish('complete', { finalDigest: DIGEST });
      const chunks = await collect(store.replayPayloads(writer.run, 3, count + 10));
      expect(chunks.map((c) => c.length)).toEqual([REPLAY_CHUNK, 3]);
      expect(chunks.flat()).toEqual(Array.from({ length: count - 2 }, (_, i) => eventRow(i + 3).payload));
      const exact = await collect(store.replayPayloads(writer.run, 1, REPLAY_CHUNK));
      expect(exact.map((c) => c.length)).toEqual([REPLAY_CHUNK]);
      expect(await collect(store.replayPayloads(writer.run, 7, 6))).toEqual([]);
      expect((await collect(store.replayPayloads(writer.run, 0, 2))).flat()).toEqual([
        eventRow(1).payload,
        eventRow(2).payload,
      ]);
      expect(await collect(store.replayPayloads(writer.run, count + 1, count + 5))).toEqual([]);
      expect(await collect(store.replayPayloads(writer.run + 1, 1, 10))).toEqual([]);
    });

    it('streams events: a reader may stop early, and the writer goes on', async () => {
      const writer = await store.beginRun(runInfo(), { batchSize: 8 });
      appendOps(writer, 20);
      await writer.flush();
      const seen: number[] = [];
      for await (const e of store.events(writer.run)) {
        seen.push(e.seq);
        if (e.seq === 5) break;
      }
      expect(seen).toEqual([1, 2, 3, 4, 5]);
      await writer.finish('complete', { finalDigest: DIGEST });
      expect((await store.run(writer.run))?.status).toBe('complete');
    });

    it('answers the ledger query: every counter change with its balance after it', async () => {
      const run = await ledgerRun(store);
      const lines = await store.query(ledgerLinesQuery(run));
      expect(
        lines.map((l) => [
          l.seq,
          l.op,
          l.line,
          l.type,
          l.counter,
          l.owner,
          l.pages,
          l.delta,
          l.value,
          l.pagesValue,
          l.fn,
        ]),
      ).toEqual([
        [1, 0, 2, 'AccountingCharged', 'user.locked_vm', 1000, 7, 16, 16, 16, 'incr_user_locked_vm'],
        [2, 0, 2, 'NpinnedChanged', 'npinned', 7, 7, 16, 16, 16, 'pfn_reader_user_update_pinned'],
        [3, 0, 2, 'PagesPinned', 'pins', null, null, 16, 16, 16, 'pin_user_pages_remote'],
        [4, 0, 2, 'LastNpinnedSet', 'last_npinned', 7, 7, 16, 16, 16, 'iopt_pages_update_pinned'],
        [6, 1, 3, 'PagesUnpinned', 'pins', null, null, -4, 12, 12, 'unpin_user_page_range_dirty_lock'],
        [7, 1, 3, 'NpinnedChanged', 'npinned', 7, 7, -4, 12, 12, 'pfn_reader_user_update_pinned'],
        [8, 1, 3, 'AccountingUncharged', 'user.locked_vm', 1000, 7, -4, 12, 12, 'decr_user_locked_vm'],
        [9, 1, 3, 'LastNpinnedSet', 'last_npinned', 7, 7, -4, 12, 12, 'iopt_pages_update_pinned'],
      ]);
      expect(lines[2]?.pfn).toBe(262144);
      expect(lines[2]?.mm).toBe(1);
      const byPages = await store.query(
        ledgerLinesQuery(run, { where: [{ accounts: [{ counter: 'pins', owner: null }] }] }),
      );
      expect(byPages.map((l) => [l.seq, l.value])).toEqual([
        [3, 16],
        [6, 12],
      ]);
      expect(await store.query(finalBalancesQuery(run))).toEqual([
        { counter: 'last_npinned', owner: 7, op: 1, value: 12 },
        { counter: 'npinned', owner: 7, op: 1, value: 12 },
        { counter: 'pins', owner: null, op: 1, value: 12 },
        { counter: 'user.locked_vm', owner: 1000, op: 1, value: 12 },
      ]);
      expect(await store.query(holdingChangesQuery(run))).toEqual([
        { op: 0, pages: 7 },
        { op: 1, pages: 7 },
      ]);
    });
  });
}
