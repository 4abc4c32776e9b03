// SPDX-License-Identifier: GPL-2.0-only
/**
 * Store failures: infrastructure (cannot open, migration failed, database newer than this build, a write
 * that did not commit) and bugs of the caller that would corrupt the log (a gap in event seqs, an op that
 * does not cover the events appended since the previous one). `code` is stable for tests and the CLI;
 * `details` holds the values the message was made from.
 *
 * A path that holds no ioptrace store is the user's mistake, not a store failure: NotAStoreError is a
 * NotFoundError (no store found at that path; exit 2), and the file it names was not written to.
 */

import { NotFoundError } from '../lib/errors.js';

export type StoreErrorCode =
  | 'open-failed'
  | 'migration-failed'
  | 'database-newer'
  | 'schema-outdated'
  | 'readonly'
  | 'no-such-run'
  | 'seq-gap'
  | 'bad-op'
  | 'bad-snapshot'
  | 'bad-argument'
  | 'bad-row'
  | 'write-failed'
  | 'writer-closed'
  | 'writer-broken'
  | 'run-failed'
  /** A run copy (copy.ts) refused: the source does not verify, or the copy would not match it. */
  | 'copy-refused';

export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly code: StoreErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: StoreErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = code;
    this.details = details;
  }
}

/** The message of whatever was thrown, for wrapping a driver error into a StoreError. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export type NotAStoreCode =
  /** Nothing at the path (or an empty file) where a read needs an existing store. */
  | 'no-store'
  /** A file that is not SQLite, or an SQLite database of another program. */
  | 'not-a-store';

export class NotAStoreError extends NotFoundError {
  override readonly name: string = 'NotAStoreError';
  readonly code: NotAStoreCode;
  readonly details: Readonly<Record<string, unknown>> & { readonly path: string };

  constructor(code: NotAStoreCode, message: string, details: Record<string, unknown> & { path: string }) {
    super(message, 'store', details.path);
    this.code = code;
    this.details = details;
  }
}
