// SPDX-License-Identifier: GPL-2.0-only
/**
 * Appending a run to PostgreSQL. The writer keeps the contract of the SQLite one (sqlite/append.ts): the
 * same checks, the same hash chains, batches cut at the same rows (batchSize events or ops), each batch's
 * events, event_blocks row, op rows, snapshots (and, last, the finish row) committed in one transaction,
 * whole or not at all, and after a failed commit the chains go back to the last committed batch and the
 * writer refuses further rows.
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
import { encodeJson } from '../../lib/codec.js';
import { DIGEST_HEX, HASH_HEX, eventHash, genesisHash, opHash } from '../chain.js';
import { type ChainState, checkEventRow, checkOpRow, checkSnapshotSeq, genesisChainState } from '../writer-checks.js';
import { StoreError } from '../errors.js';
import type { BeginRunOptions, EventRow, FinishSummary, OpRow, RunInfo, RunWriter, WriteStep } from '../types.js';
import { describePgCause } from './pool.js';

export const DEFAULT_BATCH_SIZE = 4096;

const EVENT_COLUMNS = ['run', 'seq', 'op', 'type', 'v', 'payload', 'hash'] as const;
const OP_COLUMNS = ['run', 'idx', 'line', 'op', 'errno', 'result', 'first_seq', 'last_seq', 'digest', 'hash'] as const;

/** Rows per multi-row INSERT: 4096 events bind 28,672 parameters, below PostgreSQL's 65,535. */
const INSERT_CHUNK = 4096;

const insertSqlCache = new Map<string, string>();
/** INSERT INTO table (columns) VALUES ($1, ...), (...) for `rows` rows. */
export function insertSql(table: string, columns: readonly string[], rows: number): string {
  const key = `${table}/${rows}`;
  let text = insertSqlCache.get(key);
  if (text === undefined) {
    const width = columns.length;
    const values: string[] = [];
    for (let r = 0; r < rows; r++) {
      const cells: string[] = [];
      for (let c = 1; c <= width; c++) cells.push(`$${r * width + c}`);
      values.push(`(${cells.join(', ')})`);
    }
    text = `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values.join(', ')}`;
    insertSqlCache.set(key, text);
  }
  return text;
}

/** Inserts rows given as flat parameters, INSERT_CHUNK rows per statement; `before` runs before each. */
async function insertRows(
  client: pg.PoolClient,
  table: string,
  columns: readonly string[],
  params: unknown[],
  before: () => void,
): Promise<void> {
  const width = INSERT_CHUNK * columns.length;
  for (let at = 0; at < params.length; at += width) {
    const chunk = params.length - at > width ? params.slice(at, at + width) : at === 0 ? params : params.slice(at);
    before();
    await client.query(insertSql(table, columns, chunk.length / columns.length), chunk);
  }
}

const INSERT_RUN = `INSERT INTO runs (trace_path, trace_sha256, trace_text, variant, flags, fault_plan, header, status, created_seq)
  VALUES ($1, $2, $3, $4, $5, $6, $7, 'running',
    (SELECT coalesce(max(id), 0) FROM events WHERE tx < pg_snapshot_xmin(pg_current_snapshot())))
  RETURNING id`;
const INSERT_SNAPSHOT = 'INSERT INTO snapshots (run, seq, op, digest, format, state) VALUES ($1, $2, $3, $4, $5, $6)';
const INSERT_BLOCK = 'INSERT INTO event_blocks (run, first_seq, last_seq, types) VALUES ($1, $2, $3, $4)';
const FINISH_RUN = `UPDATE runs SET status = $1, error = $2, error_op = $3, error_line = $4, event_count = $5, op_count = $6,
  head_hash = $7, ops_head_hash = $8, final_digest = $9 WHERE id = $10 AND status = 'running'`;

const NO_HOOK = (): void => undefined;

