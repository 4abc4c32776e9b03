// SPDX-License-Identifier: GPL-2.0-only
/**
 * Appending a run: beginRun inserts the run row, the RunWriter buffers events, op rows and snapshots and
 * commits them one batch per transaction, computing the hash chains (chain.ts) as rows arrive.
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

import { encodeJson } from '../../lib/codec.js';
import { DIGEST_HEX, HASH_HEX, eventHash, genesisHash, opHash } from '../chain.js';
import { type ChainState, checkEventRow, checkOpRow, checkSnapshotSeq, genesisChainState } from '../writer-checks.js';
import type { Connection, Transaction } from './connection.js';
import { StoreError } from '../errors.js';
import { describeCause } from './cause.js';
import type { BeginRunOptions, EventRow, FinishSummary, OpRow, RunInfo, RunWriter, WriteStep } from '../types.js';

export const DEFAULT_BATCH_SIZE = 4096;

// Rows per multi-row INSERT; 32 * 10 bound parameters stay far below SQLite's limit of 32766.
const INSERT_CHUNK = 32;

const EVENT_COLUMNS = ['run', 'seq', 'op', 'type', 'v', 'payload', 'hash'] as const;
const OP_COLUMNS = ['run', 'idx', 'line', 'op', 'errno', 'result', 'first_seq', 'last_seq', 'digest', 'hash'] as const;

const insertSqlCache = new Map<string, string>();
function insertSql(table: string, columns: readonly string[], rows: number): string {
  const key = `${table}/${rows}`;
  let sql = insertSqlCache.get(key);
  if (sql === undefined) {
    const row = `(${columns.map(() => '?').join(', ')})`;
    sql = `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${Array<string>(rows).fill(row).join(', ')}`;
    insertSqlCache.set(key, sql);
  }
  return sql;
}

/** Inserts rows given as flat bound parameters, INSERT_CHUNK rows per statement; `before` runs before each. */
function insertRows(
  conn: Connection,
  table: string,
  columns: readonly string[],
  params: unknown[],
  before: () => void,
): void {
  const width = INSERT_CHUNK * columns.length;
  let at = 0;
  if (params.length >= width) {
    const chunk = conn.prepare(insertSql(table, columns, INSERT_CHUNK));
    for (; at + width <= params.length; at += width) {
      before();
      chunk.run(params.slice(at, at + width));
    }
  }
  if (at < params.length) {
    before();
    conn.prepare(insertSql(table, columns, (params.length - at) / columns.length)).run(params.slice(at));
  }
}

const EVENT_CHUNK_WIDTH = INSERT_CHUNK * EVENT_COLUMNS.length;

const INSERT_RUN = `INSERT INTO runs (trace_path, trace_sha256, trace_text, variant, flags, fault_plan, header, status, created_seq)
  VALUES (?, ?, ?, ?, ?, ?, ?, 'running', (SELECT coalesce(max(id), 0) FROM events))`;
const INSERT_SNAPSHOT = 'INSERT INTO snapshots (run, seq, op, digest, format, state) VALUES (?, ?, ?, ?, ?, ?)';
const INSERT_BLOCK = 'INSERT INTO event_blocks (run, first_seq, last_seq, types) VALUES (?, ?, ?, ?)';
const FINISH_RUN = `UPDATE runs SET status = ?, error = ?, error_op = ?, error_line = ?, event_count = ?, op_count = ?,
  head_hash = ?, ops_head_hash = ?, final_digest = ? WHERE id = ? AND status = 'running'`;

const NO_HOOK = (): void => undefined;

/** Inserts the run as 'running' in its own transaction and returns its writer. */
export function beginRun(conn: Connection, info: RunInfo, options: BeginRunOptions = {}): RunWriter {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new StoreError('bad-argument', `batch size must be a positive integer, not ${batchSize}`, { batchSize });
  }
  if (!HASH_HEX.test(info.traceSha256)) {
    throw new StoreError('bad-argument', `trace sha256 must be 64 lowercase hex digits, not '${info.traceSha256}'`, {
      traceSha256: info.traceSha256,
    });
  }
  const flags = encodeJson(info.flags);
  const faultPlan = encodeJson(info.faultPlan ?? null);
  const header = encodeJson(info.header ?? null);
  let run: number;
  try {
    const result = conn
      .prepare(INSERT_RUN)
      .run(info.tracePath, info.traceSha256, info.traceText, info.variant, flags, faultPlan, header);
    run = Number(result.lastInsertRowid);
  } catch (error) {
    throw new StoreError('write-failed', `cannot record a new run: ${describeCause(error)}`, {}, { cause: error });
  }
  return new SqliteRunWriter(
    conn,
    run,
    batchSize,
    genesisHash(info.traceSha256, info.variant, flags, faultPlan),
    options.onWriteStep ?? NO_HOOK,
  );
}

