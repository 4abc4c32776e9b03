// SPDX-License-Identifier: GPL-2.0-only
/** The audit of a run's accounting: the ledger, its reconciliation, the HTML picture and the all-runs summary. */
export {
  ACCOUNTING_COUNTERS,
  COUNTER_NAMES,
  accountClosings,
  finalBalances,
  holdingChanges,
  lastLines,
  ledgerLines,
  pagesClosings,
  runObjects,
  seriesClosings,
} from './ledger.js';
export type {
  Account,
  AccountModeName,
  AccountingCounter,
  Closing,
  CounterName,
  LedgerLine,
  LedgerSelection,
  LineFilter,
  PagesClosing,
  PagesInfo,
  ProcessInfo,
  RunObjects,
  SeriesClosing,
} from './ledger.js';
export { EVIDENCE_MAX, RULE_DESCRIPTIONS, RULE_NAMES, heldIndexes, reconcile, reconcileInput } from './reconcile.js';
export type { EvidenceEvent, Reconciliation, ReconcileInput, RuleName, RuleResult } from './reconcile.js';
export { auditCsv, auditJson, auditRun, auditText, lineFilters, textTable } from './report.js';
export type { AuditFilter, AuditOp, AuditOptions, AuditReport } from './report.js';
export { CHART, chartSeries, escapeHtml, opX, renderAuditHtml } from './html.js';
export type { ChartSeries } from './html.js';
export { auditAll, summaryText } from './summary.js';
export type { RunSummary } from './summary.js';
