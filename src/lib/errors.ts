// SPDX-License-Identifier: GPL-2.0-only
/**
 * The few error classes of ioptrace. Kernel rejections are never errors (they are errno results recorded
 * as events); these are for bugs, bad input and infrastructure. Only the CLI's main catches them and maps
 * them to exit codes: 2 for bad input or usage, 3 for internal errors.
 */

/** A bug in ioptrace itself (a reducer got an event it cannot apply, an impossible state). */
export class InternalError extends Error {
  override readonly name = 'InternalError';
}

/** Bad command-line usage or arguments. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
