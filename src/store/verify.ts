// SPDX-License-Identifier: GPL-2.0-only
/**
 * verify: re-walk the hash chains of stored runs and name the first row that does not fit.
 *
 * Each event is checked against the *stored* hash of the previous event, so the first broken row is the
 * first edited one (a row whose hash was recomputed by whoever edited it breaks the next row instead).
 * A missing or renumbered row shows as a seq gap. For finished runs the stored head hashes and counts must
 * equal what the rows give; a running (incomplete) run has no stored head, so only its rows are checked.
 * Also checked: the trace text against its sha256, the ops chain, and that event_blocks tile the run and
 * list every event's type (type queries rely on that).
 *
 * Streaming: events and ops are read in keyset chunks, so memory does not grow with the run; the zone map
 * (one row per batch) is read whole.
 *
 * Incomplete is not broken: a run without its finish row (still being written, or its writer was killed)
 * holds whole batches, because a batch's events, block, op rows and snapshots commit in one transaction.
 * Its rows are checked like any others, and its tail must end where its last block ends. All reads of one
 * verify happen in one read transaction, so a writer committing meanwhile is not seen half-way (events
 * read after the blocks were) and raises no false alarm. Only the head hash a finished run records seals
 * its end: whole batches cut off the tail of a run that never finished cannot be told from an interruption.
 */

import { DIGEST_HEX, eventHash, genesisHash, opHash, sha256Hex } from './chain.js';
import { StoreError } from './errors.js';
import type { BrokenEvent, BrokenOp, OpRow, RunMismatch, RunStatus, RunVerification, VerifyReport } from './types.js';

/** Rows per read of events or ops. */
const VERIFY_CHUNK = 1024;

/** A run's row as verify reads it: RUN_SQL's columns. */
export interface RunRecord {
  id: number;
  trace_sha256: string;
  trace_text: string;
  variant: string;
  flags: string;
  fault_plan: string;
  status: RunStatus;
  event_count: number;
  op_count: number;
  head_hash: string | null;
  ops_head_hash: string | null;
}

export interface RawEvent {
  id: unknown;
  seq: unknown;
  op: unknown;
  type: unknown;
  v: unknown;
  payload: unknown;
  hash: unknown;
}

export interface RawOp {
  idx: unknown;
  line: unknown;
  op: unknown;
  errno: unknown;
  result: unknown;
  first_seq: unknown;
  last_seq: unknown;
  digest: unknown;
  hash: unknown;
}

const VERIFY_RUN_SQL = `SELECT id, trace_sha256, trace_text, variant, flags, fault_plan, status, event_count, op_count, head_hash,
  ops_head_hash FROM runs`;

export interface BlockRecord {
  first_seq: number;
  last_seq: number;
  types: string;
}

/**
 * The reads verify makes, all inside one read snapshot that the backend holds open around verifyWith
 * (SQLite: one deferred read transaction; PostgreSQL: one REPEATABLE READ, READ ONLY transaction).
 */
export interface VerifySource {
  /** Every run id, ascending. */
  runIds(): Promise<number[]>;
  run(id: number): Promise<RunRecord | undefined>;
  /** The run's event_blocks rows by first_seq. */
  blocks(run: number): Promise<BlockRecord[]>;
  /** Up to VERIFY_CHUNK events of the run with seq > afterSeq, by seq. */
  events(run: number, afterSeq: number): Promise<RawEvent[]>;
  /** Up to VERIFY_CHUNK op rows of the run with idx >= fromIndex, by idx. */
  ops(run: number, fromIndex: number): Promise<RawOp[]>;
}

/** Runs one statement inside the backend's read snapshot and returns its rows. */
export type VerifyQuery = (sql: string, params: unknown[]) => Promise<unknown[]>;

/**
 * verify's reads as statements run by `query`, with the n-th (1-based) bound parameter spelled
 * `placeholder(n)`: a backend adds only its transaction around verifyWith.
 */
