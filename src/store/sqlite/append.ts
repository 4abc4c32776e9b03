// SPDX-License-Identifier: GPL-2.0-only
/**
 * Appending a run to SQLite: the SQL and the transactions of the writer of ../run-writer.ts, which holds
 * the checks, the hash chains and the batches. beginRun inserts the run row. The first batch a run cuts
 * starts its writer thread (writer-thread.ts), which commits every batch of the run, each in one
 * IMMEDIATE transaction, while the caller goes on appending; the append that cuts a batch waits while the
 * thread holds MAX_IN_FLIGHT batches, and `unsettled` turns true when one of them failed. A run that never cuts a batch, and a store in memory (no
 * other connection reaches it), commit on the caller's thread.
 *
 * Failure contract: a batch is committed whole or not at all, and nothing after a failed batch is. After a
 * failed commit the writer's chain state goes back to the last committed batch and it refuses further
 * rows; the error names the op where the failed batch was cut; the run stays 'running' unless the caller
 * records finish('failed'). A process that dies leaves the run 'running' with whole batches.
 *
 * Speed (the goal is 0.7 of a plain batched single-row INSERT loop): events are bound INSERT_CHUNK rows per
 * statement, which makes the inserts themselves faster than that loop; each batch writes one event_blocks
 * row (the types it holds) instead of a type index updated row by row; and the inserts run beside the model.
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
import type { Connection, Transaction, WriterHome } from './connection.js';
import { describeCause } from './cause.js';
import { StoreError } from '../errors.js';
import type { BeginRunOptions, FinishSummary, RunInfo, RunWriter, WriteStep } from '../types.js';
import type { Reply } from './thread-body.js';
import { WriterThread, threadError } from './writer-thread.js';

// Rows per multi-row INSERT; 256 * 10 bound parameters stay far below SQLite's limit of 32766. On the
// events of a replay 256 rows a statement insert about 7% faster than 32, and larger ones no faster
// (bench/README.md, B1). The last chunk of a run is cut into a multiple of 32 rows and the rest.
const INSERT_CHUNK = 256;
const TAIL_ROWS = 32;
/**
 * Batches the writer thread may hold before append waits: one being committed and one queued behind it,
 * while the model fills a third (about 1.3 MB of rows each at 4,096 events): memory stays bounded.
 */
