// SPDX-License-Identifier: GPL-2.0-only
/**
 * The event store's public API: open a store, write runs through a RunWriter, read and verify them, run the
 * queries of src/store/queries/. Code outside src/store/ imports from here and sees neither SQL, kysely nor
 * SQLite: src/store/sqlite/ (a file, the embedded default) and src/store/postgres/ (a server) are the two
 * backends, behind the Store interface of types.ts; openStore picks one by the location it is given.
 */

import { isPostgresUrl } from './postgres/pool.js';
import { openPostgresStore } from './postgres/open.js';
import { openStore as openSqliteStore, type OpenStoreOptions } from './sqlite/open.js';
import type { Store } from './types.js';

export type { OpenStoreOptions } from './sqlite/open.js';
export { DEFAULT_BATCH_SIZE, failedBatchAt } from './run-writer.js';
export { isPostgresUrl } from './postgres/pool.js';

/**
 * Opens the store at `location`: a postgres:// or postgresql:// URL opens a PostgreSQL server's store
 * (busyTimeoutMs does not apply there: writers of different runs do not wait for each other); anything else
 * is the path of a SQLite file.
 */
export function openStore(location: string, options: OpenStoreOptions = {}): Promise<Store> {
  if (isPostgresUrl(location)) {
    return openPostgresStore(location, options.readonly === undefined ? {} : { readonly: options.readonly });
  }
  return openSqliteStore(location, options);
}
export { NotAStoreError, StoreError, type NotAStoreCode, type StoreErrorCode } from './errors.js';
export type { RunStatus } from './schema.js';
export { checkCopyable, copyRun, copyRuns, type CopiedRun, type CopyOptions } from './copy.js';
export type { StoreQuery } from './queries/context.js';
export { eventBlocksQuery, type EventBlock } from './queries/blocks.js';
export {
  attachFailureRunsQuery,
  claimFailureQuery,
  farmFailuresQuery,
  openClaimsQuery,
  recordHitQuery,
  renewClaimQuery,
  takeOverClaimQuery,
  type ClaimHolder,
  type FailureClaim,
  type FailureHit,
  type FailureIdentity,
  type FarmFailure,
  type OpenClaim,
} from './queries/failures.js';
export { differingStretchesQuery, opPairsQuery, type OpPairRow } from './queries/op-compare.js';
export { typedEventsQuery, type TypedEventRow } from './queries/typed-events.js';
export {
  ACCOUNTING_COUNTERS,
  COUNTER_NAMES,
  accountClosingsQuery,
  finalBalancesQuery,
  holdingChangesQuery,
  lastLinesQuery,
  ledgerLinesQuery,
  objectEventsQuery,
  pagesClosingsQuery,
  seriesClosingsQuery,
  type Account,
  type AccountModeName,
  type AccountingCounter,
  type Closing,
  type CounterName,
  type LedgerLine,
  type LedgerSelection,
  type LineFilter,
  type ObjectEventRow,
  type PagesClosing,
  type SeriesClosing,
} from './queries/ledger.js';
export { OP_CHUNK, opsInOrder } from './op-stream.js';
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