export function verifySource(query: VerifyQuery, placeholder: (n: number) => string): VerifySource {
  const [p1, p2] = [placeholder(1), placeholder(2)];
  const rowsOf = async <T>(sql: string, params: unknown[]): Promise<T[]> => (await query(sql, params)) as T[];
  return {
    runIds: async () => (await rowsOf<{ id: number }>('SELECT id FROM runs ORDER BY id', [])).map((r) => r.id),
    run: async (id) => (await rowsOf<RunRecord>(`${VERIFY_RUN_SQL} WHERE id = ${p1}`, [id]))[0],
    blocks: (run) =>
      rowsOf<BlockRecord>(`SELECT first_seq, last_seq, types FROM event_blocks WHERE run = ${p1} ORDER BY first_seq`, [
        run,
      ]),
    events: (run, afterSeq) =>
      rowsOf<RawEvent>(
        `SELECT id, seq, op, type, v, payload, hash FROM events WHERE run = ${p1} AND seq > ${p2} ORDER BY seq LIMIT ${VERIFY_CHUNK}`,
        [run, afterSeq],
      ),
    ops: (run, fromIndex) =>
      rowsOf<RawOp>(
        `SELECT idx, line, op, errno, result, first_seq, last_seq, digest, hash FROM ops WHERE run = ${p1} AND idx >= ${p2} ORDER BY idx LIMIT ${VERIFY_CHUNK}`,
        [run, fromIndex],
      ),
  };
}

/**
 * Test-only: called after a run's event blocks are read and before its events are, so a test can commit
 * more rows in between and check that verify reads one snapshot.
 */
export const verifyTestHooks: { afterBlocks?: (run: number) => void | Promise<void> } = {};

/** Verifies one run or all, reading through `source` (already inside its read snapshot). */
export async function verifyWith(source: VerifySource, run?: number): Promise<VerifyReport> {
  const ids = run === undefined ? await source.runIds() : [run];
  const runs: RunVerification[] = [];
  // One run row at a time: each holds its whole trace text.
  for (const id of ids) {
    const record = await source.run(id);
    if (record === undefined) throw new StoreError('no-such-run', `no run ${id} in this database`, { run: id });
    runs.push(await verifyRun(source, record));
  }
  return { ok: runs.every((r) => r.ok), runs };
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : String(value);
}

async function verifyRun(source: VerifySource, record: RunRecord): Promise<RunVerification> {
  const mismatches: RunMismatch[] = [];
  const finished = record.status !== 'running';
  const traceSha = sha256Hex(record.trace_text);
  if (traceSha !== record.trace_sha256) {
    mismatches.push({ what: 'trace-sha256', expected: record.trace_sha256, actual: traceSha });
  }
  const genesis = genesisHash(record.trace_sha256, record.variant, record.flags, record.fault_plan);

  const blocks = checkBlocks(await source.blocks(record.id), mismatches);
  await verifyTestHooks.afterBlocks?.(record.id);
  const events = await walkEvents(source, record.id, genesis, blocks, mismatches);
  if (finished && events.broken === undefined) {
    if (events.count !== record.event_count) {
      mismatches.push({ what: 'event-count', expected: String(record.event_count), actual: String(events.count) });
    }
    if (events.head !== record.head_hash) {
      mismatches.push({ what: 'head-hash', expected: str(record.head_hash), actual: events.head });
    }
  }

  const ops = await walkOps(source, record.id, genesis, events.broken === undefined ? events.count : null);
  if (finished && ops.broken === undefined) {
    if (ops.count !== record.op_count) {
      mismatches.push({ what: 'op-count', expected: String(record.op_count), actual: String(ops.count) });
    }
    if (ops.head !== record.ops_head_hash) {
      mismatches.push({ what: 'ops-head-hash', expected: str(record.ops_head_hash), actual: ops.head });
    }
  }

  const verification: RunVerification = {
    run: record.id,
    status: record.status,
    incomplete: !finished,
    events: events.count,
    batches: blocks.length,
    ops: ops.count,
    ok: events.broken === undefined && ops.broken === undefined && mismatches.length === 0,
    mismatches,
  };
  if (events.broken !== undefined) verification.firstBroken = events.broken;
  if (ops.broken !== undefined) verification.firstBrokenOp = ops.broken;
  return verification;
}

interface Block {
  first: number;
  last: number;
  types: Set<string>;
}

function checkBlocks(rows: BlockRecord[], mismatches: RunMismatch[]): Block[] {
  const blocks: Block[] = [];
  let next = 1;
  for (const row of rows) {
    let types: unknown;
    try {
      types = JSON.parse(row.types);
    } catch {
      types = undefined;
    }
    if (!Array.isArray(types) || row.first_seq !== next || row.last_seq < row.first_seq) {
      mismatches.push({
        what: 'event-blocks',
        expected: `a block starting at seq ${next}`,
        actual: `block ${row.first_seq}..${row.last_seq}`,
      });
      return [];
    }
    blocks.push({ first: row.first_seq, last: row.last_seq, types: new Set(types.map(String)) });
    next = row.last_seq + 1;
  }
  return blocks;
}

