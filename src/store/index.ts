// SPDX-License-Identifier: GPL-2.0-only
/**
 * The event store's public API: open a store, write runs through a RunWriter, read and verify them.
 * Code outside src/store/ imports from here and sees no SQLite.
 */

export { openStore, type OpenStoreOptions } from './sqlite.js';
export { DEFAULT_BATCH_SIZE } from './append.js';
export { NotAStoreError, StoreError, type NotAStoreCode, type StoreErrorCode } from './errors.js';
export type { Database, RunStatus } from './schema.js';
export type {
  BeginRunOptions,
  BrokenEvent,
  BrokenEventReason,
  BrokenOp,
  EventFilter,
  EventRow,
  FinishSummary,
  OpRow,
  RunInfo,
  RunMismatch,
  RunRow,
  RunVerification,
  RunWriter,
  Snapshot,
  Store,
  StoredEvent,
  StoredOp,
  VerifyReport,
  WriteStep,
} from './types.js';
