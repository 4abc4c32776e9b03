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
import { StoreError } from '../errors.js';
import { opRowSchema, parseRow, runRowSchema, snapshotRowSchema } from '../rows.js';
import type { EventFilter, RunRow, Snapshot, StoredEvent, StoredOp } from '../types.js';

const EVENT_CHUNK = 1024;
const NO_LIMIT = Number.MAX_SAFE_INTEGER;

const RUN_COLUMNS = `id, trace_path, trace_sha256, variant, flags, fault_plan, header, status, error, head_hash, ops_head_hash,
  final_digest, created_seq, ERROR_PLACE,
  CASE WHEN status = 'running' THEN (SELECT coalesce(max(seq), 0) FROM events e WHERE e.run = runs.id) ELSE event_count END AS event_count,
  CASE WHEN status = 'running' THEN (SELECT coalesce(max(idx) + 1, 0) FROM ops o WHERE o.run = runs.id) ELSE op_count END AS op_count`;

/** The run columns of this schema: a store read without migration 0002 has no error_op, error_line. */
function runColumns(conn: Connection): string {
  return RUN_COLUMNS.replace(
    'ERROR_PLACE',
    conn.migrations.has('0002_run_failure') ? 'error_op, error_line' : 'NULL AS error_op, NULL AS error_line',
  );
}

export function readRuns(conn: Connection): RunRow[] {
  return conn
    .prepare<[]>(`SELECT ${runColumns(conn)} FROM runs ORDER BY id`)
    .all()
    .map((row) => parseRow(runRowSchema, row, 'runs row'));
}

export function readRun(conn: Connection, id: number): RunRow | undefined {
  const row = conn.prepare<[number]>(`SELECT ${runColumns(conn)} FROM runs WHERE id = ?`).get(id);
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

/** [first, last] inclusive. */
type SeqRange = readonly [number, number];

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
  const ended = last === undefined ? 0 : last.idx + 1;
  return op >= ended ? [(last?.last_seq ?? 0) + 1, NO_LIMIT] : undefined;
}

/** Seq ranges within [from, to] of the blocks holding any of `types`; adjacent blocks merged. */
function typeRanges(conn: Connection, run: number, from: number, to: number, types: readonly string[]): SeqRange[] {
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
  const wanted = new Set(types);
  const ranges: [number, number][] = [];
  for (const block of blocks) {
    const blockTypes = parseRow(
      z.array(z.string()),
      JSON.parse(block.types),
      `event block ${block.first_seq} of run ${run}`,
    );
    if (!blockTypes.some((type) => wanted.has(type))) continue;
    const first = Math.max(block.first_seq, from);
    const last = Math.min(block.last_seq, to);
    if (first > last) continue;
    const previous = ranges[ranges.length - 1];
    if (previous !== undefined && previous[1] + 1 === first) previous[1] = last;
    else ranges.push([first, last]);
  }
  return ranges;
}

export function* readEvents(
  conn: Connection,
  run: number,
  filter: EventFilter = {},
): Generator<StoredEvent, void, undefined> {
  let from = Math.max(1, filter.fromSeq ?? 1);
  let to = Math.min(NO_LIMIT, filter.toSeq ?? NO_LIMIT);
  const byOp = filter.op !== undefined;
  if (filter.op !== undefined) {
    const range = opRange(conn, run, filter.op);
    if (range === undefined) return;
    from = Math.max(from, range[0]);
    to = Math.min(to, range[1]);
  }
  if (from > to) return;
  const types = filter.types;
  if (types === undefined) {
    yield* scan(conn, run, from, to, null, byOp ? filter.op : undefined);
    return;
  }
  if (types.length === 0) return;
  // The zone map is read up front (one row per batch, a few KiB per million events), then released.
  const typesJson = JSON.stringify(types);
  for (const [first, last] of typeRanges(conn, run, from, to, types)) {
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
      if (typeof row.payload !== 'string' || typeof row.seq !== 'number' || typeof row.type !== 'string') {
        throw new StoreError('bad-row', `run ${run}: event row ${String(row.id)} has a column of the wrong type`, {
          run,
          id: row.id,
        });
      }
      yield row;
    }
    const last = rows[rows.length - 1];
    if (rows.length < EVENT_CHUNK || last === undefined) return;
    params[1] = last.seq + 1;
  }
}
