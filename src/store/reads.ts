// SPDX-License-Identifier: GPL-2.0-only
/**
 * What every backend's reads share (sqlite/read.ts, postgres/read.ts): the run columns, how an event
 * filter becomes seq ranges (an op's range from its ops row, types from the event_blocks rows that hold
 * them) and the check of an event row. The dialects add their SQL and how they run it.
 */

import { z } from 'zod';
import { StoreError } from './errors.js';
import { parseRow } from './rows.js';
import type { EventFilter, ReplayRow } from './types.js';

/** Events per keyset chunk (seq > last seen); no cursor is held between chunks. */
export const EVENT_CHUNK = 1024;
export const NO_LIMIT = Number.MAX_SAFE_INTEGER;
/**
 * Seqs per chunk of Store.replayPayloads: a chunk is a seq range, not a LIMIT (seqs are contiguous), and
 * its rows are bare payloads, so a larger chunk costs no more per row and saves statements.
 */
export const REPLAY_CHUNK = 4096;

/** Throws StoreError 'bad-row' unless every payload of a replay chunk is text. */
export function checkPayloads(run: number, from: number, payloads: readonly unknown[]): asserts payloads is string[] {
  for (let i = 0; i < payloads.length; i++) {
    if (typeof payloads[i] !== 'string') {
      throw new StoreError('bad-row', `run ${run}: event row of seq ${from + i}: column payload has the wrong type`, {
        run,
        seq: from + i,
        field: 'payload',
      });
    }
  }
}

/**
 * A replay chunk of seqs from..end came back with `got` rows: fewer than the range holds is the end of the
 * run, unless a later seq exists (`maxSeq`: the highest seq from `from` on, up to the read's last), which
 * means a seq is missing and the payloads cannot be placed: StoreError 'seq-gap'.
 */
export function checkShortChunk(run: number, from: number, got: number, maxSeq: number | null): void {
  if (got === 0 ? maxSeq === null : maxSeq === from + got - 1) return;
  throw new StoreError(
    'seq-gap',
    `run ${run}: events from seq ${from} are not contiguous (${got} rows up to seq ${String(maxSeq)})`,
    {
      run,
      seq: from,
    },
  );
}

/** [first, last] inclusive. */
export type SeqRange = readonly [number, number];

/** Every seq: the range of a filter without an op. */
export const ALL_SEQS: SeqRange = [1, NO_LIMIT];

const RUN_COLUMNS = `id, trace_path, trace_sha256, variant, flags, fault_plan, header, status, error, head_hash, ops_head_hash,
  final_digest, created_seq, ERROR_PLACE,
  CASE WHEN status = 'running' THEN (SELECT coalesce(max(seq), 0) FROM events e WHERE e.run = runs.id) ELSE event_count END AS event_count,
  CASE WHEN status = 'running' THEN (SELECT coalesce(max(idx) + 1, 0) FROM ops o WHERE o.run = runs.id) ELSE op_count END AS op_count`;

/**
 * The run columns of a schema with `migrations`: one read without migration 0002 has no error_op,
 * error_line, and reads them as `nullInteger` (the dialect's spelling of an integer NULL).
 */
export function runColumns(migrations: ReadonlySet<string>, nullInteger: string): string {
  return RUN_COLUMNS.replace(
    'ERROR_PLACE',
    migrations.has('0002_run_failure')
      ? 'error_op, error_line'
      : `${nullInteger} AS error_op, ${nullInteger} AS error_line`,
  );
}

/**
 * The seq range of an op that has no ops row yet: the op still open (everything after `last`, the last
 * ops row) or, for an op before it, none.
 */
export function openOpRange(op: number, last: { idx: number; lastSeq: number } | undefined): SeqRange | undefined {
  const ended = last === undefined ? 0 : last.idx + 1;
  return op >= ended ? [(last?.lastSeq ?? 0) + 1, NO_LIMIT] : undefined;
}

/** The seqs a filter asks for within `opRange` (ALL_SEQS without an op); undefined when none. */
export function seqWindow(filter: EventFilter, opRange: SeqRange | undefined): SeqRange | undefined {
  if (opRange === undefined) return undefined;
  const from = Math.max(1, filter.fromSeq ?? 1, opRange[0]);
  const to = Math.min(NO_LIMIT, filter.toSeq ?? NO_LIMIT, opRange[1]);
  return from > to ? undefined : [from, to];
}

/** An event_blocks row: the seq range of one batch and the JSON list of the types it holds. */
export interface BlockRow {
  first_seq: number;
  last_seq: number;
  types: string;
}

/** Seq ranges within [from, to] of the blocks holding any of `types`; adjacent blocks merged. */
export function typeRanges(
  run: number,
  blocks: Iterable<BlockRow>,
  from: number,
  to: number,
  types: readonly string[],
): SeqRange[] {
  const wanted = new Set(types);
  const ranges: [number, number][] = [];
  for (const block of blocks) {
    const blockTypes = parseRow(
      z.array(z.string()),
      JSON.parse(block.types),
      `event block ${block.first_seq} of run ${run}`,
    );
    if (!blockTypes.some((type) => wanted.has(type))) continue;
    const first = Math.max(block.first_seq, from);
    const last = Math.min(block.last_seq, to);
    if (first > last) continue;
    const previous = ranges[ranges.length - 1];
    if (previous !== undefined && previous[1] + 1 === first) previous[1] = last;
    else ranges.push([first, last]);
  }
  return ranges;
}

/** Event rows are the hot path: only the columns a reader relies on are checked. */
/** A replay row from the columns seq, op, payload of one event row, checked as checkEventRow does. */
export function replayRow(run: number, seq: unknown, op: unknown, payload: unknown): ReplayRow {
  if (typeof payload !== 'string' || typeof seq !== 'number' || typeof op !== 'number') {
    const field = typeof seq !== 'number' ? 'seq' : typeof op !== 'number' ? 'op' : 'payload';
    throw new StoreError('bad-row', `run ${run}: event row of seq ${String(seq)}: column ${field} has the wrong type`, {
      run,
      seq,
      field,
    });
  }
  return { seq, op, payload };
}

export function checkEventRow(run: number, row: { id: unknown; seq: unknown; type: unknown; payload: unknown }): void {
  if (typeof row.payload !== 'string' || typeof row.seq !== 'number' || typeof row.type !== 'string') {
    throw new StoreError('bad-row', `run ${run}: event row ${String(row.id)} has a column of the wrong type`, {
      run,
      id: row.id,
    });
  }
}
