// SPDX-License-Identifier: GPL-2.0-only
/** How a better-sqlite3 error reads inside a StoreError message. */

import { messageOf } from '../errors.js';

/** The message of a driver error with its SQLite code when it has one: "database or disk is full (SQLITE_FULL)". */
export function describeCause(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = messageOf(error);
  return typeof code === 'string' && code.startsWith('SQLITE_') && !message.includes(code)
    ? `${message} (${code})`
    : message;
}