interface FinishRow {
  status: 'complete' | 'failed';
  error: string | null;
  errorOp: number | null;
  errorLine: number | null;
  finalDigest: string | null;
}

class SqliteRunWriter implements RunWriter {
  readonly run: number;
  readonly batchSize: number;
  readonly #conn: Connection;
  #live: ChainState;
  #committed: ChainState;
  /**
   * Bound parameters of the buffered events, EVENT_COLUMNS per row, already cut into the arrays that the
   * INSERT_CHUNK-row statement binds (#chunk is the one being filled, #chunkAt its length).
   */
  #chunks: unknown[][] = [];
  #chunk: unknown[] = new Array<unknown>(EVENT_CHUNK_WIDTH);
  #chunkAt = 0;
  #eventCount = 0;
  /** Types of the buffered events, for the batch's event_blocks row. */
  #types = new Set<string>();
  /** Bound parameters of the buffered op rows, OP_COLUMNS per row. */
  #ops: unknown[] = [];
  #opCount = 0;
  #snapshots: unknown[][] = [];
  #state: 'open' | 'broken' | 'finished' = 'open';
  #failure: StoreError | undefined;
  readonly #commitTx: Transaction<(finish: FinishRow | null) => void>;
  readonly #onWriteStep: (step: WriteStep, batch: number) => void;
  /** Batch commits begun so far (for onWriteStep). */
  #batches = 0;

  constructor(
    conn: Connection,
    run: number,
    batchSize: number,
    genesis: string,
    onWriteStep: (step: WriteStep, batch: number) => void,
  ) {
    this.#conn = conn;
    this.#onWriteStep = onWriteStep;
    this.run = run;
    this.batchSize = batchSize;
    this.#live = genesisChainState(genesis);
    this.#committed = { ...this.#live };
    this.#commitTx = conn.raw.transaction((finish: FinishRow | null) => this.#write(finish));
  }

  get seq(): number {
    return this.#live.seq;
  }

  get head(): string {
    return this.#live.head;
  }

