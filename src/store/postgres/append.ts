// SPDX-License-Identifier: GPL-2.0-only
/**
 * Appending a run to PostgreSQL: the SQL and the transactions of the writer of ../run-writer.ts, which
 * holds the checks, the hash chains and the batches, as for SQLite (sqlite/append.ts): batches cut at the
 * same rows, each committed in one transaction, whole or not at all.
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
  checkRunFinished,
  newRun,
  runNotRecorded,
  writerSql,
} from '../run-writer.js';
import type { BeginRunOptions, FinishSummary, RunInfo, RunWriter } from '../types.js';
import { describePgCause } from './pool.js';

/** Rows per multi-row INSERT: 4096 events bind 28,672 parameters, below PostgreSQL's 65,535. */
const INSERT_CHUNK = 4096;

const INSERT_RUN = `INSERT INTO runs (trace_path, trace_sha256, trace_text, variant, flags, fault_plan, header, status, created_seq)
  VALUES ($1, $2, $3, $4, $5, $6, $7, 'running',
    (SELECT coalesce(max(id), 0) FROM events WHERE tx < pg_snapshot_xmin(pg_current_snapshot())))
  RETURNING id`;
const DIALECT: WriterDialect = {
  chunkRows: INSERT_CHUNK,
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

  /** One transaction: the batch's events, block, op rows, snapshots and the finish row, or nothing. */
  async #write(batch: Batch, finish: FinishRow | null): Promise<void> {
    const number = this.beginBatch();
    const client = await this.#pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      this.onWriteStep('begin', number);
      for (const statement of this.statements(batch, finish)) {
        this.onWriteStep(statement.step, number);
        const result = await client.query(statement.sql, statement.params);
        if (statement.step === 'finish') checkRunFinished(this.run, result.rowCount);
      }
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
