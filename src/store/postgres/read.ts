// SPDX-License-Identifier: GPL-2.0-only
/**
 * Reading runs, ops, events and snapshots back from PostgreSQL: the reads of sqlite/read.ts with the same
 * row checks (../rows.ts), on pooled connections. Each statement runs in READ COMMITTED, so it sees whole
 * committed batches only. Events come in keyset chunks (seq > last seen), no cursor held between them;
 * filters by op and type become seq ranges (the op's row, the event_blocks that hold the types), as there.
 */

import type pg from 'pg';
import { z } from 'zod';
import {
  ALL_SEQS,
  EVENT_CHUNK,
  NO_LIMIT,
  REPLAY_CHUNK,
  checkPayloads,
  checkShortChunk,
  type SeqRange,
  checkEventRow,
  openOpRange,
  replayRow,
  runColumns,
  seqWindow,
  typeRanges,
} from '../reads.js';
import { opRowSchema, parseRow, runRowSchema, snapshotRowSchema } from '../rows.js';
import type { EventFilter, ReplayRow, RunRow, Snapshot, StoredEvent, StoredOp } from '../types.js';

function runColumnsOf(migrations: ReadonlySet<string>): string {
  return runColumns(migrations, 'NULL::integer');
}

async function rows(pool: pg.Pool, text: string, values: unknown[] = []): Promise<Record<string, unknown>[]> {
  return (await pool.query<Record<string, unknown>>(text, values)).rows;
}

export async function readRuns(pool: pg.Pool, migrations: ReadonlySet<string>): Promise<RunRow[]> {
  return (await rows(pool, `SELECT ${runColumnsOf(migrations)} FROM runs ORDER BY id`)).map((row) =>
    parseRow(runRowSchema, row, 'runs row'),
  );
}

export async function readRun(pool: pg.Pool, migrations: ReadonlySet<string>, id: number): Promise<RunRow | undefined> {
  const [row] = await rows(pool, `SELECT ${runColumnsOf(migrations)} FROM runs WHERE id = $1`, [id]);
  return row === undefined ? undefined : parseRow(runRowSchema, row, `runs row ${id}`);
}

export async function readTraceText(pool: pg.Pool, run: number): Promise<string | undefined> {
  const [row] = await rows(pool, 'SELECT trace_text FROM runs WHERE id = $1', [run]);
  if (row === undefined) return undefined;
  return parseRow(z.string(), row['trace_text'], `runs row ${run} trace_text`);
}

export async function readOps(pool: pg.Pool, run: number, first = 0, last = NO_LIMIT): Promise<StoredOp[]> {
  return (
    await rows(pool, 'SELECT * FROM ops WHERE run = $1 AND idx >= $2 AND idx <= $3 ORDER BY idx', [run, first, last])
  ).map((row) => parseRow(opRowSchema, row, `ops row of run ${run}`));
}

async function readOp(pool: pg.Pool, run: number, index: number): Promise<StoredOp | undefined> {
  const [row] = await rows(pool, 'SELECT * FROM ops WHERE run = $1 AND idx = $2', [run, index]);
  return row === undefined ? undefined : parseRow(opRowSchema, row, `ops row ${index} of run ${run}`);
}

export async function readOpAt(pool: pg.Pool, run: number, seq: number): Promise<StoredOp | undefined> {
  const [event] = await rows(pool, 'SELECT op FROM events WHERE run = $1 AND seq = $2', [run, seq]);
  if (event === undefined || typeof event['op'] !== 'number') return undefined;
  return readOp(pool, run, event['op']);
}

export async function readEventCount(pool: pg.Pool, run: number): Promise<number> {
  const [row] = await rows(pool, 'SELECT coalesce(max(seq), 0) AS n FROM events WHERE run = $1', [run]);
  return Number(row?.['n'] ?? 0);
}

export async function readSnapshotAtOrBefore(pool: pg.Pool, run: number, seq: number): Promise<Snapshot | undefined> {
  const [row] = await rows(
    pool,
    'SELECT seq, op, digest, format, state FROM snapshots WHERE run = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1',
    [run, seq],
  );
  return row === undefined ? undefined : parseRow(snapshotRowSchema, row, `snapshot of run ${run}`);
}

export async function readSnapshotSeqs(pool: pg.Pool, run: number): Promise<number[]> {
  return (await rows(pool, 'SELECT seq FROM snapshots WHERE run = $1 ORDER BY seq', [run])).map((r) =>
    Number(r['seq']),
  );
}

async function opRange(pool: pg.Pool, run: number, op: number): Promise<SeqRange | undefined> {
  const row = await readOp(pool, run, op);
  if (row !== undefined) return [row.firstSeq, row.lastSeq];
  const [last] = await rows(pool, 'SELECT idx, last_seq FROM ops WHERE run = $1 ORDER BY idx DESC LIMIT 1', [run]);
  return openOpRange(
    op,
    last === undefined ? undefined : { idx: Number(last['idx']), lastSeq: Number(last['last_seq']) },
  );
}