  append(row: EventRow): void {
    this.#checkOpen();
    const live = this.#live;
    checkEventRow(this.run, live, row);
    const hash = eventHash(live.head, row.seq, row.op, row.v, row.type, row.payload);
    const chunk = this.#chunk;
    let at = this.#chunkAt;
    chunk[at++] = this.run;
    chunk[at++] = row.seq;
    chunk[at++] = row.op;
    chunk[at++] = row.type;
    chunk[at++] = row.v;
    chunk[at++] = row.payload;
    chunk[at++] = hash;
    if (at === EVENT_CHUNK_WIDTH) {
      this.#chunks.push(chunk);
      this.#chunk = new Array<unknown>(EVENT_CHUNK_WIDTH);
      at = 0;
    }
    this.#chunkAt = at;
    this.#types.add(row.type);
    live.seq = row.seq;
    live.head = hash;
    if (++this.#eventCount >= this.batchSize) this.#flushNow();
  }

  endOp(row: OpRow): void {
    this.#checkOpen();
    const live = this.#live;
    checkOpRow(this.run, live, row);
    const hash = opHash(live.opsHead, row);
    this.#ops.push(
      this.run,
      row.index,
      row.line,
      row.op,
      row.errno,
      row.result,
      row.firstSeq,
      row.lastSeq,
      row.digest,
      hash,
    );
    live.opsHead = hash;
    live.opsEnded++;
    live.lastOpLastSeq = row.lastSeq;
    // Op rows ride with their events; only a long run of ops without events fills a batch by itself.
    if (++this.#opCount >= this.batchSize) this.#flushNow();
  }

  putSnapshot(seq: number, op: number, digest: string, state: Uint8Array, format: number): void {
    this.#checkOpen();
    const live = this.#live;
    checkSnapshotSeq(this.run, live, seq);
    // better-sqlite3 binds Buffers as blobs; wrap a plain Uint8Array without copying.
    const blob = Buffer.isBuffer(state) ? state : Buffer.from(state.buffer, state.byteOffset, state.byteLength);
    this.#snapshots.push([this.run, seq, op, digest, format, blob]);
    live.lastSnapshotSeq = seq;
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

  #flushNow(): void {
    this.#checkOpen();
    if (this.#eventCount === 0 && this.#opCount === 0 && this.#snapshots.length === 0) return;
    this.#commit(null);
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- a throw must become a rejection
  async finish(status: 'complete' | 'failed', summary: FinishSummary): Promise<void> {
    // After a failed commit the run may still be recorded as failed, never as complete.
    if (!(this.#state === 'broken' && status === 'failed')) this.#checkOpen();
    // A failed run may have stopped before any state digest existed; a complete one always has one.
    const finalDigest = summary.finalDigest ?? null;
    if (finalDigest === null ? status === 'complete' : !DIGEST_HEX.test(finalDigest)) {
      throw new StoreError(
        'bad-argument',
        `run ${this.run}: final digest must be 16 hex digits, not '${finalDigest ?? ''}'`,
        {
          run: this.run,
          finalDigest,
        },
      );
    }
    this.#commit({
      status,
      error: summary.error ?? null,
      errorOp: summary.errorOp ?? null,
      errorLine: summary.errorLine ?? null,
      finalDigest,
    });
    this.#state = 'finished';
  }

  #checkOpen(): void {
    if (this.#state === 'finished') {
      throw new StoreError('writer-closed', `run ${this.run}: the writer has finished`, { run: this.run });
    }
    if (this.#state === 'broken') {
      throw new StoreError(
        'writer-broken',
        `run ${this.run}: an earlier batch failed to commit: ${this.#failure?.message ?? ''}`,
        {
          run: this.run,
        },
        { cause: this.#failure },
      );
    }
  }

  #commit(finish: FinishRow | null): void {
    try {
      // IMMEDIATE: take the write lock up front, so another process waits (busy timeout) instead of failing.
      this.#commitTx.immediate(finish);
    } catch (error) {
      const failure =
        error instanceof StoreError
          ? error
          : new StoreError(
              'write-failed',
              `run ${this.run}: batch of events ${this.#committed.seq + 1}..${this.#live.seq} not written: ${describeCause(error)}`,
              { run: this.run, firstSeq: this.#committed.seq + 1, lastSeq: this.#live.seq },
              { cause: error },
            );
      this.#live = { ...this.#committed };
      this.#clearBuffers();
      this.#state = 'broken';
      this.#failure = failure;
      throw failure;
    }
    this.#committed = { ...this.#live };
    this.#clearBuffers();
    this.#onWriteStep('commit', this.#batches);
  }

  #clearBuffers(): void {
    this.#chunks = [];
    this.#chunkAt = 0;
    this.#eventCount = 0;
    this.#types.clear();
    this.#ops.length = 0;
    this.#opCount = 0;
    this.#snapshots = [];
  }

  /**
   * Runs inside the batch transaction: any throw rolls the whole batch back. The events of a batch, its
   * event_blocks row, its op rows, snapshots and the finish row commit together or not at all, so a reader
   * (or a writer killed at any statement) never sees events without their block.
   */
  #write(finish: FinishRow | null): void {
    const conn = this.#conn;
    const batch = ++this.#batches;
    this.#onWriteStep('begin', batch);
    const step = (name: WriteStep) => () => this.#onWriteStep(name, batch);
    const beforeEvents = step('events');
    if (this.#chunks.length > 0) {
      const insertChunk = conn.prepare(insertSql('events', EVENT_COLUMNS, INSERT_CHUNK));
      for (const chunk of this.#chunks) {
        beforeEvents();
        insertChunk.run(chunk);
      }
    }
    insertRows(conn, 'events', EVENT_COLUMNS, this.#chunk.slice(0, this.#chunkAt), beforeEvents);
    if (this.#eventCount > 0) {
      const types = JSON.stringify([...this.#types].sort());
      this.#onWriteStep('block', batch);
      conn.prepare(INSERT_BLOCK).run(this.run, this.#committed.seq + 1, this.#live.seq, types);
    }
    insertRows(conn, 'ops', OP_COLUMNS, this.#ops, step('ops'));
    if (this.#snapshots.length > 0) {
      const insertSnapshot = conn.prepare(INSERT_SNAPSHOT);
      for (const snapshot of this.#snapshots) {
        this.#onWriteStep('snapshots', batch);
        insertSnapshot.run(snapshot);
      }
    }
    if (finish !== null) {
      const live = this.#live;
      this.#onWriteStep('finish', batch);
      const changed = conn
        .prepare(FINISH_RUN)
        .run(
          finish.status,
          finish.error,
          finish.errorOp,
          finish.errorLine,
          live.seq,
          live.opsEnded,
          live.head,
          live.opsHead,
          finish.finalDigest,
          this.run,
        ).changes;
      if (changed !== 1) {
        throw new StoreError('write-failed', `run ${this.run} is no longer 'running': finished by another writer?`, {
          run: this.run,
        });
      }
    }
  }
}
