// SPDX-License-Identifier: GPL-2.0-only
/**
 * Store failures: infrastructure (cannot open, migration failed, database newer than this build, a write
 * that did not commit) and bugs of the caller that would corrupt the log (a gap in event seqs, an op that
 * does not cover the events appended since the previous one). `code` is stable for tests and the CLI;
 * `details` holds the values the message was made from.
 */

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
  | 'writer-broken';

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
