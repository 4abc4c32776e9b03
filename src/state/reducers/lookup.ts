// SPDX-License-Identifier: GPL-2.0-only
/** Reducers apply events the model has already checked; a missing object here is a bug, not a finding. */
import { InternalError } from '../../lib/errors.js';

export function mustGet<K extends string | number, V>(table: Record<K, V>, key: K, what: string): V {
  const value = table[key];
  if (value === undefined) throw new InternalError(`reducer: no ${what} ${String(key)}`);
  return value;
}