/** Inserts the run as 'running' (committed at once: autocommit) and returns its writer. */
export async function beginRun(pool: pg.Pool, info: RunInfo, options: BeginRunOptions = {}): Promise<RunWriter> {
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
    const result = await pool.query<{ id: number }>(INSERT_RUN, [
      info.tracePath,
      info.traceSha256,
      info.traceText,
      info.variant,
      flags,
      faultPlan,
      header,
    ]);
    run = Number(result.rows[0]?.id);
  } catch (error) {
    throw new StoreError('write-failed', `cannot record a new run: ${describePgCause(error)}`, {}, { cause: error });
  }
  return new PostgresRunWriter(
    pool,
    run,
    batchSize,
    genesisHash(info.traceSha256, info.variant, flags, faultPlan),
    options.onWriteStep ?? NO_HOOK,
  );
}

/** One cut batch, waiting for its commit. */
interface Batch {
  /** Flat parameters, EVENT_COLUMNS per event. */
  events: unknown[];
  firstSeq: number;
  lastSeq: number;
  types: string[];
  /** Flat parameters, OP_COLUMNS per op row. */
  ops: unknown[];
  snapshots: unknown[][];
  /** The chains after this batch: what is committed once it is. */
  after: ChainState;
}

interface FinishRow {
  status: 'complete' | 'failed';
  error: string | null;
  errorOp: number | null;
  errorLine: number | null;
  finalDigest: string | null;
}

class PostgresRunWriter implements RunWriter {
  readonly run: number;
  readonly batchSize: number;
  readonly #pool: pg.Pool;
  #live: ChainState;
  #committed: ChainState;
  #events: unknown[] = [];
  #eventCount = 0;
  #firstSeq = 1;
  #types = new Set<string>();
  #ops: unknown[] = [];
  #opCount = 0;
  #snapshots: unknown[][] = [];
  /** Cut batches, oldest first. */
  #queue: Batch[] = [];
  #state: 'open' | 'broken' | 'finished' = 'open';
  #failure: StoreError | undefined;
  readonly #onWriteStep: (step: WriteStep, batch: number) => void;
  #batches = 0;

  constructor(
    pool: pg.Pool,
    run: number,
    batchSize: number,
    genesis: string,
    onWriteStep: (step: WriteStep, batch: number) => void,
  ) {
    this.#pool = pool;
    this.run = run;
    this.batchSize = batchSize;
    this.#onWriteStep = onWriteStep;
    this.#live = genesisChainState(genesis);
    this.#committed = { ...this.#live };
  }

  get seq(): number {
    return this.#live.seq;
  }

  get head(): string {
    return this.#live.head;
  }

  get unsettled(): boolean {
    return this.#queue.length > 0;
  }

