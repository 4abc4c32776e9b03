// SPDX-License-Identifier: GPL-2.0-only
/**
 * Reading runs, ops, events and snapshots back. Runs, ops and snapshot rows are parsed with zod (few rows,
 * cheap); event rows are the hot path and get only a type check of the columns a reader relies on.
 *
 * Events are read in chunks of EVENT_CHUNK by keyset (seq > last seen), not through one open cursor: a
 * better-sqlite3 cursor keeps the connection busy, so a consumer that wrote, or dropped the iterator
 * without finishing it, would block every later write. Keyset chunks cost no more than a cursor.
 *
 * Filters: an op becomes its seq range (from its ops row); types become the seq ranges of the event_blocks
 * that hold them. So a rare type (a violation) is found without reading the run, with no type index to
 * maintain on append.
 */

import { z } from 'zod';
import type { Connection } from './connection.js';
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

/** The run columns of this schema: a store read without migration 0002 has no error_op, error_line. */
function runColumnsOf(conn: Connection): string {
  return runColumns(conn.migrations, 'NULL');
}

export function readRuns(conn: Connection): RunRow[] {
  return conn
    .prepare<[]>(`SELECT ${runColumnsOf(conn)} FROM runs ORDER BY id`)
    .all()
    .map((row) => parseRow(runRowSchema, row, 'runs row'));
}

export function readRun(conn: Connection, id: number): RunRow | undefined {
  const row = conn.prepare<[number]>(`SELECT ${runColumnsOf(conn)} FROM runs WHERE id = ?`).get(id);
  return row === undefined ? undefined : parseRow(runRowSchema, row, `runs row ${id}`);
}

export function readTraceText(conn: Connection, run: number): string | undefined {
  const text = conn.prepare<[number], { trace_text: unknown }>('SELECT trace_text FROM runs WHERE id = ?').get(run);
  if (text === undefined) return undefined;
  return parseRow(z.string(), text.trace_text, `runs row ${run} trace_text`);
}

export function readOps(conn: Connection, run: number, first = 0, last = NO_LIMIT): StoredOp[] {
  return conn
    .prepare<[number, number, number]>('SELECT * FROM ops WHERE run = ? AND idx >= ? AND idx <= ? ORDER BY idx')
    .all(run, first, last)
    .map((row) => parseRow(opRowSchema, row, `ops row of run ${run}`));
}

function readOp(conn: Connection, run: number, index: number): StoredOp | undefined {
  const row = conn.prepare<[number, number]>('SELECT * FROM ops WHERE run = ? AND idx = ?').get(run, index);
  return row === undefined ? undefined : parseRow(opRowSchema, row, `ops row ${index} of run ${run}`);
}

export function readOpAt(conn: Connection, run: number, seq: number): StoredOp | undefined {
  const event = conn
    .prepare<[number, number], { op: unknown }>('SELECT op FROM events WHERE run = ? AND seq = ?')
    .get(run, seq);
  if (event === undefined || typeof event.op !== 'number') return undefined;
  return readOp(conn, run, event.op);
}

export function readEventCount(conn: Connection, run: number): number {
  const row = conn
    .prepare<[number], { n: number }>('SELECT coalesce(max(seq), 0) AS n FROM events WHERE run = ?')
    .get(run);
  return row?.n ?? 0;
}

export function readSnapshotAtOrBefore(conn: Connection, run: number, seq: number): Snapshot | undefined {
  const row = conn
    .prepare<[number, number]>(
      'SELECT seq, op, digest, format, state FROM snapshots WHERE run = ? AND seq <= ? ORDER BY seq DESC LIMIT 1',
    )
    .get(run, seq);
  return row === undefined ? undefined : parseRow(snapshotRowSchema, row, `snapshot of run ${run}`);
}

export function readSnapshotSeqs(conn: Connection, run: number): number[] {
  return conn.prepare<[number], number>('SELECT seq FROM snapshots WHERE run = ? ORDER BY seq').pluck().all(run);
}

function eventsSql(byTypes: boolean, byOp: boolean): string {
  return (
    'SELECT id, run, seq, op, type, v, payload, hash FROM events WHERE run = ? AND seq >= ? AND seq <= ?' +
    (byTypes ? ' AND type IN (SELECT value FROM json_each(?))' : '') +
    (byOp ? ' AND op = ?' : '') +
    ` ORDER BY seq LIMIT ${EVENT_CHUNK}`
  );
}

/** The seq range of an op: its ops row, or for the op still open (no row yet) everything after the last row. */
function opRange(conn: Connection, run: number, op: number): SeqRange | undefined {
  const row = readOp(conn, run, op);
  if (row !== undefined) return [row.firstSeq, row.lastSeq];
  const last = conn
    .prepare<[number], { idx: number; last_seq: number }>(
      'SELECT idx, last_seq FROM ops WHERE run = ? ORDER BY idx DESC LIMIT 1',
    )
    .get(run);
  return openOpRange(op, last === undefined ? undefined : { idx: last.idx, lastSeq: last.last_seq });
}

