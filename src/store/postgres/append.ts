// SPDX-License-Identifier: GPL-2.0-only
/**
 * Appending a run to PostgreSQL: the SQL and the transactions of the writer of ../run-writer.ts, which
 * holds the checks, the hash chains and the batches, as for SQLite (sqlite/append.ts): batches cut at the
 * same rows, each committed whole or not at all. Unlike SQLite's, a batch is one statement (BATCH below):
 * one round trip per batch.
 *
 * What differs: a commit is a round trip that cannot finish inside append. A cut batch is queued
 * (`unsettled`) and committed when the caller awaits settle(), flush() or finish(); replay/record.ts
 * awaits settle() after each op that cut one (docs/architecture.md, "awaitable batch boundaries").
 *
 * Many writers at once: each batch runs on a pooled connection in its own READ COMMITTED transaction. Runs
 * never interleave within a run (one writer per run, UNIQUE (run, seq) as the guard); global event ids
 * interleave across runs and are taken at insert, so they commit out of order; readers of the global order
 * read below the snapshot xmin (events.tx, see migrations/0001_initial.ts).
 */

import type pg from 'pg';
import {
  type Batch,
  BatchingRunWriter,
  type FinishRow,
  type NewRun,
  type WriterDialect,
  EVENT_COLUMNS,
  OP_COLUMNS,
  checkRunFinished,
  finishParams,
  newRun,
  runNotRecorded,
  writerSql,
} from '../run-writer.js';
import type { BeginRunOptions, FinishSummary, RunInfo, RunWriter } from '../types.js';
import { describePgCause } from './pool.js';

/** Rows per buffered chunk of events (the batch statement sends all chunks as one set of arrays). */
const INSERT_CHUNK = 4096;

/**
 * A whole batch in one statement: its events, event_blocks row, op rows and snapshots, each part an INSERT
 * of a data-modifying WITH, each column sent as one array parameter and unnested by the server. One round
 * trip and one parse per batch, whatever its size (and under PostgreSQL's 65,535 parameters at any batch
 * size); a single statement commits whole or not at all. The block row is written only when the batch has
 * events. The finish UPDATE rides in the same statement of the last batch (FINISH_BATCH), inside BEGIN and
 * COMMIT so that a run no longer 'running' rolls the batch back.
 */
const BATCH_PARTS = `WITH e AS (
    INSERT INTO events (run, seq, op, type, v, payload, hash)
    SELECT $1::bigint, * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[])
  ), b AS (
    INSERT INTO event_blocks (run, first_seq, last_seq, types)
    SELECT $1::bigint, $8::bigint, $9::bigint, $10::text WHERE cardinality($2::bigint[]) > 0
  ), o AS (
    INSERT INTO ops (run, idx, line, op, errno, result, first_seq, last_seq, digest, hash)
    SELECT $1::bigint, * FROM unnest($11::bigint[], $12::bigint[], $13::text[], $14::text[], $15::text[],
      $16::bigint[], $17::bigint[], $18::text[], $19::text[])
  ), s AS (
    INSERT INTO snapshots (run, seq, op, digest, format, state)
    SELECT $1::bigint, * FROM unnest($20::bigint[], $21::bigint[], $22::text[], $23::bigint[], $24::bytea[])
  )`;
const BATCH = { name: 'ioptrace_batch', text: `${BATCH_PARTS} SELECT 0 AS finished` };
const FINISH_BATCH = {
  name: 'ioptrace_finish_batch',
  text: `${BATCH_PARTS}, f AS (
    UPDATE runs SET status = $25, error = $26, error_op = $27, error_line = $28, event_count = $29, op_count = $30,
      head_hash = $31, ops_head_hash = $32, final_digest = $33 WHERE id = $1 AND status = 'running' RETURNING id
  ) SELECT count(*)::int AS finished FROM f`,
};

