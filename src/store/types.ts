// SPDX-License-Identifier: GPL-2.0-only
/**
 * The store's public shapes: what the replayer writes (RunInfo, EventRow, OpRow through a RunWriter), what
 * readers get back (RunRow, StoredEvent, StoredOp, Snapshot), the verify report, and the Store itself.
 * Nothing here names SQLite or kysely: a PostgreSQL backend implements the same Store, and callers never
 * see which one they hold. Reads are asynchronous (a server database answers over a socket); appends are
 * buffered synchronously by a RunWriter and committed at batch boundaries that the caller awaits
 * (docs/architecture.md, decisions "the store's dialect boundary" and "awaitable batch boundaries").
 *
 * Vocabulary: `seq` counts events of a run from 1; `op` and `index` count trace operations from 0; ranges
 * given as first..last are inclusive at both ends.
 */

import type { StoreQuery } from './queries/context.js';
import type { RunStatus } from './schema.js';

export type { RunStatus } from './schema.js';

/** One event, already encoded by the replayer. */
export interface EventRow {
  /** 1-based, contiguous within the run. */
  seq: number;
  /** 0-based index of the trace operation that caused it. */
  op: number;
  type: string;
  v: number;
  /** encodeJson(the whole event object). */
  payload: string;
}

/**
 * One trace operation once its events are appended: the one shape of an op record, written, hashed
 * (chain.ts opHash), read back (StoredOp) and compared by bisect (which puts the neutral digest in `digest`).
 */
export interface OpRow {
  index: number;
  /** Line of the trace file. */
  line: number;
  op: string;
  errno: string | null;
  /** encodeJson of the outputs. */
  result: string;
  /** The op's events: firstSeq..lastSeq; lastSeq = firstSeq - 1 when it caused none. */
  firstSeq: number;
  lastSeq: number;
  /** State digest after the op: 16 hex digits (for bisect's comparison: the neutral digest). */
  digest: string;
}

export interface RunInfo {
  tracePath: string;
  /** sha256 of the trace text, 64 hex digits. */
  traceSha256: string;
  /** The trace itself, so a database is self-contained. */
  traceText: string;
  variant: string;
  flags: string[];
  /** Stored as JSON (bigints allowed); undefined is stored as null. */
  faultPlan: unknown;
  header: unknown;
}

export interface BeginRunOptions {
  /** Events per committed transaction; 4096 unless given. */
  batchSize?: number;
  /**
   * Test-only: called before each statement of a batch commit and once after the commit, so a test can
   * stop or kill the writer at any point of a batch. `batch` counts this writer's commits from 1.
   */
  onWriteStep?: (step: WriteStep, batch: number) => void;
}

/**
 * The points of a batch commit, in order: `begin` right after BEGIN (IMMEDIATE on SQLite: the lock is held),
 * then before each statement: `events` (once per multi-row INSERT), `block` (the batch's event_blocks row),
 * `ops`, `snapshots`, `finish` (the runs row, in the last batch only), and `commit` once COMMIT returned.
 * PostgreSQL sends a batch as one statement (postgres/append.ts): its steps up to `finish` are reported
 * before that statement, in the same order (`begin` after BEGIN in the last batch, else just before it).
 */
export type WriteStep = 'begin' | 'events' | 'block' | 'ops' | 'snapshots' | 'finish' | 'commit';

export interface FinishSummary {
  /** Why the run failed (finish 'failed'). */
  error?: string;
  /** For a failed run: the op being replayed when it failed, and its trace line. */
  errorOp?: number;
  errorLine?: number;
  /** State digest after the last op: 16 hex digits; required for a complete run, optional for a failed one. */
  finalDigest?: string;
}

/**
 * Appends one run. Rows are buffered and committed one batch per transaction: a batch is in the database
 * whole or not at all. If the process dies, the run stays 'running' (incomplete) with its committed batches.
 *
 * Batches are cut at the same rows on every backend (when batchSize events, or batchSize ops, are
 * buffered), so a run has the same event blocks wherever it is written. SQLite on a file hands a cut batch
 * to a writer thread with a connection of its own, which commits it while the appends go on (in memory,
 * and for the rows of a run that never filled a batch, it commits on the caller's thread); append waits
 * there only when two batches are already in flight, and only until the older is done. A server backend queues the cut batch (`unsettled`
 * turns true) until the caller awaits settle(). A caller appends synchronously and awaits settle() when
 * `unsettled` says so (the replayer: after each op).
 */
