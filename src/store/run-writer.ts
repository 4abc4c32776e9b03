// SPDX-License-Identifier: GPL-2.0-only
/**
 * The dialect-neutral half of every backend's RunWriter: the checks of a new run, the hash chains, the
 * buffers a batch is cut from, the statements a batch is written with (in order, with the write step each
 * reports) and what a failed or a successful commit does to the chains. A dialect (sqlite/append.ts,
 * postgres/append.ts) adds only its SQL text and when and how it runs a batch's statements in a
 * transaction: SQLite inside the append that cuts the batch, PostgreSQL when the caller awaits settle().
 */

import { encodeJson } from '../lib/codec.js';
import { DIGEST_HEX, HASH_HEX, eventHash, genesisHash, opHash } from './chain.js';
import { StoreError } from './errors.js';
import type { BeginRunOptions, EventRow, FinishSummary, OpRow, RunInfo, RunWriter, WriteStep } from './types.js';
import { type ChainState, checkEventRow, checkOpRow, checkSnapshotSeq, genesisChainState } from './writer-checks.js';

export const DEFAULT_BATCH_SIZE = 4096;
/**
 * The payload text (UTF-16 code units) a batch takes before it is cut whatever its event count: a batch of
 * the list events that map a guest of scattered 4 KiB pages (tens of KB each) would otherwise hold
 * hundreds of MB, twice over with a batch in flight.
 */
export const BATCH_PAYLOAD_UNITS = 4 * 1024 * 1024;

export const EVENT_COLUMNS = ['run', 'seq', 'op', 'type', 'v', 'payload', 'hash'] as const;
export const OP_COLUMNS = [
  'run',
  'idx',
  'line',
  'op',
  'errno',
  'result',
  'first_seq',
  'last_seq',
  'digest',
  'hash',
] as const;

/** A new run, checked and encoded: what the runs row is inserted with and what its writer starts from. */
export interface NewRun {
  batchSize: number;
  /** The runs row's trace_path, trace_sha256, trace_text, variant, flags, fault_plan and header, in order. */
  params: readonly [string, string, string, string, string, string, string];
  genesis: string;
  onWriteStep: (step: WriteStep, batch: number) => void;
  /** The caller gave an onWriteStep hook. */
  hooked: boolean;
}

const NO_HOOK = (): void => undefined;

/** Checks the arguments of beginRun and encodes the run's columns. */
export function newRun(info: RunInfo, options: BeginRunOptions): NewRun {
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
  return {
    batchSize,
    params: [info.tracePath, info.traceSha256, info.traceText, info.variant, flags, faultPlan, header],
    genesis: genesisHash(info.traceSha256, info.variant, flags, faultPlan),
    onWriteStep: options.onWriteStep ?? NO_HOOK,
    hooked: options.onWriteStep !== undefined,
  };
}

/** The error of a runs row that could not be inserted; `describeCause` reads the driver's error. */
export function runNotRecorded(error: unknown, describeCause: (error: unknown) => string): StoreError {
  return new StoreError('write-failed', `cannot record a new run: ${describeCause(error)}`, {}, { cause: error });
}

export interface FinishRow {
  status: 'complete' | 'failed';
  error: string | null;
  errorOp: number | null;
  errorLine: number | null;
  finalDigest: string | null;
}

/** The finish UPDATE's values in the order of its columns (status .. final_digest), the run's id left out. */
export function finishParams(finish: FinishRow, batch: Batch): unknown[] {
  const after = batch.after;
  return [
    finish.status,
    finish.error,
    finish.errorOp,
    finish.errorLine,
    after.seq,
    after.opsEnded,
    after.head,
    after.opsHead,
    finish.finalDigest,
  ];
}

/** One cut batch: its rows as bound parameters, and where the chains stand once it is committed. */
export interface Batch {
  /** EVENT_COLUMNS per event, already cut into the parameters of one INSERT statement each. */
  eventChunks: unknown[][];
  eventCount: number;
  firstSeq: number;
  lastSeq: number;
  /** The types of its events, sorted: the batch's event_blocks row. */
  types: string[];
  /** OP_COLUMNS per op row. */
  ops: unknown[];
  /** One row of snapshots (run, seq, op, digest, format, state) each. */
  snapshots: unknown[][];
  after: ChainState;
  /**
   * Where it was cut: the op being replayed (the open one, or the one whose end filled it) and that op's
   * trace line once the writer has seen it (endOp). A failure of the batch names this op, however much
   * later it is noticed.
   */
  op: number;
  line: number | null;
}