const MAX_IN_FLIGHT = 2;

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
  readonly #hooked: boolean;
  /** Started at the first batch cut by append or endOp; until then (and in memory) batches commit here. */
  #thread: WriterThread | null = null;
  /** Batches handed to the thread and not answered yet, oldest first. */
  #inFlight: Batch[] = [];
  /** Failures of the thread's batches this writer has handled (the epoch of the next job). */
  #failures = 0;
  /** A failed batch's error not thrown yet: the next call that waits throws it. */
  #failure: StoreError | null = null;
  /** What the onWriteStep hook threw at the step the thread waits on. */
  #hookError: unknown = null;
  /** The thread's time on this writer's batches (threadSeconds). */
  #threadNs = 0;
  /** Of that time, on a CPU and waiting for one (threadCpuSeconds, threadWaitSeconds); null: not known. */
  #threadSched: { cpuNs: number; waitNs: number } | null = { cpuNs: 0, waitNs: 0 };

  constructor(conn: Connection, run: number, start: NewRun) {
    super(run, start, DIALECT);
    this.#conn = conn;
    this.#hooked = start.hooked;
    this.#commitTx = conn.raw.transaction((batch: Batch, finish: FinishRow | null) => this.#write(batch, finish));
  }

  get threadSeconds(): number {
    return this.#threadNs / 1e9;
  }

  get threadCpuSeconds(): number | undefined {
    return this.#threadSched === null ? undefined : this.#threadSched.cpuNs / 1e9;
  }

  get threadWaitSeconds(): number | undefined {
    return this.#threadSched === null ? undefined : this.#threadSched.waitNs / 1e9;
  }

  /**
   * True when the thread failed a batch: settle() then throws its error. Room for the next batch is waited
   * for inside append (batchFilled), and only until the oldest batch is done, so the thread never idles
   * while the caller waits for a whole queue.
   */
  get unsettled(): boolean {
    const thread = this.#thread;
    return thread !== null && thread.failures > this.#failures;
  }

  async settle(): Promise<void> {
    if (this.#failure === null) this.checkOpen();
    await this.#thread?.drained();
    this.#throwFailure();
  }

  async flush(): Promise<void> {
    if (this.#thread === null) {
      this.checkOpen();
      if (this.buffered) this.#commitHere(this.cutBatch(), null);
      return;
    }
    if (this.buffered) this.batchFilled();
    await this.settle();
  }

  protected batchFilled(): void {
    const home = this.#conn.home;
    if (this.#thread === null && home === null) {
      this.#commitHere(this.cutBatch(), null);
      return;
    }
    this.#thread ??= this.#startThread(home as WriterHome);
    const thread = this.#thread;
    // Bounded memory: with MAX_IN_FLIGHT batches on the thread, wait here until the older one is done.
    if (this.#inFlight.length >= MAX_IN_FLIGHT) thread.waitSync(() => this.#inFlight.length < MAX_IN_FLIGHT);
    this.#throwFailure();
    this.checkOpen();
    this.#post(this.cutBatch(), null);
  }

  async finish(status: 'complete' | 'failed', summary: FinishSummary): Promise<void> {
    const thread = this.#thread;
    if (thread === null) {
      const finish = this.finishRow(status, summary);
      this.#commitHere(this.cutBatch(), finish);
      this.finished();
      return;
    }
    await thread.drained();
    // A run being marked failed is marked so whatever else failed meanwhile; a complete one is not.
    const failure = this.#failure;
    this.#failure = null;
    if (failure !== null && status === 'complete') throw failure;
    const finish = this.finishRow(status, summary);
    this.#post(this.cutBatch(), finish);
    await thread.drained();
    this.#throwFailure();
    this.finished();
    void thread.close();
  }

  #startThread(home: WriterHome): WriterThread {
    const thread = new WriterThread(home, this.#hooked, (reply) => this.#answer(reply));
    this.#conn.threads.add(thread);
    void thread.ended.then(() => this.#conn.threads.delete(thread));
    return thread;
  }

  #post(batch: Batch, finish: FinishRow | null): void {
    const thread = this.#thread as WriterThread;
    this.#inFlight.push(batch);
    thread.post(this.beginBatch(), this.#failures, this.statements(batch, finish));
  }

  /** A reply of the thread, in the order of the batches. */
  #answer(reply: Reply): void {
    if (reply.t === 'step') {
      try {
        this.onWriteStep(reply.step as WriteStep, reply.batch);
        this.#thread?.answerStep(true);
      } catch (error) {
        this.#hookError = error;
        this.#thread?.answerStep(false);
      }
      return;
    }
    const batch = this.#inFlight.shift() as Batch;
    if (reply.t !== 'dropped') {
      this.#threadNs += reply.ns;
      const sched = this.#threadSched;
      if (sched !== null && reply.sched !== null) {
        sched.cpuNs += reply.sched.cpuNs;
        sched.waitNs += reply.sched.waitNs;
      } else this.#threadSched = null;
    }
    if (reply.t === 'done') this.committed(batch, false);
    else if (reply.t === 'failed') {
      this.#failures += 1;
      this.#failure = this.failed(this.#causeOf(reply), batch);
    }
  }

  #causeOf(reply: Extract<Reply, { t: 'failed' }>): unknown {
    if (reply.hook) return this.#hookError;
    if (reply.error !== null) return threadError(reply.error);
    try {
      checkRunFinished(this.run, reply.finishChanged);
    } catch (error) {
      return error;
    }
    return new StoreError('write-failed', `run ${this.run}: the writer thread failed without a cause`, {});
  }

  #throwFailure(): void {
    const failure = this.#failure;
    if (failure === null) return;
    this.#failure = null;
    throw failure;
  }

  #commitHere(batch: Batch, finish: FinishRow | null): void {
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
