// SPDX-License-Identifier: GPL-2.0-only
/**
 * Test seams of the SQLite backend: what a test of SQLite itself (a full disk, a verify racing a writer)
 * must reach below the Store interface. Only tests import this file.
 */

import { InternalError } from '../../lib/errors.js';
import type { Store } from '../types.js';
import { SqliteStore } from './store.js';

export { verifyTestHooks } from '../verify.js';

/** Runs `pragma` on the connection of a SQLite store (e.g. 'max_page_count = 40'); returns its rows. */
export function sqlitePragma(store: Store, pragma: string): unknown {
  if (!(store instanceof SqliteStore)) throw new InternalError('sqlitePragma needs a SQLite store');
  return store.pragma(pragma);
}