export interface RunWriter {
  readonly run: number;
  readonly batchSize: number;
  /** Events appended so far (committed or buffered). */
  readonly seq: number;
  /** Hash of the last appended event (the genesis hash before the first). */
  readonly head: string;
  /** Throws StoreError 'seq-gap' unless row.seq follows the previous one, 'bad-op' unless row.op is the open op. */
  append(row: EventRow): void;
  /** Closes op row.index; it must cover exactly the events appended since the previous op. */
  endOp(row: OpRow): void;
  /** Stores the state after event `seq`; the writer keeps a reference to `state` until the batch commits. */
  putSnapshot(seq: number, op: number, digest: string, state: Uint8Array, format: number): void;
  /**
   * True when the caller should await settle() before it goes on: batches were cut and wait to be committed
   * (a server store), or SQLite's writer thread failed one (its append waits for room by itself).
   */
  readonly unsettled: boolean;
  /**
   * Commits the batches already cut (not the partial one being filled), in order; resolves once they are
   * in. On failure nothing of the failing batch or of any batch after it is written, the writer refuses
   * further rows (see flush) and the error (StoreError 'write-failed') names, in `details.op` and
   * `details.line`, the op being replayed when the batch was cut and its trace line (null when that op
   * had not ended), however many ops later the failure shows.
   */
  settle(): Promise<void>;
  /** Seconds a writer thread spent on this writer's batches so far (SQLite on a file; else undefined). */
  readonly threadSeconds?: number;
  /**
   * Of threadSeconds, the thread's time on a CPU and waiting in the run queue for one (Linux; else
   * undefined): what the store costs, told from what a shared machine adds (bench B1).
   */
  readonly threadCpuSeconds?: number | undefined;
  readonly threadWaitSeconds?: number | undefined;
  /** Commits what is buffered. On failure nothing of the batch is written and the writer refuses further rows. */
  flush(): Promise<void>;
  /**
   * Commits the rest and marks the run finished, in one transaction. After a failed flush only
   * finish('failed', ...) is accepted; it records what was committed before the failure.
   */
  finish(status: 'complete' | 'failed', summary: FinishSummary): Promise<void>;
}

export interface RunRow {
  id: number;
  tracePath: string;
  traceSha256: string;
  variant: string;
  flags: string[];
  faultPlan: unknown;
  header: unknown;
  status: RunStatus;
  /** status 'running': no writer finished it, so it is still being written or was interrupted. */
  incomplete: boolean;
  /** Why a 'failed' run failed, and where: the op being replayed and its trace line (null when unknown). */
  error: string | null;
  errorOp: number | null;
  errorLine: number | null;
  /** Finished runs: as recorded by finish; running runs: as committed so far. */
  eventCount: number;
  opCount: number;
  headHash: string | null;
  opsHeadHash: string | null;
  finalDigest: string | null;
  createdSeq: number;
}

export interface StoredOp extends OpRow {
  run: number;
  hash: string;
}

export interface StoredEvent {
  /** Global sequence over the database. */
  id: number;
  run: number;
  seq: number;
  op: number;
  type: string;
  v: number;
  payload: string;
  hash: string;
}

/** One event as a replay needs it: where it is and its payload (no hash, no type columns). */
export interface ReplayRow {
  seq: number;
  op: number;
  payload: string;
}

export interface EventFilter {
  fromSeq?: number;
  toSeq?: number;
  /** Only these types; an empty list matches nothing. */
  types?: readonly string[];
  op?: number;
}

export interface Snapshot {
  seq: number;
  op: number;
  digest: string;
  format: number;
  state: Uint8Array;
}