async function blockRanges(
  pool: pg.Pool,
  run: number,
  from: number,
  to: number,
  types: readonly string[],
): Promise<SeqRange[]> {
  const [startRow] = await rows(
    pool,
    'SELECT max(first_seq) AS s FROM event_blocks WHERE run = $1 AND first_seq <= $2',
    [run, from],
  );
  const start = typeof startRow?.['s'] === 'number' ? startRow['s'] : from;
  const blocks = await rows(
    pool,
    'SELECT first_seq, last_seq, types FROM event_blocks WHERE run = $1 AND first_seq >= $2 AND first_seq <= $3 ORDER BY first_seq',
    [run, start, to],
  );
  const blockRows = blocks.map((block) => ({
    first_seq: Number(block['first_seq']),
    last_seq: Number(block['last_seq']),
    types: String(block['types']),
  }));
  return typeRanges(run, blockRows, from, to, types);
}

export async function* readEvents(
  pool: pg.Pool,
  run: number,
  filter: EventFilter = {},
): AsyncGenerator<StoredEvent, void, undefined> {
  const window = seqWindow(filter, filter.op === undefined ? ALL_SEQS : await opRange(pool, run, filter.op));
  if (window === undefined) return;
  const [from, to] = window;
  const types = filter.types;
  if (types === undefined) {
    yield* scan(pool, run, from, to, null, filter.op);
    return;
  }
  if (types.length === 0) return;
  for (const [first, last] of await blockRanges(pool, run, from, to, types)) {
    yield* scan(pool, run, first, last, types, filter.op);
  }
}

async function* scan(
  pool: pg.Pool,
  run: number,
  from: number,
  to: number,
  types: readonly string[] | null,
  op: number | undefined,
): AsyncGenerator<StoredEvent, void, undefined> {
  const params: unknown[] = [run, from, to];
  let text = 'SELECT id, run, seq, op, type, v, payload, hash FROM events WHERE run = $1 AND seq >= $2 AND seq <= $3';
  if (types !== null) {
    params.push([...types]);
    text += ` AND type = ANY($${params.length}::text[])`;
  }
  if (op !== undefined) {
    params.push(op);
    text += ` AND op = $${params.length}`;
  }
  text += ` ORDER BY seq LIMIT ${EVENT_CHUNK}`;
  for (;;) {
    const chunk = await rows(pool, text, params);
    for (const row of chunk) {
      const event = row as unknown as StoredEvent;
      checkEventRow(run, event);
      yield event;
    }
    const last = chunk[chunk.length - 1];
    if (chunk.length < EVENT_CHUNK || last === undefined) return;
    params[1] = (last['seq'] as number) + 1;
  }
}

/** Events from..to as replay rows, EVENT_CHUNK at a time (see Store.replayRows). */
export async function* readReplayRows(
  pool: pg.Pool,
  run: number,
  from: number,
  to: number,
): AsyncGenerator<ReplayRow[], void, undefined> {
  const text = `SELECT seq, op, payload FROM events WHERE run = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT ${EVENT_CHUNK}`;
  for (let next = Math.max(1, from); next <= to;) {
    const chunk = (await rows(pool, text, [run, next, to])).map((row) =>
      replayRow(run, row['seq'], row['op'], row['payload']),
    );
    if (chunk.length > 0) yield chunk;
    const last = chunk[chunk.length - 1];
    if (chunk.length < EVENT_CHUNK || last === undefined) return;
    next = last.seq + 1;
  }
}

/** Payloads of events from..to, a seq range of REPLAY_CHUNK at a time (see Store.replayPayloads). */
export async function* readReplayPayloads(
  pool: pg.Pool,
  run: number,
  from: number,
  to: number,
): AsyncGenerator<string[], void, undefined> {
  const text = 'SELECT payload FROM events WHERE run = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq';
  for (let next = Math.max(1, from); next <= to;) {
    const end = Math.min(to, next + REPLAY_CHUNK - 1);
    const payloads = (await rows(pool, text, [run, next, end])).map((row) => row['payload']);
    checkPayloads(run, next, payloads);
    if (payloads.length > 0) yield payloads;
    if (payloads.length < end - next + 1) {
      const [max] = await rows(pool, 'SELECT max(seq) AS m FROM events WHERE run = $1 AND seq >= $2 AND seq <= $3', [
        run,
        next,
        to,
      ]);
      const m = max?.['m'];
      checkShortChunk(run, next, payloads.length, m === null || m === undefined ? null : Number(m));
      return;
    }
    next = end + 1;
  }
}
