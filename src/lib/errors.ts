// SPDX-License-Identifier: GPL-2.0-only
/**
 * The error classes of library code. Kernel rejections are never errors (they are errno results recorded
 * as events); these are for bugs and bad input, each with the values its message was made from so tests
 * and `--json` output need not parse prose. Library code only throws them; the CLI's main is the one place
 * that catches them and maps them to exit codes (2 for the user's input, 3 for internal failures).
 *
 * Other layers keep their own: TraceError and EventBudgetError (replay), StoreError and NotAStoreError
 * (store), ToolError (groundtruth), and the CLI's own error for bad flags and positionals (cli/errors).
 */

/** A bug in ioptrace itself (a reducer got an event it cannot apply, an impossible state). */
export class InternalError extends Error {
  override readonly name = 'InternalError';
}

/** Something the user named does not exist: "no run 7", "pages 9 never exists in run 1". */
export class NotFoundError extends Error {
  override readonly name: string = 'NotFoundError';

  constructor(
    message: string,
    /** The kind of thing looked for: 'run', 'pages', 'process', 'user', 'mm', 'trace', 'store'. */
    readonly what: string,
    /** What it was looked for by (a run id, a pid, a path). */
    readonly id: string | number,
  ) {
    super(message);
  }
}

/** A position outside what exists: an op or event seq past the end of a run. */
export class BadRangeError extends Error {
  override readonly name = 'BadRangeError';

  constructor(
    message: string,
    /** What the position counts: 'op', 'seq'. */
    readonly what: string,
    readonly value: number,
    /** The allowed range, both ends included. */
    readonly min: number,
    readonly max: number,
  ) {
    super(message);
  }
}

/**
 * Malformed input that is not a trace file (those are TraceErrors): a bad expression, an unknown variant or
 * fix flag, an argument of the wrong shape. `line` and `field` say where, when the input has them.
 */
export class BadInputError extends Error {
  override readonly name: string = 'BadInputError';
  readonly line: number | null;
  readonly field: string | null;

  constructor(message: string, where: { line?: number; field?: string } = {}) {
    super(message);
    this.line = where.line ?? null;
    this.field = where.field ?? null;
  }
}

/**
 * The incremental invariant checker and the full one (its oracle) disagree about an op: a bug in the
 * incremental one. Thrown only in the differential mode (`check: 'differential'`, IOPTRACE_CHECK).
 */
export class CheckerDivergence extends Error {
  override readonly name = 'CheckerDivergence';

  constructor(
    /** The op after which they disagree. */
    readonly op: number,
    /** The key of the first finding they disagree on. */
    readonly finding: string,
    /** That finding as each checker reported it (null: not reported). */
    readonly incremental: string | null,
    readonly full: string | null,
  ) {
    super(
      `the incremental invariant checker diverges from the full one after op ${op} on finding ${finding}: ` +
        `incremental ${incremental ?? '(none)'}; full ${full ?? '(none)'}`,
    );
  }
}