/** A PostgreSQL array literal of integers. */
function intArray(values: readonly number[]): string {
  return `{${values.join(',')}}`;
}

const ARRAY_SPECIALS = /[\\"]/g;
/** A PostgreSQL array literal of texts (null for NULL), each element quoted, `\\` and `"` escaped. */
function textArray(values: readonly (string | null)[]): string {
  let literal = '{';
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (i > 0) literal += ',';
    if (value === null || value === undefined) literal += 'NULL';
    else literal += `"${value.includes('\\') || value.includes('"') ? value.replace(ARRAY_SPECIALS, '\\$&') : value}"`;
  }
  return `${literal}}`;
}

/** The batch's rows, column by column, as BATCH's parameters $1..$24 (the base class buffers them by row). */
function batchParams(run: number, batch: Batch): unknown[] {
  const eventWidth = EVENT_COLUMNS.length;
  const e = {
    seq: [] as number[],
    op: [] as number[],
    type: [] as string[],
    v: [] as number[],
    payload: [] as string[],
    hash: [] as string[],
  };
  for (const chunk of batch.eventChunks) {
    for (let at = 0; at < chunk.length; at += eventWidth) {
      e.seq.push(chunk[at + 1] as number);
      e.op.push(chunk[at + 2] as number);
      e.type.push(chunk[at + 3] as string);
      e.v.push(chunk[at + 4] as number);
      e.payload.push(chunk[at + 5] as string);
      e.hash.push(chunk[at + 6] as string);
    }
  }
  const opWidth = OP_COLUMNS.length;
  const ops = batch.ops;
  const o = {
    idx: [] as number[],
    line: [] as number[],
    op: [] as string[],
    errno: [] as (string | null)[],
    result: [] as string[],
    firstSeq: [] as number[],
    lastSeq: [] as number[],
    digest: [] as string[],
    hash: [] as string[],
  };
  for (let at = 0; at < ops.length; at += opWidth) {
    o.idx.push(ops[at + 1] as number);
    o.line.push(ops[at + 2] as number);
    o.op.push(ops[at + 3] as string);
    o.errno.push(ops[at + 4] as string | null);
    o.result.push(ops[at + 5] as string);
    o.firstSeq.push(ops[at + 6] as number);
    o.lastSeq.push(ops[at + 7] as number);
    o.digest.push(ops[at + 8] as string);
    o.hash.push(ops[at + 9] as string);
  }
  const s = {
    seq: [] as number[],
    op: [] as number[],
    digest: [] as string[],
    format: [] as number[],
    state: [] as Buffer[],
  };
  for (const row of batch.snapshots) {
    s.seq.push(row[1] as number);
    s.op.push(row[2] as number);
    s.digest.push(row[3] as string);
    s.format.push(row[4] as number);
    s.state.push(row[5] as Buffer);
  }
  return [
    run,
    intArray(e.seq),
    intArray(e.op),
    textArray(e.type),
    intArray(e.v),
    textArray(e.payload),
    textArray(e.hash),
    batch.firstSeq,
    batch.lastSeq,
    JSON.stringify(batch.types),
    intArray(o.idx),
    intArray(o.line),
    textArray(o.op),
    textArray(o.errno),
    textArray(o.result),
    intArray(o.firstSeq),
    intArray(o.lastSeq),
    textArray(o.digest),
    textArray(o.hash),
    intArray(s.seq),
    intArray(s.op),
    textArray(s.digest),
    intArray(s.format),
    s.state,
  ];
}

const INSERT_RUN = `INSERT INTO runs (trace_path, trace_sha256, trace_text, variant, flags, fault_plan, header, status, created_seq)
  VALUES ($1, $2, $3, $4, $5, $6, $7, 'running',
    (SELECT coalesce(max(id), 0) FROM events WHERE tx < pg_snapshot_xmin(pg_current_snapshot())))
  RETURNING id`;
