// SPDX-License-Identifier: GPL-2.0-only
/**
 * Appending a run to PostgreSQL (one statement per batch: BATCH below). The writer keeps the contract of the SQLite one (sqlite/append.ts): the
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

const INSERT_RUN = `INSERT INTO runs (trace_path, trace_sha256, trace_text, variant, flags, fault_plan, header, status, created_seq)
  VALUES ($1, $2, $3, $4, $5, $6, $7, 'running',
    (SELECT coalesce(max(id), 0) FROM events WHERE tx < pg_snapshot_xmin(pg_current_snapshot())))
  RETURNING id`;

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

/** The events of a batch, column by column (run is the writer's). */
class EventColumns {
  readonly seq: number[] = [];
  readonly op: number[] = [];
  readonly type: string[] = [];
  readonly v: number[] = [];
  readonly payload: string[] = [];
  readonly hash: string[] = [];
}

/** The op rows of a batch, column by column. */
class OpColumns {
  readonly idx: number[] = [];
  readonly line: number[] = [];
  readonly op: string[] = [];
  readonly errno: (string | null)[] = [];
  readonly result: string[] = [];
  readonly firstSeq: number[] = [];
  readonly lastSeq: number[] = [];
  readonly digest: string[] = [];
  readonly hash: string[] = [];
}

/** The snapshots of a batch, column by column. */
class SnapshotColumns {
  readonly seq: number[] = [];
  readonly op: number[] = [];
  readonly digest: string[] = [];
  readonly format: number[] = [];
  readonly state: Buffer[] = [];
}

/** One cut batch, waiting for its commit. */
interface Batch {
  events: EventColumns;
  firstSeq: number;
  lastSeq: number;
  types: string[];
  ops: OpColumns;
  snapshots: SnapshotColumns;
  /** The chains after this batch: what is committed once it is. */
  after: ChainState;
}

/** The parameters $1..$24 of BATCH for `batch` of `run`. */
function batchParams(run: number, batch: Batch): unknown[] {
  const { events: e, ops: o, snapshots: s } = batch;
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
  #events = new EventColumns();
  #firstSeq = 1;
  #types = new Set<string>();
  #ops = new OpColumns();
  #snapshots = new SnapshotColumns();
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
    const events = this.#events;
    events.seq.push(row.seq);
    events.op.push(row.op);
    events.type.push(row.type);
    events.v.push(row.v);
    events.payload.push(row.payload);
    events.hash.push(hash);
    this.#types.add(row.type);
    live.seq = row.seq;
    live.head = hash;
    if (events.seq.length >= this.batchSize) this.#cut();
  }

  endOp(row: OpRow): void {
    this.#checkOpen();
    const live = this.#live;
    checkOpRow(this.run, live, row);
    const hash = opHash(live.opsHead, row);
    const ops = this.#ops;
    ops.idx.push(row.index);
    ops.line.push(row.line);
    ops.op.push(row.op);
    ops.errno.push(row.errno);
    ops.result.push(row.result);
    ops.firstSeq.push(row.firstSeq);
    ops.lastSeq.push(row.lastSeq);
    ops.digest.push(row.digest);
    ops.hash.push(hash);
    live.opsHead = hash;
    live.opsEnded++;
    live.lastOpLastSeq = row.lastSeq;
    if (ops.idx.length >= this.batchSize) this.#cut();
  }

  putSnapshot(seq: number, op: number, digest: string, state: Uint8Array, format: number): void {
    this.#checkOpen();
    const live = this.#live;
    checkSnapshotSeq(this.run, live, seq);
    // pg sends a Buffer as bytea; wrap a plain Uint8Array without copying.
    const blob = Buffer.isBuffer(state) ? state : Buffer.from(state.buffer, state.byteOffset, state.byteLength);
    const snapshots = this.#snapshots;
    snapshots.seq.push(seq);
    snapshots.op.push(op);
    snapshots.digest.push(digest);
    snapshots.format.push(format);
    snapshots.state.push(blob);
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
    return {
      events: new EventColumns(),
      firstSeq: seq + 1,
      lastSeq: seq,
      types: [],
      ops: new OpColumns(),
      snapshots: new SnapshotColumns(),
      after: { ...this.#live },
    };
  }

  /** Moves the buffered rows into a queued batch (nothing when nothing is buffered). */
  #cut(): void {
    if (this.#events.seq.length === 0 && this.#ops.idx.length === 0 && this.#snapshots.seq.length === 0) return;
    this.#queue.push({
      events: this.#events,
      firstSeq: this.#firstSeq,
      lastSeq: this.#live.seq,
      types: [...this.#types].sort(),
      ops: this.#ops,
      snapshots: this.#snapshots,
      after: { ...this.#live },
    });
    this.#events = new EventColumns();
    this.#firstSeq = this.#live.seq + 1;
    this.#types = new Set();
    this.#ops = new OpColumns();
    this.#snapshots = new SnapshotColumns();
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
        this.#events = new EventColumns();
        this.#firstSeq = this.#committed.seq + 1;
        this.#types = new Set();
        this.#ops = new OpColumns();
        this.#snapshots = new SnapshotColumns();
        this.#state = 'broken';
        this.#failure = failure;
        throw failure;
      }
      this.#queue.shift();
      this.#committed = { ...batch.after };
      this.#onWriteStep('commit', this.#batches);
    }
  }

  /**
   * The batch in one statement (BATCH); the last batch of the run, with the finish row, in FINISH_BATCH
   * between BEGIN and COMMIT. The write steps of the batch's parts are reported before the statement that
   * carries them all: a writer stopped at any of them has sent nothing of the batch.
   */
  async #write(batch: Batch, finish: FinishRow | null): Promise<void> {
    const number = ++this.#batches;
    const params = batchParams(this.run, batch);
    const steps = (): void => {
      if (batch.events.seq.length > 0) {
        this.#onWriteStep('events', number);
        this.#onWriteStep('block', number);
      }
      if (batch.ops.idx.length > 0) this.#onWriteStep('ops', number);
      if (batch.snapshots.seq.length > 0) this.#onWriteStep('snapshots', number);
    };
    if (finish === null) {
      this.#onWriteStep('begin', number);
      steps();
      await this.#pool.query({ ...BATCH, values: params });
      return;
    }
    const client = await this.#pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      this.#onWriteStep('begin', number);
      steps();
      this.#onWriteStep('finish', number);
      const after = batch.after;
      const finished = await client.query<{ finished: number }>({
        ...FINISH_BATCH,
        values: [
          ...params,
          finish.status,
          finish.error,
          finish.errorOp,
          finish.errorLine,
          after.seq,
          after.opsEnded,
          after.head,
          after.opsHead,
          finish.finalDigest,
        ],
      });
      if (finished.rows[0]?.finished !== 1) {
        throw new StoreError('write-failed', `run ${this.run} is no longer 'running': finished by another writer?`, {
          run: this.run,
        });
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
