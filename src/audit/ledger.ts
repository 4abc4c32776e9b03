// SPDX-License-Identifier: GPL-2.0-only
/**
 * The accounting ledger of a run: every change to a pin counter, with the balance of its account after it.
 * The rows come from store queries (src/store/queries/ledger.ts, which explains the counters and how the
 * balances are computed in the database); this file is the audit's door to them and folds the object
 * events into the iopt_pages and processes the accounts belong to.
 */
import {
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
  type Closing,
  type LedgerLine,
  type LedgerSelection,
  type PagesClosing,
  type SeriesClosing,
  type Store,
} from '../store/index.js';

export {
  ACCOUNTING_COUNTERS,
  COUNTER_NAMES,
  type Account,
  type AccountModeName,
  type AccountingCounter,
  type Closing,
  type CounterName,
  type LedgerLine,
  type LedgerSelection,
  type LineFilter,
  type PagesClosing,
  type SeriesClosing,
} from '../store/index.js';

/**
 * The ledger lines of a run (all, or the selection), in seq order, each with its trace line.
 *
 * @example await ledgerLines(store, 1, { where: [{ pages: [2] }] })
 */
export function ledgerLines(store: Store, run: number, selection: LedgerSelection = {}): Promise<LedgerLine[]> {
  return store.query(ledgerLinesQuery(run, selection));
}

/** The last line of each selected account (where its balance was left). */
export function lastLines(store: Store, run: number, accounts: readonly Account[]): Promise<LedgerLine[]> {
  return store.query(lastLinesQuery(run, accounts));
}

/** Balances of every account at the end of each op in which it changed, by op then account. */
export function accountClosings(store: Store, run: number): Promise<Closing[]> {
  return store.query(accountClosingsQuery(run));
}

/** Per-pages balances of the accounting counters at the end of each op in which they changed. */
export function pagesClosings(store: Store, run: number): Promise<PagesClosing[]> {
  return store.query(pagesClosingsQuery(run));
}

/**
 * The chart series: per counter, the total of the selected lines at the end of each op in which it changed
 * (a running sum of the selected deltas, so a filter shows the selected accounts' total).
 */
export function seriesClosings(store: Store, run: number, selection: LedgerSelection = {}): Promise<SeriesClosing[]> {
  return store.query(seriesClosingsQuery(run, selection));
}

/** Final balance of every account of a run (the last closing of each). */
export function finalBalances(store: Store, run: number): Promise<Closing[]> {
  return store.query(finalBalancesQuery(run));
}

// ---- the objects the accounts belong to ------------------------------------------------------------------

export interface PagesInfo {
  pages: number;
  npages: number;
  sourcePid: string;
  sourceMm: number;
  sourceUid: number;
  /** Op of PagesAllocated. */
  allocatedOp: number;
  /** Account mode changes in op order, the first being the mode at allocation. */
  modes: { op: number; mode: AccountModeName }[];
  /** Op and seq of PagesReleased; null while the pages lives. */
  releasedOp: number | null;
  releasedSeq: number | null;
}

export interface ProcessInfo {
  pid: string;
  mm: number;
  uid: number;
  op: number;
  /** Op of ProcessExited; null while it lives. */
  exitedOp: number | null;
}

export interface RunObjects {
  pages: Map<number, PagesInfo>;
  processes: Map<string, ProcessInfo>;
}

/** Every iopt_pages (with its account modes and release) and every process of a run. */
export async function runObjects(store: Store, run: number): Promise<RunObjects> {
  const rows = await store.query(objectEventsQuery(run));
  const pages = new Map<number, PagesInfo>();
  const processes = new Map<string, ProcessInfo>();
  for (const r of rows) {
    if (r.type === 'ProcessCreated') {
      processes.set(String(r.pid), { pid: String(r.pid), mm: r.mm ?? 0, uid: r.uid ?? 0, op: r.op, exitedOp: null });
      continue;
    }
    if (r.type === 'ProcessExited') {
      const proc = processes.get(String(r.pid));
      if (proc !== undefined) proc.exitedOp = r.op;
      continue;
    }
    const id = r.pages ?? 0;
    if (r.type === 'PagesAllocated') {
      pages.set(id, {
        pages: id,
        npages: r.npages ?? 0,
        sourcePid: String(r.sourcePid),
        sourceMm: r.sourceMm ?? 0,
        sourceUid: r.sourceUid ?? 0,
        allocatedOp: r.op,
        modes: [{ op: r.op, mode: r.mode ?? 'none' }],
        releasedOp: null,
        releasedSeq: null,
      });
      continue;
    }
    const info = pages.get(id);
    if (info === undefined) continue;
    if (r.type === 'PagesAccountModeSet') info.modes.push({ op: r.op, mode: r.mode ?? 'none' });
    else if (r.type === 'PagesSourceChanged') {
      // IOMMU_IOAS_CHANGE_PROCESS: the accounts are the new source's from here on.
      info.sourcePid = String(r.sourcePid);
      info.sourceMm = r.sourceMm ?? 0;
      info.sourceUid = r.sourceUid ?? 0;
    } else {
      info.releasedOp = r.op;
      info.releasedSeq = r.seq;
    }
  }
  return { pages, processes };
}

/**
 * Ops in which what an iopt_pages holds (npinned, xarray, access_itree, domains_itree, its areas) may have
 * changed, with the pages ids. An area freed without its domains_itree node is caught in the op that gave
 * its pages new areas (a split) or touched its trees. `seqs` narrows to the ops whose events lie in that range
 * (a chunk of a long run's ops).
 */
export async function holdingChanges(
  store: Store,
  run: number,
  seqs: { fromSeq: number; toSeq: number } | null = null,
): Promise<Map<number, number[]>> {
  const rows = await store.query(holdingChangesQuery(run, seqs));
  const out = new Map<number, number[]>();
  for (const r of rows) {
    const list = out.get(r.op);
    if (list === undefined) out.set(r.op, [r.pages]);
    else list.push(r.pages);
  }
  return out;
}
