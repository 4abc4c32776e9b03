// SPDX-License-Identifier: GPL-2.0-only
/** Shared argument checks of the commands that read a run. */
import type { RunRow, Store } from '../../store/index.js';
import { NotFoundError } from '../../lib/errors.js';

export async function requireRun(store: Store, run: number): Promise<RunRow> {
  const row = await store.run(run);
  if (!row) throw new NotFoundError(`no run ${run} in ${store.path} (ioptrace runs lists them)`, 'run', run);
  return row;
}