/** Seq ranges within [from, to] of the blocks holding any of `types`; adjacent blocks merged. */
function blockRanges(conn: Connection, run: number, from: number, to: number, types: readonly string[]): SeqRange[] {
  const start =
    conn
      .prepare<[number, number], number>('SELECT max(first_seq) FROM event_blocks WHERE run = ? AND first_seq <= ?')
      .pluck()
      .get(run, from) ?? from;
  const blocks = conn
    .prepare<[number, number, number], { first_seq: number; last_seq: number; types: string }>(
      'SELECT first_seq, last_seq, types FROM event_blocks WHERE run = ? AND first_seq >= ? AND first_seq <= ? ORDER BY first_seq',
    )
    .iterate(run, start, to);
  return typeRanges(run, blocks, from, to, types);
}

export function* readEvents(
  conn: Connection,
  run: number,
  filter: EventFilter = {},
): Generator<StoredEvent, void, undefined> {
  const window = seqWindow(filter, filter.op === undefined ? ALL_SEQS : opRange(conn, run, filter.op));
  if (window === undefined) return;
  const [from, to] = window;
  const byOp = filter.op !== undefined;
  const types = filter.types;
  if (types === undefined) {
    yield* scan(conn, run, from, to, null, byOp ? filter.op : undefined);
    return;
  }
  if (types.length === 0) return;
  // The zone map is read up front (one row per batch, a few KiB per million events), then released.
  const typesJson = JSON.stringify(types);
  for (const [first, last] of blockRanges(conn, run, from, to, types)) {
    yield* scan(conn, run, first, last, typesJson, byOp ? filter.op : undefined);
  }
}

function* scan(
  conn: Connection,
  run: number,
  from: number,
  to: number,
  typesJson: string | null,
  op: number | undefined,
): Generator<StoredEvent, void, undefined> {
  const statement = conn.prepare<unknown[], StoredEvent>(eventsSql(typesJson !== null, op !== undefined));
  const params: unknown[] = [run, from, to];
  if (typesJson !== null) params.push(typesJson);
  if (op !== undefined) params.push(op);
  for (;;) {
    // better-sqlite3 binds an array argument element by element, as if each were an argument.
    const rows = statement.all(params);
    for (const row of rows) {
      checkEventRow(run, row);
      yield row;
    }
    const last = rows[rows.length - 1];
    if (rows.length < EVENT_CHUNK || last === undefined) return;
    params[1] = last.seq + 1;
  }
}

/**
 * Events from..to as replay rows, EVENT_CHUNK at a time (see Store.replayRows). Rows come back as arrays
 * (better-sqlite3's raw mode): building the objects here costs half of what the driver's named rows do.
 */
export function* readReplayRows(
  conn: Connection,
  run: number,
  from: number,
  to: number,
): Generator<ReplayRow[], void, undefined> {
  const statement = conn
    .prepare<[number, number, number], unknown[]>(
      `SELECT seq, op, payload FROM events WHERE run = ? AND seq >= ? AND seq <= ? ORDER BY seq LIMIT ${EVENT_CHUNK}`,
    )
    .raw();
  for (let next = Math.max(1, from); next <= to;) {
    const rows = statement.all(run, next, to);
    const chunk = rows.map(([seq, op, payload]) => replayRow(run, seq, op, payload));
    if (chunk.length > 0) yield chunk;
    const last = chunk[chunk.length - 1];
    if (chunk.length < EVENT_CHUNK || last === undefined) return;
    next = last.seq + 1;
  }
}

/**
 * Payloads of events from..to, a seq range of REPLAY_CHUNK at a time (see Store.replayPayloads). One
 * plucked column by range: a third of the cost of the seq, op, payload rows of readReplayRows.
 */
export function* readReplayPayloads(
  conn: Connection,
  run: number,
  from: number,
  to: number,
): Generator<string[], void, undefined> {
  const statement = conn
    .prepare<[number, number, number], unknown>(
      'SELECT payload FROM events WHERE run = ? AND seq >= ? AND seq <= ? ORDER BY seq',
    )
    .pluck();
  for (let next = Math.max(1, from); next <= to;) {
    const end = Math.min(to, next + REPLAY_CHUNK - 1);
    const payloads = statement.all(run, next, end);
    checkPayloads(run, next, payloads);
    if (payloads.length > 0) yield payloads;
    if (payloads.length < end - next + 1) {
      const max = conn
        .prepare<[number, number, number], { m: number | null }>(
          'SELECT max(seq) AS m FROM events WHERE run = ? AND seq >= ? AND seq <= ?',
        )
        .get(run, next, to);
      checkShortChunk(run, next, payloads.length, max?.m ?? null);
      return;
    }
    next = end + 1;
  }
}
