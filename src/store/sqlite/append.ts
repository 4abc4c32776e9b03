// SPDX-License-Identifier: GPL-2.0-only
/**
 * Appending a run to SQLite: the SQL and the transaction of the writer of ../run-writer.ts, which holds
 * the checks, the hash chains and the batches. beginRun inserts the run row; a batch commits inside the
 * append (or endOp) that cuts it, in one IMMEDIATE transaction, so `unsettled` is always false.
 *
 * Failure contract: a batch is committed whole or not at all. After a failed commit the writer's chain
 * state goes back to the last committed batch and it refuses further rows; the run stays 'running' unless
 * the caller records finish('failed'). A process that dies leaves the run 'running' with whole batches.
 *
 * Speed (the goal is 0.7 of a plain batched single-row INSERT loop): events are bound INSERT_CHUNK rows per
 * statement, which makes the inserts themselves faster than that loop and buys back most of the sha256 per
 * event (about a third of our cost); each batch writes one event_blocks row (the types it holds) instead
 * of a type index updated row by row.
 */

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
import type { Connection, Transaction } from './connection.js';
import { describeCause } from './cause.js';
import type { BeginRunOptions, FinishSummary, RunInfo, RunWriter } from '../types.js';

// Rows per multi-row INSERT; 256 * 10 bound parameters stay far below SQLite's limit of 32766. On the
// events of a replay 256 rows a statement insert about 7% faster than 32, and larger ones no faster
// (bench/README.md, B1). The last chunk of a run is cut into a multiple of 32 rows and the rest.
const INSERT_CHUNK = 256;
const TAIL_ROWS = 32;

const INSERT_RUN = `INSERT INTO runs (trace_path, trace_sha256, trace_text, variant, flags, fault_plan, header, status, created_seq)
  VALUES (?, ?, ?, ?, ?, ?, ?, 'running', (SELECT coalesce(max(id), 0) FROM events))`;
const DIALECT: WriterDialect = {
  chunkRows: INSERT_CHUNK,
  tailRows: TAIL_ROWS,
  sql: writerSql(() => '?'),
  describeCause,
};

/** Inserts the run as 'running' in its own transaction and returns its writer. */
export function beginRun(conn: Connection, info: RunInfo, options: BeginRunOptions = {}): RunWriter {
  const start = newRun(info, options);
  let run: number;
  try {
    run = Number(conn.prepare(INSERT_RUN).run(start.params).lastInsertRowid);
  } catch (error) {
    throw runNotRecorded(error, describeCause);
  }
  return new SqliteRunWriter(conn, run, start);
}

class SqliteRunWriter extends BatchingRunWriter {
  readonly #conn: Connection;
  readonly #commitTx: Transaction<(batch: Batch, finish: FinishRow | null) => void>;

  constructor(conn: Connection, run: number, start: NewRun) {
    super(run, start, DIALECT);
    this.#conn = conn;
    this.#commitTx = conn.raw.transaction((batch: Batch, finish: FinishRow | null) => this.#write(batch, finish));
  }

  /** Always false: SQLite commits a batch inside the append that cuts it. */
  get unsettled(): boolean {
    return false;
  }

  settle(): Promise<void> {
    return Promise.resolve();
  }

  // SQLite commits synchronously: the promise settles with the commit already done (or failed).
  // eslint-disable-next-line @typescript-eslint/require-await -- a throw must become a rejection
  async flush(): Promise<void> {
    this.#flushNow();
  }

  protected batchFilled(): void {
    this.#flushNow();
  }

  #flushNow(): void {
    this.checkOpen();
    if (!this.buffered) return;
    this.#commit(this.cutBatch(), null);
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- a throw must become a rejection
  async finish(status: 'complete' | 'failed', summary: FinishSummary): Promise<void> {
    const finish = this.finishRow(status, summary);
    this.#commit(this.cutBatch(), finish);
    this.finished();
  }

  #commit(batch: Batch, finish: FinishRow | null): void {
    try {
      // IMMEDIATE: take the write lock up front, so another process waits (busy timeout) instead of failing.
      this.#commitTx.immediate(batch, finish);
    } catch (error) {
      throw this.failed(error, batch);
    }
    this.committed(batch);
  }

  /** Runs inside the batch transaction: any throw rolls the whole batch back. */
  #write(batch: Batch, finish: FinishRow | null): void {
    const number = this.beginBatch();
    this.onWriteStep('begin', number);
    for (const statement of this.statements(batch, finish)) {
      this.onWriteStep(statement.step, number);
      // Parameters as arguments, not one array: better-sqlite3 reads an array's elements one by one through
      // the V8 API, which made binding a 256-row INSERT about a quarter slower. A statement has at most
      // INSERT_CHUNK rows of 10 columns (2,560 arguments), far below the engine's limit.
      // eslint-disable-next-line no-restricted-syntax -- bounded by INSERT_CHUNK rows, see above
      const changed = this.#conn.prepare(statement.sql).run(...statement.params).changes;
      if (statement.step === 'finish') checkRunFinished(this.run, changed);
    }
  }
}
