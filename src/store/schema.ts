// SPDX-License-Identifier: GPL-2.0-only
/**
 * The tables of the event store as kysely sees them (column names as in migrations/). JSON columns hold
 * text written by encodeJson (bigints as "123n"); hashes are 64 lowercase hex digits, digests 16.
 *
 * Append-only by trigger: events, ops, snapshots, event_blocks never change once written; a runs row
 * changes once, from 'running' to its final status, and is never deleted. No column holds a wall-clock
 * time, so replaying the same trace gives the same rows.
 */

import type { Generated } from 'kysely';

export type RunStatus = 'running' | 'complete' | 'failed';

export interface RunsTable {
  id: Generated<number>;
  trace_path: string;
  trace_sha256: string;
  /** The trace itself, so a database file is self-contained. */
  trace_text: string;
  variant: string;
  /** JSON array of fix flag names. */
  flags: string;
  /** JSON; null when the run has no fault plan. */
  fault_plan: string;
  /** JSON: the trace header. */
  header: string;
  status: Generated<RunStatus>;
  /** Why a 'failed' run failed; null otherwise. */
  error: string | null;
  /** For a 'failed' run: the op being replayed when it failed and its trace line (migration 0002). */
  error_op: number | null;
  error_line: number | null;
  /** Written by finish; 0 while 'running' (count the events instead). */
  event_count: Generated<number>;
  op_count: Generated<number>;
  /** Hash of the last event (the genesis hash for a run without events); null while 'running'. */
  head_hash: string | null;
  ops_head_hash: string | null;
  final_digest: string | null;
  /** The highest global event id when the run began: orders runs without a clock. */
  created_seq: number;
}

export interface OpsTable {
  run: number;
  idx: number;
  line: number;
  op: string;
  errno: string | null;
  /** JSON: the op's outputs. */
  result: string;
  /** Events of the op: first_seq..last_seq inclusive; last_seq = first_seq - 1 for an op without events. */
  first_seq: number;
  last_seq: number;
  /** State digest after the op. */
  digest: string;
  hash: string;
}

export interface EventsTable {
  /** Global sequence over the whole database (insertion order across runs). */
  id: Generated<number>;
  run: number;
  /** 1-based, contiguous within the run. */
  seq: number;
  op: number;
  type: string;
  v: number;
  /** encodeJson of the whole event object. */
  payload: string;
  hash: string;
}

/**
 * A zone map over events: which event types occur in seqs first_seq..last_seq (one row per committed
 * batch). Type queries read only the blocks that hold the type; see read.ts for why this replaces an index.
 */
export interface EventBlocksTable {
  run: number;
  first_seq: number;
  last_seq: number;
  /** JSON array of the distinct types in the block, sorted. */
  types: string;
}

export interface SnapshotsTable {
  run: number;
  /** The state after applying event seq (0: the initial state). */
  seq: number;
  op: number;
  digest: string;
  format: number;
  /** Serialized and compressed by the caller. */
  state: Uint8Array;
}

/** A distinct failure a fuzzing farm found (migration 0003; see queries/failures.ts). */
export interface FuzzFailuresTable {
  variant: string;
  kind: string;
  fn: string;
  /** The claiming worker's trace: its seed and op budget regenerate it. bigint: PostgreSQL may return text. */
  seed: number | string;
  ops: number;
  /** Where the failure showed in that trace: op (1-based; trace length + 1 = teardown) and what it said. */
  op: number;
  detail: string;
  /** Runs of the failing trace and of its shrunk reproducer; null until the claiming worker recorded them. */
  trace_run: number | null;
  reproducer_run: number | null;
  reproducer_ops: number | null;
  /** Who holds the claim and until when, ms since the epoch (migration 0004; null on rows claimed before it). */
  claimant: string | null;
  lease_until: number | string | null;
}

/** A generated trace (seed, op budget) that showed a failure. */
export interface FuzzHitsTable {
  variant: string;
  kind: string;
  fn: string;
  seed: number | string;
  ops: number;
}

export interface Database {
  runs: RunsTable;
  ops: OpsTable;
  events: EventsTable;
  event_blocks: EventBlocksTable;
  snapshots: SnapshotsTable;
  fuzz_failures: FuzzFailuresTable;
  fuzz_hits: FuzzHitsTable;
}