const DIALECT: WriterDialect = {
  chunkRows: INSERT_CHUNK,
  tailRows: INSERT_CHUNK,
  // The shared per-table statements, kept for the interface; this writer sends BATCH instead.
  sql: writerSql((n) => `$${n}`),
  describeCause: describePgCause,
};

/** Inserts the run as 'running' (committed at once: autocommit) and returns its writer. */
export async function beginRun(pool: pg.Pool, info: RunInfo, options: BeginRunOptions = {}): Promise<RunWriter> {
  const start = newRun(info, options);
  let run: number;
  try {
    const result = await pool.query<{ id: number }>(INSERT_RUN, [...start.params]);
    run = Number(result.rows[0]?.id);
  } catch (error) {
    throw runNotRecorded(error, describePgCause);
  }
  return new PostgresRunWriter(pool, run, start);
}

class PostgresRunWriter extends BatchingRunWriter {
  readonly #pool: pg.Pool;
  /** Cut batches, oldest first. */
  #queue: Batch[] = [];

  constructor(pool: pg.Pool, run: number, start: NewRun) {
    super(run, start, DIALECT);
    this.#pool = pool;
  }

  get unsettled(): boolean {
    return this.#queue.length > 0;
  }

  protected batchFilled(): void {
    this.#cut();
  }

  async settle(): Promise<void> {
    this.checkOpen();
    await this.#commitQueue(null);
  }

  async flush(): Promise<void> {
    this.checkOpen();
    this.#cut();
    await this.#commitQueue(null);
  }

  async finish(status: 'complete' | 'failed', summary: FinishSummary): Promise<void> {
    const finish = this.finishRow(status, summary);
    this.#cut();
    // The finish row rides with the last batch; with nothing queued it is a transaction of its own.
    if (this.#queue.length === 0) this.#queue.push(this.cutBatch());
    await this.#commitQueue(finish);
    this.finished();
  }

  /** Queues the buffered rows as a batch (nothing when nothing is buffered). */
  #cut(): void {
    if (this.buffered) this.#queue.push(this.cutBatch());
  }

  /** Commits the queued batches in order; `finish` goes with the last one. */
  async #commitQueue(finish: FinishRow | null): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue[0] as Batch;
      const last = this.#queue.length === 1;
      try {
        await this.#write(batch, last ? finish : null);
      } catch (error) {
        this.#queue = [];
        throw this.failed(error, batch);
      }
      this.#queue.shift();
      this.committed(batch);
    }
  }

  /**
   * The batch in one statement (BATCH); the last batch of the run, with the finish row, in FINISH_BATCH
   * between BEGIN and COMMIT. The write steps of the batch's parts are reported before the statement that
   * carries them all: a writer stopped at any of them has sent nothing of the batch.
   */
  async #write(batch: Batch, finish: FinishRow | null): Promise<void> {
    const number = this.beginBatch();
    const params = batchParams(this.run, batch);
    const steps = (): void => {
      if (batch.eventCount > 0) {
        this.onWriteStep('events', number);
        this.onWriteStep('block', number);
      }
      if (batch.ops.length > 0) this.onWriteStep('ops', number);
      if (batch.snapshots.length > 0) this.onWriteStep('snapshots', number);
    };
    if (finish === null) {
      this.onWriteStep('begin', number);
      steps();
      await this.#pool.query({ ...BATCH, values: params });
      return;
    }
    const client = await this.#pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      this.onWriteStep('begin', number);
      steps();
      this.onWriteStep('finish', number);
      const finished = await client.query<{ finished: number }>({
        ...FINISH_BATCH,
        values: [...params, ...finishParams(finish, batch)],
      });
      checkRunFinished(this.run, finished.rows[0]?.finished ?? 0);
      await client.query('COMMIT');
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch {
        // The connection is gone; the server rolls the transaction back itself.
        broken = true;
      }
      throw error;
    } finally {
      client.release(broken);
    }
  }
}
