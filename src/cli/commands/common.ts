// SPDX-License-Identifier: GPL-2.0-only
/** Shared argument checks of the commands that read a run. */
import type { RunRow, Store } from '../../store/index.js';
import { NotFoundError } from '../../lib/errors.js';

export function requireRun(store: Store, run: number): RunRow {
  const row = store.run(run);
  if (!row) throw new NotFoundError(`no run ${run} in ${store.path} (ioptrace runs lists them)`, 'run', run);
  return row;
}