/** The op (and its trace line when known) where the failed batch behind `error` (or its cause) was cut. */
export function failedBatchAt(error: unknown): { op: number; line: number | null } | undefined {
  for (let e: unknown = error; e instanceof StoreError; e = e.cause) {
    const { op, line } = e.details;
    if (e.code === 'write-failed' && typeof op === 'number')
      return { op, line: typeof line === 'number' ? line : null };
  }
  return undefined;
}

/** What a dialect's writer differs in, besides its transactions. */
export interface WriterDialect {
  /** Rows per multi-row INSERT statement (events and op rows), within the driver's limit of parameters. */
  chunkRows: number;
  /**
   * A chunk of fewer rows (the last of a run) is written as a multiple of tailRows rows and the rest, so a
   * connection that caches its statements compiles few sizes (chunkRows: one statement, whatever its size).
   */
  tailRows: number;
  /** The statements in the dialect's spelling of bound parameters (writerSql). */
  sql: WriterSql;
  /** How a driver error reads inside a StoreError message. */
  describeCause: (error: unknown) => string;
}

/** The writer's statements with the n-th (1-based) bound parameter spelled `placeholder(n)`. */
export function writerSql(placeholder: (n: number) => string): WriterSql {
  return new WriterSql(placeholder);
}

/** The writer's statements in a dialect's spelling of bound parameters. */
class WriterSql {
  readonly insertBlock: string;
  readonly insertSnapshot: string;
  readonly finishRun: string;
  readonly #placeholder: (n: number) => string;
  /** INSERT texts by table and row count. */
  readonly #inserts = new Map<string, string>();

  constructor(placeholder: (n: number) => string) {
    this.#placeholder = placeholder;
    const p = placeholder;
    this.insertBlock = `INSERT INTO event_blocks (run, first_seq, last_seq, types) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)})`;
    this.insertSnapshot = `INSERT INTO snapshots (run, seq, op, digest, format, state) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)})`;
    this.finishRun = `UPDATE runs SET status = ${p(1)}, error = ${p(2)}, error_op = ${p(3)}, error_line = ${p(4)}, event_count = ${p(5)}, op_count = ${p(6)},
  head_hash = ${p(7)}, ops_head_hash = ${p(8)}, final_digest = ${p(9)} WHERE id = ${p(10)} AND status = 'running'`;
  }

  /** INSERT INTO table (columns) VALUES (...), (...) for `rows` rows. */
  insert(table: string, columns: readonly string[], rows: number): string {
    const key = `${table}/${rows}`;
    let text = this.#inserts.get(key);
    if (text === undefined) {
      const width = columns.length;
      const values: string[] = [];
      for (let r = 0; r < rows; r++) {
        const cells: string[] = [];
        for (let c = 1; c <= width; c++) cells.push(this.#placeholder(r * width + c));
        values.push(`(${cells.join(', ')})`);
      }
      text = `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values.join(', ')}`;
      this.#inserts.set(key, text);
    }
    return text;
  }
}

/** One statement of a batch's transaction, after the write step it reports. */
export interface BatchStatement {
  step: 'events' | 'block' | 'ops' | 'snapshots' | 'finish';
  sql: string;
  params: unknown[];
}

/** The finish statement changed `changed` rows: anything but one means the run was no longer 'running'. */
export function checkRunFinished(run: number, changed: number | null): void {
  if (changed !== 1) {
    throw new StoreError('write-failed', `run ${run} is no longer 'running': finished by another writer?`, { run });
  }
}

/**
 * Buffers rows, keeps the chains and cuts batches; a dialect decides what happens to a cut batch
 * (batchFilled) and runs its statements. Every batch's events, event_blocks row, op rows, snapshots and
 * finish row commit together or not at all; after a failed commit the chains go back to the last committed
 * batch and the writer refuses further rows (the run may still be finished as 'failed').
 */
export abstract class BatchingRunWriter implements RunWriter {
  readonly run: number;
  readonly batchSize: number;
  protected readonly onWriteStep: (step: WriteStep, batch: number) => void;
  #live: ChainState;
  #committed: ChainState;
  readonly #dialect: WriterDialect;
  readonly #sql: WriterSql;
  readonly #chunkWidth: number;
  /** Filled event chunks; #chunk is the one being filled, #chunkAt its length. */
  #chunks: unknown[][] = [];
  #chunk: unknown[];
  #chunkAt = 0;
  #eventCount = 0;
  /** Payload text of the buffered events, in UTF-16 code units. */
  #payloadUnits = 0;
  /** The seq of the first buffered event: one after the last event of the last cut batch. */
  #firstSeq = 1;
  #types = new Set<string>();
  #ops: unknown[] = [];
  #opCount = 0;
  #snapshots: unknown[][] = [];
  #state: 'open' | 'broken' | 'finished' = 'open';
  #failure: StoreError | undefined;
  /** Batch transactions begun so far (for onWriteStep). */
  #batches = 0;
  /** Set while endOp cuts a batch: the op that filled it. */
  #cutByOp: { op: number; line: number } | null = null;
  /** Cut batches whose op had not ended when they were cut: endOp gives them its line. */
  #awaitingLine: Batch[] = [];

