// SPDX-License-Identifier: GPL-2.0-only
/**
 * What every backend's RunWriter checks before it buffers a row, and where its chains stand: one home, so
 * SQLite and PostgreSQL refuse the same rows with the same errors.
 */
import { DIGEST_HEX } from './chain.js';
import { StoreError } from './errors.js';
import type { EventRow, OpRow } from './types.js';

/** Where the chains stand: kept twice, as appended (live) and as committed, to undo a failed batch. */
export interface ChainState {
  /** Last appended seq. */
  seq: number;
  head: string;
  opsHead: string;
  /** Ops closed so far = index of the op now open. */
  opsEnded: number;
  /** last_seq of the last closed op. */
  lastOpLastSeq: number;
  lastSnapshotSeq: number;
}

export function genesisChainState(genesis: string): ChainState {
  return { seq: 0, head: genesis, opsHead: genesis, opsEnded: 0, lastOpLastSeq: 0, lastSnapshotSeq: -1 };
}

/** An event must follow the last one and belong to the open op. */
export function checkEventRow(run: number, live: ChainState, row: EventRow): void {
  if (row.seq !== live.seq + 1) {
    throw new StoreError('seq-gap', `run ${run}: event seq ${row.seq} does not follow seq ${live.seq}`, {
      run,
      expected: live.seq + 1,
      actual: row.seq,
    });
  }
  if (row.op !== live.opsEnded) {
    throw new StoreError(
      'bad-op',
      `run ${run}: event seq ${row.seq} names op ${row.op}, but op ${live.opsEnded} is open`,
      {
        run,
        seq: row.seq,
        expected: live.opsEnded,
        actual: row.op,
      },
    );
  }
}

/** An op must be the open one, cover exactly the events appended since the previous op, and carry a digest. */
export function checkOpRow(run: number, live: ChainState, row: OpRow): void {
  if (row.index !== live.opsEnded) {
    throw new StoreError('bad-op', `run ${run}: op ${row.index} ended, but op ${live.opsEnded} is open`, {
      run,
      expected: live.opsEnded,
      actual: row.index,
    });
  }
  if (row.firstSeq !== live.lastOpLastSeq + 1 || row.lastSeq !== live.seq) {
    throw new StoreError(
      'bad-op',
      `run ${run}: op ${row.index} claims events ${row.firstSeq}..${row.lastSeq}, but the events appended since the previous op are ${live.lastOpLastSeq + 1}..${live.seq}`,
      { run, index: row.index, firstSeq: row.firstSeq, lastSeq: row.lastSeq },
    );
  }
  if (!DIGEST_HEX.test(row.digest)) {
    throw new StoreError('bad-op', `run ${run}: op ${row.index} digest must be 16 hex digits, not '${row.digest}'`, {
      run,
      index: row.index,
      digest: row.digest,
    });
  }
}

/** A snapshot must follow the previous one and not pass the last event. */
export function checkSnapshotSeq(run: number, live: ChainState, seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 0 || seq > live.seq || seq <= live.lastSnapshotSeq) {
    throw new StoreError(
      'bad-snapshot',
      `run ${run}: snapshot at seq ${seq} must follow the previous one (${live.lastSnapshotSeq}) and not pass the last event (${live.seq})`,
      { run, seq },
    );
  }
}
