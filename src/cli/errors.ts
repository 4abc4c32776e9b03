// SPDX-License-Identifier: GPL-2.0-only
/**
 * Bad command-line usage (an unknown flag, a missing positional, a flag value of the wrong shape). Only the
 * CLI throws it: library code reports what is wrong with its input through the typed errors of lib/errors.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