  protected constructor(run: number, start: NewRun, dialect: WriterDialect) {
    this.run = run;
    this.batchSize = start.batchSize;
    this.onWriteStep = start.onWriteStep;
    this.#live = genesisChainState(start.genesis);
    this.#committed = { ...this.#live };
    this.#dialect = dialect;
    this.#sql = dialect.sql;
    // A batch holds at most batchSize events: no chunk needs room for more.
    this.#chunkWidth = Math.min(dialect.chunkRows, start.batchSize) * EVENT_COLUMNS.length;
    this.#chunk = new Array<unknown>(this.#chunkWidth);
  }

  get seq(): number {
    return this.#live.seq;
  }

  get head(): string {
    return this.#live.head;
  }

  abstract readonly unsettled: boolean;
  abstract settle(): Promise<void>;
  abstract flush(): Promise<void>;
  abstract finish(status: 'complete' | 'failed', summary: FinishSummary): Promise<void>;

  /** A batch is full (batchSize events or BATCH_PAYLOAD_UNITS of payload, or op rows): commit it now or queue it. */
  protected abstract batchFilled(): void;

  append(row: EventRow): void {
    this.checkOpen();
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
    if (at === this.#chunkWidth) {
      this.#chunks.push(chunk);
      this.#chunk = new Array<unknown>(this.#chunkWidth);
      at = 0;
    }
    this.#chunkAt = at;
    this.#types.add(row.type);
    live.seq = row.seq;
    live.head = hash;
    this.#payloadUnits += row.payload.length;
    if (++this.#eventCount >= this.batchSize || this.#payloadUnits >= BATCH_PAYLOAD_UNITS) this.batchFilled();
  }

  endOp(row: OpRow): void {
    this.checkOpen();
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
    if (this.#awaitingLine.length > 0) this.#lineOfOp(row);
    // Op rows ride with their events; only a long run of ops without events fills a batch by itself.
    if (++this.#opCount >= this.batchSize) {
      this.#cutByOp = { op: row.index, line: row.line };
      try {
        this.batchFilled();
      } finally {
        this.#cutByOp = null;
      }
    }
  }

  #lineOfOp(row: OpRow): void {
    for (const batch of this.#awaitingLine) if (batch.op === row.index) batch.line = row.line;
    this.#awaitingLine = this.#awaitingLine.filter((batch) => batch.line === null);
  }

  putSnapshot(seq: number, op: number, digest: string, state: Uint8Array, format: number): void {
    this.checkOpen();
    const live = this.#live;
    checkSnapshotSeq(this.run, live, seq);
    // Both drivers bind a Buffer as a blob (bytea); wrap a plain Uint8Array without copying.
    const blob = Buffer.isBuffer(state) ? state : Buffer.from(state.buffer, state.byteOffset, state.byteLength);
    this.#snapshots.push([this.run, seq, op, digest, format, blob]);
    live.lastSnapshotSeq = seq;
  }

  protected checkOpen(): void {
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

  /** True when rows wait in the buffers. */
  protected get buffered(): boolean {
    return this.#eventCount > 0 || this.#opCount > 0 || this.#snapshots.length > 0;
  }

  /** Moves the buffered rows into a batch (an empty one when nothing is buffered: a lone finish row). */
  protected cutBatch(): Batch {
    const chunks = this.#chunks;
    if (this.#chunkAt > 0) chunks.push(this.#chunk.slice(0, this.#chunkAt));
    const batch: Batch = {
      eventChunks: chunks,
      eventCount: this.#eventCount,
      firstSeq: this.#firstSeq,
      lastSeq: this.#live.seq,
      types: [...this.#types].sort(),
      ops: this.#ops,
      snapshots: this.#snapshots,
      after: { ...this.#live },
      op: this.#cutByOp?.op ?? this.#live.opsEnded,
      line: this.#cutByOp?.line ?? null,
    };
    if (batch.line === null) this.#awaitingLine.push(batch);
    this.#clearBuffers();
    return batch;
  }

  #clearBuffers(): void {
    this.#chunks = [];
    this.#chunkAt = 0;
    this.#eventCount = 0;
    this.#payloadUnits = 0;
    this.#firstSeq = this.#live.seq + 1;
    this.#types = new Set();
    this.#ops = [];
    this.#opCount = 0;
    this.#snapshots = [];
  }

  /**
   * The finish row of finish(status, summary). After a failed commit the run may still be recorded as
   * failed, never as complete; a failed run may have stopped before any state digest existed, a complete
   * one always has one.
   */
  protected finishRow(status: 'complete' | 'failed', summary: FinishSummary): FinishRow {
    if (!(this.#state === 'broken' && status === 'failed')) this.checkOpen();
    const finalDigest = summary.finalDigest ?? null;
    if (finalDigest === null ? status === 'complete' : !DIGEST_HEX.test(finalDigest)) {
      throw new StoreError(
        'bad-argument',
        `run ${this.run}: final digest must be 16 hex digits, not '${finalDigest ?? ''}'`,
        { run: this.run, finalDigest },
      );
    }
    return {
      status,
      error: summary.error ?? null,
      errorOp: summary.errorOp ?? null,
      errorLine: summary.errorLine ?? null,
      finalDigest,
    };
  }

  /** The writer has written its finish row: it refuses further rows. */
  protected finished(): void {
    this.#state = 'finished';
  }

  /** Numbers the batch transaction about to begin (the `batch` of onWriteStep). */
  protected beginBatch(): number {
    return ++this.#batches;
  }

  /**
   * The statements of `batch`'s transaction in order; `finish` comes last, and must change exactly one row
   * (checkRunFinished).
   */
  protected *statements(batch: Batch, finish: FinishRow | null): Generator<BatchStatement, void, undefined> {
    const sql = this.#sql;
    for (const params of batch.eventChunks) yield* this.#inserts('events', EVENT_COLUMNS, params);
    if (batch.eventCount > 0) {
      const params = [this.run, batch.firstSeq, batch.lastSeq, JSON.stringify(batch.types)];
      yield { step: 'block', sql: sql.insertBlock, params };
    }
    const ops = batch.ops;
    const opWidth = OP_COLUMNS.length;
    const width = this.#dialect.chunkRows * opWidth;
    for (let at = 0; at < ops.length; at += width) {
      const params = ops.length - at > width ? ops.slice(at, at + width) : at === 0 ? ops : ops.slice(at);
      yield* this.#inserts('ops', OP_COLUMNS, params);
    }
    for (const params of batch.snapshots) yield { step: 'snapshots', sql: sql.insertSnapshot, params };
    if (finish !== null)
      yield { step: 'finish', sql: sql.finishRun, params: [...finishParams(finish, batch), this.run] };
  }

  /** The INSERTs of one chunk of rows (`columns` values each) into `table`: see WriterDialect.tailRows. */
  *#inserts(
    table: 'events' | 'ops',
    columns: readonly string[],
    params: unknown[],
  ): Generator<BatchStatement, void, undefined> {
    const width = columns.length;
    const rows = params.length / width;
    const tailRows = this.#dialect.tailRows;
    const whole = rows === this.#dialect.chunkRows ? rows : rows - (rows % tailRows);
    if (whole === rows || whole === 0) {
      yield { step: table, sql: this.#sql.insert(table, columns, rows), params };
      return;
    }
    yield { step: table, sql: this.#sql.insert(table, columns, whole), params: params.slice(0, whole * width) };
    yield { step: table, sql: this.#sql.insert(table, columns, rows - whole), params: params.slice(whole * width) };
  }

  /**
   * `batch` is committed: the chains as it leaves them are the ones to go back to. `commitStep`: report the
   * write step `commit` of the last batch begun (a writer thread reports its own).
   */
  protected committed(batch: Batch, commitStep = true): void {
    this.#committed = { ...batch.after };
    this.#awaitingLine = this.#awaitingLine.filter((b) => b !== batch);
    if (commitStep) this.onWriteStep('commit', this.#batches);
  }

  /**
   * `batch` failed to commit: the chains go back to the last committed batch, the buffers are dropped and
   * the writer refuses further rows. Returns the error to throw.
   */
  protected failed(error: unknown, batch: Batch): StoreError {
    const failure =
      error instanceof StoreError
        ? error
        : new StoreError(
            'write-failed',
            `run ${this.run}: batch of events ${batch.firstSeq}..${batch.lastSeq} not written: ${this.#dialect.describeCause(error)}`,
            { run: this.run, firstSeq: batch.firstSeq, lastSeq: batch.lastSeq, op: batch.op, line: batch.line },
            { cause: error },
          );
    this.#live = { ...this.#committed };
    this.#clearBuffers();
    this.#awaitingLine = [];
    this.#state = 'broken';
    this.#failure = failure;
    return failure;
  }
}