  append(row: EventRow): void {
    this.#checkOpen();
    const live = this.#live;
    checkEventRow(this.run, live, row);
    const hash = eventHash(live.head, row.seq, row.op, row.v, row.type, row.payload);
    this.#events.push(this.run, row.seq, row.op, row.type, row.v, row.payload, hash);
    this.#types.add(row.type);
    live.seq = row.seq;
    live.head = hash;
    if (++this.#eventCount >= this.batchSize) this.#cut();
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
    if (++this.#opCount >= this.batchSize) this.#cut();
  }

  putSnapshot(seq: number, op: number, digest: string, state: Uint8Array, format: number): void {
    this.#checkOpen();
    const live = this.#live;
    checkSnapshotSeq(this.run, live, seq);
    // pg sends a Buffer as bytea; wrap a plain Uint8Array without copying.
    const blob = Buffer.isBuffer(state) ? state : Buffer.from(state.buffer, state.byteOffset, state.byteLength);
    this.#snapshots.push([this.run, seq, op, digest, format, blob]);
    live.lastSnapshotSeq = seq;
  }

  async settle(): Promise<void> {
    this.#checkOpen();
    await this.#commitQueue(null);
  }

  async flush(): Promise<void> {
    this.#checkOpen();
    this.#cut();
    await this.#commitQueue(null);
  }

  async finish(status: 'complete' | 'failed', summary: FinishSummary): Promise<void> {
    const recordingFailure = this.#state === 'broken' && status === 'failed';
    if (!recordingFailure) this.#checkOpen();
    const finalDigest = summary.finalDigest ?? null;
    if (finalDigest === null ? status === 'complete' : !DIGEST_HEX.test(finalDigest)) {
      throw new StoreError(
        'bad-argument',
        `run ${this.run}: final digest must be 16 hex digits, not '${finalDigest ?? ''}'`,
        { run: this.run, finalDigest },
      );
    }
    this.#cut();
    // The finish row rides with the last batch; with nothing queued it is a transaction of its own.
    if (this.#queue.length === 0) this.#queue.push(this.#emptyBatch());
    await this.#commitQueue({
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
        { run: this.run },
        { cause: this.#failure },
      );
    }
  }

  #emptyBatch(): Batch {
    const seq = this.#committed.seq;
    return { events: [], firstSeq: seq + 1, lastSeq: seq, types: [], ops: [], snapshots: [], after: { ...this.#live } };
  }

  /** Moves the buffered rows into a queued batch (nothing when nothing is buffered). */
  #cut(): void {
    if (this.#eventCount === 0 && this.#opCount === 0 && this.#snapshots.length === 0) return;
    this.#queue.push({
      events: this.#events,
      firstSeq: this.#firstSeq,
      lastSeq: this.#live.seq,
      types: [...this.#types].sort(),
      ops: this.#ops,
      snapshots: this.#snapshots,
      after: { ...this.#live },
    });
    this.#events = [];
    this.#eventCount = 0;
    this.#firstSeq = this.#live.seq + 1;
    this.#types = new Set();
    this.#ops = [];
    this.#opCount = 0;
    this.#snapshots = [];
  }

  /** Commits the queued batches in order; `finish` goes with the last one. */
  async #commitQueue(finish: FinishRow | null): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue[0] as Batch;
      const last = this.#queue.length === 1;
      try {
        await this.#write(batch, last ? finish : null);
      } catch (error) {
        const failure =
          error instanceof StoreError
            ? error
            : new StoreError(
                'write-failed',
                `run ${this.run}: batch of events ${batch.firstSeq}..${batch.lastSeq} not written: ${describePgCause(error)}`,
                { run: this.run, firstSeq: batch.firstSeq, lastSeq: batch.lastSeq },
                { cause: error },
              );
        this.#live = { ...this.#committed };
        this.#queue = [];
        this.#events = [];
        this.#eventCount = 0;
        this.#firstSeq = this.#committed.seq + 1;
        this.#types = new Set();
        this.#ops = [];
        this.#opCount = 0;
        this.#snapshots = [];
        this.#state = 'broken';
        this.#failure = failure;
        throw failure;
      }
      this.#queue.shift();
      this.#committed = { ...batch.after };
      this.#onWriteStep('commit', this.#batches);
    }
  }

  /** One transaction: the batch's events, block, op rows, snapshots and the finish row, or nothing. */
  async #write(batch: Batch, finish: FinishRow | null): Promise<void> {
    const number = ++this.#batches;
    const step = (name: WriteStep) => () => this.#onWriteStep(name, number);
    const client = await this.#pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      this.#onWriteStep('begin', number);
      await insertRows(client, 'events', EVENT_COLUMNS, batch.events, step('events'));
      if (batch.events.length > 0) {
        this.#onWriteStep('block', number);
        await client.query(INSERT_BLOCK, [this.run, batch.firstSeq, batch.lastSeq, JSON.stringify(batch.types)]);
      }
      await insertRows(client, 'ops', OP_COLUMNS, batch.ops, step('ops'));
      for (const snapshot of batch.snapshots) {
        this.#onWriteStep('snapshots', number);
        await client.query(INSERT_SNAPSHOT, snapshot);
      }
      if (finish !== null) {
        const after = batch.after;
        this.#onWriteStep('finish', number);
        const changed = await client.query(FINISH_RUN, [
          finish.status,
          finish.error,
          finish.errorOp,
          finish.errorLine,
          after.seq,
          after.opsEnded,
          after.head,
          after.opsHead,
          finish.finalDigest,
          this.run,
        ]);
        if (changed.rowCount !== 1) {
          throw new StoreError('write-failed', `run ${this.run} is no longer 'running': finished by another writer?`, {
            run: this.run,
          });
        }
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
