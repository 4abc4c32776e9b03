// SPDX-License-Identifier: GPL-2.0-only
/**
 * Test seams of the SQLite backend: what a test of SQLite itself (a full disk, a verify racing a writer)
 * must reach below the Store interface. Only tests import this file.
 */

import { InternalError } from '../../lib/errors.js';
import type { Store } from '../types.js';
import { sqliteConnectionOf } from './store.js';

export { verifyTestHooks } from '../verify.js';

/** Runs `pragma` on the connection of a SQLite store (e.g. 'max_page_count = 40'); returns its rows. */
export function sqlitePragma(store: Store, pragma: string): unknown {
  const conn = sqliteConnectionOf(store);
  if (conn === undefined) throw new InternalError('sqlitePragma needs a SQLite store');
  // Some pragmas (max_page_count) hold per connection: this store's own, not a new one, and those of the
  // writer threads its runs start from now on.
  if (pragma.includes('=')) conn.home?.pragmas.push(pragma);
  return conn.raw.pragma(pragma);
}
