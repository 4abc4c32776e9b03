// SPDX-License-Identifier: GPL-2.0-only
/**
 * A run's op rows in index order, read OP_CHUNK at a time through `Store.ops`: a scan over every op of a
 * long run (the audit's forward pass) holds one chunk, never the whole op table. Works on every dialect,
 * since it only uses the Store interface.
 */
import type { Store, StoredOp } from './types.js';

/** Op rows per read. */
export const OP_CHUNK = 4096;

/**
 * The op rows of `run` from index `first` on, in index order.
 *
 * @example for await (const op of opsInOrder(store, 1)) total += op.lastSeq - op.firstSeq + 1;
 */
export async function* opsInOrder(store: Store, run: number, first = 0): AsyncGenerator<StoredOp, void, undefined> {
  for (let at = first; ;) {
    const rows = await store.ops(run, at, at + OP_CHUNK - 1);
    yield* rows;
    const last = rows[rows.length - 1];
    if (rows.length < OP_CHUNK || last === undefined) return;
    at = last.index + 1;
  }
}