async function walkEvents(
  source: VerifySource,
  run: number,
  genesis: string,
  blocks: Block[],
  mismatches: RunMismatch[],
): Promise<{ count: number; head: string; broken?: BrokenEvent }> {
  let blockIndex = 0;
  let blocksOk = mismatches.every((m) => m.what !== 'event-blocks');
  let prev = genesis;
  let seq = 0;
  for (;;) {
    const rows = await source.events(run, seq);
    for (const row of rows) {
      const expectedSeq = seq + 1;
      if (row.seq !== expectedSeq) {
        return {
          count: seq,
          head: prev,
          broken: {
            seq: expectedSeq,
            id: null,
            expected: String(expectedSeq),
            actual: str(row.seq),
            reason: 'seq-gap',
          },
        };
      }
      const id = typeof row.id === 'number' ? row.id : null;
      if (
        typeof row.op !== 'number' ||
        typeof row.v !== 'number' ||
        typeof row.type !== 'string' ||
        typeof row.payload !== 'string' ||
        typeof row.hash !== 'string'
      ) {
        return {
          count: seq,
          head: prev,
          broken: {
            seq: expectedSeq,
            id,
            expected: 'integer op and v, text type, payload and hash',
            actual: 'another type',
            reason: 'bad-row',
          },
        };
      }
      const expected = eventHash(prev, expectedSeq, row.op, row.v, row.type, row.payload);
      if (expected !== row.hash) {
        return {
          count: seq,
          head: prev,
          broken: { seq: expectedSeq, id, expected, actual: row.hash, reason: 'hash-mismatch' },
        };
      }
      if (blocksOk) {
        let block = blocks[blockIndex];
        while (block !== undefined && block.last < expectedSeq) block = blocks[++blockIndex];
        if (block === undefined || !block.types.has(row.type)) {
          mismatches.push({
            what: 'event-blocks',
            expected: `a block listing type ${row.type} at seq ${expectedSeq}`,
            actual: block === undefined ? 'no block' : `block ${block.first}..${block.last}`,
          });
          blocksOk = false;
        }
      }
      prev = row.hash;
      seq = expectedSeq;
    }
    if (rows.length < VERIFY_CHUNK) break;
  }
  const lastBlock = blocks[blocks.length - 1];
  if (blocksOk && (lastBlock?.last ?? 0) !== seq) {
    mismatches.push({
      what: 'event-blocks',
      expected: `events up to seq ${lastBlock?.last ?? 0}`,
      actual: `events up to seq ${seq}`,
    });
  }
  return { count: seq, head: prev };
}

/** `eventCount` null: the event chain is broken, so op ranges are not checked against it. */
async function walkOps(
  source: VerifySource,
  run: number,
  genesis: string,
  eventCount: number | null,
): Promise<{ count: number; head: string; broken?: BrokenOp }> {
  let prev = genesis;
  let index = 0;
  let lastSeq = 0;
  for (;;) {
    const rows = await source.ops(run, index);
    for (const row of rows) {
      if (row.idx !== index) {
        return {
          count: index,
          head: prev,
          broken: { index, expected: String(index), actual: str(row.idx), reason: 'index-gap' },
        };
      }
      if (
        typeof row.line !== 'number' ||
        typeof row.op !== 'string' ||
        (row.errno !== null && typeof row.errno !== 'string') ||
        typeof row.result !== 'string' ||
        typeof row.first_seq !== 'number' ||
        typeof row.last_seq !== 'number' ||
        typeof row.digest !== 'string' ||
        !DIGEST_HEX.test(row.digest) ||
        typeof row.hash !== 'string'
      ) {
        return {
          count: index,
          head: prev,
          broken: { index, expected: 'columns of the declared types', actual: 'another type', reason: 'bad-row' },
        };
      }
      const fields: OpRow = {
        index,
        line: row.line,
        op: row.op,
        errno: row.errno,
        result: row.result,
        firstSeq: row.first_seq,
        lastSeq: row.last_seq,
        digest: row.digest,
      };
      const expected = opHash(prev, fields);
      if (expected !== row.hash) {
        return { count: index, head: prev, broken: { index, expected, actual: row.hash, reason: 'hash-mismatch' } };
      }
      if (
        row.first_seq !== lastSeq + 1 ||
        row.last_seq < lastSeq ||
        (eventCount !== null && row.last_seq > eventCount)
      ) {
        return {
          count: index,
          head: prev,
          broken: {
            index,
            expected: `events from seq ${lastSeq + 1}`,
            actual: `events ${row.first_seq}..${row.last_seq}`,
            reason: 'seq-range',
          },
        };
      }
      prev = row.hash;
      lastSeq = row.last_seq;
      index++;
    }
    if (rows.length < VERIFY_CHUNK) break;
  }
  return { count: index, head: prev };
}