export type BrokenEventReason =
  /** The stored hash is not sha256 of the previous hash and the row's fields: the row was edited. */
  | 'hash-mismatch'
  /** The next row's seq is not the expected one: rows were deleted or renumbered. */
  | 'seq-gap'
  /** A column holds a value of the wrong type. */
  | 'bad-row';

export interface BrokenEvent {
  seq: number;
  /** Global id of the offending row; null when the expected row is missing. */
  id: number | null;
  expected: string;
  actual: string;
  reason: BrokenEventReason;
}

export interface BrokenOp {
  index: number;
  expected: string;
  actual: string;
  reason: 'hash-mismatch' | 'index-gap' | 'seq-range' | 'bad-row';
}

/** A run-level disagreement: a stored summary that the rows do not reproduce. */
export interface RunMismatch {
  what: 'trace-sha256' | 'head-hash' | 'event-count' | 'ops-head-hash' | 'op-count' | 'event-blocks';
  expected: string;
  actual: string;
}

export interface RunVerification {
  run: number;
  status: RunStatus;
  incomplete: boolean;
  /** Events whose hash was checked (up to the first broken one). */
  events: number;
  /** Committed batches (event_blocks rows) of the run. */
  batches: number;
  ops: number;
  ok: boolean;
  firstBroken?: BrokenEvent;
  firstBrokenOp?: BrokenOp;
  mismatches: RunMismatch[];
}

export interface VerifyReport {
  ok: boolean;
  runs: RunVerification[];
}

export interface Store {
  /** Where the store lives: a file path for SQLite, the URL (password hidden) for PostgreSQL. */
  readonly path: string;
  readonly dialect: 'sqlite' | 'postgres';
  readonly readonly: boolean;
  /** Inserts the run as 'running' (committed at once) and returns its writer. */
  beginRun(info: RunInfo, options?: BeginRunOptions): Promise<RunWriter>;
  /** All runs, by id. */
  runs(): Promise<RunRow[]>;
  run(id: number): Promise<RunRow | undefined>;
  traceText(run: number): Promise<string | undefined>;
  /** Op rows first..last (inclusive) by index. */
  ops(run: number, first?: number, last?: number): Promise<StoredOp[]>;
  /** The op whose events include `seq`. */
  opAt(run: number, seq: number): Promise<StoredOp | undefined>;
  /**
   * Events in seq order, read in chunks: never the whole run at once, and no statement stays open between
   * chunks, so the caller may write or stop iterating at any point.
   */
  events(run: number, filter?: EventFilter): AsyncIterable<StoredEvent>;
  /**
   * Events fromSeq..toSeq in seq order as arrays of at most EVENT_CHUNK rows holding only seq, op and
   * payload: the read of a replay (a seek's tail, a rebuild), which needs neither the hash nor a promise
   * per row. Keyset chunks, no statement open between them, as events().
   */
  replayRows(run: number, fromSeq: number, toSeq: number): AsyncIterable<readonly ReplayRow[]>;
  /**
   * The payloads alone of events fromSeq..toSeq (fromSeq clipped to 1), in seq order, in arrays of at most
   * REPLAY_CHUNK: the read of a replay that needs neither seq nor op (a rebuild, a seek's tail). Seqs are
   * contiguous, so the i-th payload overall is seq max(1, fromSeq) + i; the rows end with the run (or
   * toSeq), and a missing seq in between is StoreError 'seq-gap'. Chunks by seq range, none open between.
   */
  replayPayloads(run: number, fromSeq: number, toSeq: number): AsyncIterable<readonly string[]>;
  /** Highest committed seq of the run (seqs are contiguous from 1). */
  eventCount(run: number): Promise<number>;
  snapshotAtOrBefore(run: number, seq: number): Promise<Snapshot | undefined>;
  /** Seqs of the run's snapshots, ascending. */
  snapshots(run: number): Promise<number[]>;
  /** Walks the chains of one run or of all runs; rejects with StoreError 'no-such-run' for an unknown run. */
  verify(run?: number): Promise<VerifyReport>;
  /** Runs a query of src/store/queries/ (the ledger, op comparison, event blocks) on this store's dialect. */
  query<T>(query: StoreQuery<T>): Promise<T>;
  close(): Promise<void>;
}
