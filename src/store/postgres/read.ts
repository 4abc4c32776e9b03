// SPDX-License-Identifier: GPL-2.0-only
/**
 * Reading runs, ops, events and snapshots back from PostgreSQL: the reads of sqlite/read.ts with the same
 * row checks (../rows.ts), on pooled connections. Each statement runs in READ COMMITTED, so it sees whole
 * committed batches only. Events come in keyset chunks (seq > last seen), no cursor held between them;
 * filters by op and type become seq ranges (the op's row, the event_blocks that hold the types), as there.
 */

import type pg from 'pg';
import { z } from 'zod';
import { StoreError } from '../errors.js';
import { opRowSchema, parseRow, runRowSchema, snapshotRowSchema } from '../rows.js';
import type { EventFilter, RunRow, Snapshot, StoredEvent, StoredOp } from '../types.js';

const EVENT_CHUNK = 1024;
const NO_LIMIT = Number.MAX_SAFE_INTEGER;

const RUN_COLUMNS = `id, trace_path, trace_sha256, variant, flags, fault_plan, header, status, error, head_hash, ops_head_hash,
  final_digest, created_seq, ERROR_PLACE,
  CASE WHEN status = 'running' THEN (SELECT coalesce(max(seq), 0) FROM events e WHERE e.run = runs.id) ELSE event_count END AS event_count,
  CASE WHEN status = 'running' THEN (SELECT coalesce(max(idx) + 1, 0) FROM ops o WHERE o.run = runs.id) ELSE op_count END AS op_count`;

function runColumns(migrations: ReadonlySet<string>): string {
  return RUN_COLUMNS.replace(
    'ERROR_PLACE',
    migrations.has('0002_run_failure')
      ? 'error_op, error_line'
      : 'NULL::integer AS error_op, NULL::integer AS error_line',
  );
}

async function rows(pool: pg.Pool, text: string, values: unknown[] = []): Promise<Record<string, unknown>[]> {
  return (await pool.query<Record<string, unknown>>(text, values)).rows;
}

export async function readRuns(pool: pg.Pool, migrations: ReadonlySet<string>): Promise<RunRow[]> {
  return (await rows(pool, `SELECT ${runColumns(migrations)} FROM runs ORDER BY id`)).map((row) =>
    parseRow(runRowSchema, row, 'runs row'),
  );
}

export async function readRun(pool: pg.Pool, migrations: ReadonlySet<string>, id: number): Promise<RunRow | undefined> {
  const [row] = await rows(pool, `SELECT ${runColumns(migrations)} FROM runs WHERE id = $1`, [id]);
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

type SeqRange = readonly [number, number];

async function opRange(pool: pg.Pool, run: number, op: number): Promise<SeqRange | undefined> {
  const row = await readOp(pool, run, op);
  if (row !== undefined) return [row.firstSeq, row.lastSeq];
  const [last] = await rows(pool, 'SELECT idx, last_seq FROM ops WHERE run = $1 ORDER BY idx DESC LIMIT 1', [run]);
  const ended = last === undefined ? 0 : Number(last['idx']) + 1;
  return op >= ended ? [(last === undefined ? 0 : Number(last['last_seq'])) + 1, NO_LIMIT] : undefined;
}

async function typeRanges(
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
  const wanted = new Set(types);
  const ranges: [number, number][] = [];
  for (const block of blocks) {
    const firstSeq = Number(block['first_seq']);
    const blockTypes = parseRow(
      z.array(z.string()),
      JSON.parse(String(block['types'])),
      `event block ${firstSeq} of run ${run}`,
    );
    if (!blockTypes.some((type) => wanted.has(type))) continue;
    const first = Math.max(firstSeq, from);
    const last = Math.min(Number(block['last_seq']), to);
    if (first > last) continue;
    const previous = ranges[ranges.length - 1];
    if (previous !== undefined && previous[1] + 1 === first) previous[1] = last;
    else ranges.push([first, last]);
  }
  return ranges;
}

export async function* readEvents(
  pool: pg.Pool,
  run: number,
  filter: EventFilter = {},
): AsyncGenerator<StoredEvent, void, undefined> {
  let from = Math.max(1, filter.fromSeq ?? 1);
  let to = Math.min(NO_LIMIT, filter.toSeq ?? NO_LIMIT);
  if (filter.op !== undefined) {
    const range = await opRange(pool, run, filter.op);
    if (range === undefined) return;
    from = Math.max(from, range[0]);
    to = Math.min(to, range[1]);
  }
  if (from > to) return;
  const types = filter.types;
  if (types === undefined) {
    yield* scan(pool, run, from, to, null, filter.op);
    return;
  }
  if (types.length === 0) return;
  for (const [first, last] of await typeRanges(pool, run, from, to, types)) {
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
      if (typeof row['payload'] !== 'string' || typeof row['seq'] !== 'number' || typeof row['type'] !== 'string') {
        throw new StoreError('bad-row', `run ${run}: event row ${String(row['id'])} has a column of the wrong type`, {
          run,
          id: row['id'],
        });
      }
      yield row as unknown as StoredEvent;
    }
    const last = chunk[chunk.length - 1];
    if (chunk.length < EVENT_CHUNK || last === undefined) return;
    params[1] = (last['seq'] as number) + 1;
  }
}
