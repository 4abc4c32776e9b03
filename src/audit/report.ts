// SPDX-License-Identifier: GPL-2.0-only
/**
 * One run's audit: the ledger (optionally narrowed to a user, a process or an iopt_pages), the final
 * balances, the chart series and the reconciliation, plus its renderings as text and CSV (html.ts draws
 * the picture).
 *
 * Filters narrow what is shown, never what is checked: the rules always cover the whole run, since a
 * drift in one account shows up against another. Physical pins are one account for the whole run (an unpin
 * names no owner), so a filtered ledger leaves them out.
 */
import { NotFoundError } from '../lib/errors.js';
import { opsInOrder } from '../store/index.js';
import type { Store } from '../store/index.js';
import {
  COUNTER_NAMES,
  finalBalances,
  ledgerLines,
  seriesClosings,
  type Account,
  type Closing,
  type CounterName,
  type LedgerLine,
  type LineFilter,
  type RunObjects,
  type SeriesClosing,
} from './ledger.js';
import { reconcile, reconcileInput, type RuleResult } from './reconcile.js';
import { maxOf } from '../lib/arrays.js';
import { variantLabel } from '../kernel/variant-spec.js';
import { auditVerdict, runFindings, type RunFindings } from './verdict.js';
import { hex } from '../lib/format.js';

export interface AuditFilter {
  user?: number;
  pid?: string;
  pages?: number;
}

export interface AuditOp {
  index: number;
  line: number;
  op: string;
}

export interface AuditReport {
  run: number;
  tracePath: string;
  variant: string;
  flags: string[];
  status: string;
  filter: AuditFilter;
  ok: boolean;
  rules: RuleResult[];
  /** Balance of every account at the end of the run (whole run, unfiltered). */
  final: Closing[];
  ledger: LedgerLine[];
  /** How many ops the run stored. */
  opCount: number;
  /** Every op, for the chart's axis (html.ts); empty when the audit ran with `ops: false`. */
  ops: AuditOp[];
  /** The chart: per counter, the total of the shown accounts at the end of each op where it moved. */
  series: SeriesClosing[];
  /** The run's violations and WARNs (the rules do not see them; the verdict must). */
  findings: RunFindings;
}

/** The report's verdict line: broken rules, and the run's violations and WARNs. */
export function reportVerdict(report: AuditReport): { ok: boolean; text: string } {
  return auditVerdict(report.run, report.rules.filter((r) => !r.ok).length, report.rules.length, report.findings);
}

/** The line filters of an audit filter (user, pid and pages narrow together); NotFoundError for unknown names. */
export function lineFilters(filter: AuditFilter, objects: RunObjects, run: number): LineFilter[] {
  const out: LineFilter[] = [];
  const pagesWhere = (pred: (p: { sourceUid: number; sourcePid: string; pages: number }) => boolean): number[] =>
    [...objects.pages.values()].filter(pred).map((p) => p.pages);
  const mmAccounts = (mms: readonly number[]): Account[] =>
    mms.flatMap((mm) => [
      { counter: 'mm.locked_vm' as const, owner: mm },
      { counter: 'mm.pinned_vm' as const, owner: mm },
    ]);
  if (filter.user !== undefined) {
    const uid = filter.user;
    const procs = [...objects.processes.values()].filter((p) => p.uid === uid);
    if (procs.length === 0) throw new NotFoundError(`run ${run} has no process of user ${uid}`, 'user', uid);
    out.push({
      pages: pagesWhere((p) => p.sourceUid === uid),
      accounts: [{ counter: 'user.locked_vm', owner: uid }, ...mmAccounts(procs.map((p) => p.mm))],
    });
  }
  if (filter.pid !== undefined) {
    const proc = objects.processes.get(filter.pid);
    if (proc === undefined) throw new NotFoundError(`run ${run} has no process ${filter.pid}`, 'process', filter.pid);
    out.push({ pages: pagesWhere((p) => p.sourcePid === proc.pid), accounts: mmAccounts([proc.mm]) });
  }
  if (filter.pages !== undefined) {
    if (!objects.pages.has(filter.pages))
      throw new NotFoundError(`run ${run} has no iopt_pages ${filter.pages}`, 'pages', filter.pages);
    out.push({ pages: [filter.pages] });
  }
  return out;
}

export interface AuditOptions {
  /**
   * Read every op into `AuditReport.ops` (default true): the HTML chart draws its axis from them. The text,
   * CSV and JSON need only the count, so a long run is audited with false and its memory does not grow with
   * the number of ops.
   */
  ops?: boolean;
}

/**
 * Audit one stored run: ledger, balances, chart series and the reconciliation.
 *
 * @example const report = await auditRun(store, 1, { pages: 2 }); report.rules.filter((r) => !r.ok)
 */
export async function auditRun(
  store: Store,
  run: number,
  filter: AuditFilter = {},
  options: AuditOptions = {},
): Promise<AuditReport> {
  const row = await store.run(run);
  if (row === undefined)
    throw new NotFoundError(`no run ${run} in ${store.path} (ioptrace runs lists them)`, 'run', run);
  const input = await reconcileInput(store, run);
  const where = lineFilters(filter, input.objects, run);
  const reconciliation = await reconcile(store, run, input);
  return {
    run,
    tracePath: row.tracePath,
    variant: variantLabel(row.variant, row.flags),
    flags: row.flags,
    status: row.status,
    filter,
    ok: reconciliation.ok,
    rules: reconciliation.rules,
    final: await finalBalances(store, run),
    ledger: await ledgerLines(store, run, { where }),
    opCount: row.opCount,
    ops: options.ops === false ? [] : await auditOps(store, run),
    series: await seriesClosings(store, run, { where }),
    findings: await runFindings(store, run),
  };
}

async function auditOps(store: Store, run: number): Promise<AuditOp[]> {
  const out: AuditOp[] = [];
  for await (const o of opsInOrder(store, run)) out.push({ index: o.index, line: o.line, op: o.op });
  return out;
}

export function accountName(counter: CounterName, owner: number | null): string {
  if (owner === null) return counter;
  const what = counter === 'user.locked_vm' ? 'uid' : counter.startsWith('mm.') ? 'mm' : 'pages';
  return `${counter} (${what} ${owner})`;
}

function filterText(filter: AuditFilter): string {
  const parts = [
    filter.user !== undefined ? `user ${filter.user}` : '',
    filter.pid !== undefined ? `pid ${filter.pid}` : '',
    filter.pages !== undefined ? `iopt_pages ${filter.pages}` : '',
  ].filter((p) => p !== '');
  return parts.length ? ` (ledger of ${parts.join(', ')})` : '';
}

const cell = (v: number | string | null): string => (v === null ? '-' : String(v));
const signed = (n: number): string => (n > 0 ? `+${n}` : String(n));

/** Rules, broken ones with the op and the events that broke them. */
export function ruleLines(rules: readonly RuleResult[]): string[] {
  const width = maxOf(
    rules.map((r) => r.rule.length),
    0,
  );
  const out: string[] = [];
  for (const r of rules) {
    if (r.ok) {
      out.push(
        `  ok      ${r.rule.padEnd(width)}  ${r.skipped !== null ? `not checked: ${r.skipped}` : r.description}`,
      );
      continue;
    }
    out.push(
      `  BROKEN  ${r.rule.padEnd(width)}  at op ${cell(r.op)} (line ${cell(r.line)}, ${cell(r.opName)}): ${cell(r.detail)}`,
    );
    for (const e of r.events)
      out.push(`            event ${e.seq} ${e.type}${e.fn !== null ? ` in ${e.fn}` : ''}: ${e.text}`);
    if (r.moreEvents > 0) out.push(`            and ${r.moreEvents} more events of that op`);
  }
  return out;
}

export const LEDGER_COLUMNS = ['seq', 'op', 'line', 'counter', 'owner', 'pages', 'delta', 'value', 'fn'] as const;

export function ledgerRow(l: LedgerLine): string[] {
  return [
    String(l.seq),
    String(l.op),
    cell(l.line),
    l.counter,
    cell(l.owner),
    cell(l.pages),
    signed(l.delta),
    String(l.value),
    l.pfn !== null ? `${l.fn} pfn ${hex(l.pfn)}` : l.fn,
  ];
}

/** Left-aligned columns. */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) =>
    maxOf(
      rows.map((r) => (r[i] ?? '').length),
      h.length,
    ),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** The report for a person: header, rules, final balances, then the ledger. */
export function auditText(report: AuditReport): string[] {
  const table = textTable;
  const broken = report.rules.filter((r) => !r.ok).length;
  return [
    `run ${report.run}: ${report.tracePath} on ${report.variant}${filterText(report.filter)}: ${report.ledger.length} ledger lines over ${report.opCount} ops`,
    broken ? `${reportVerdict(report).text}:` : reportVerdict(report).text,
    ...ruleLines(report.rules),
    '',
    'final balances:',
    ...table(
      ['counter', 'owner', 'value', 'last op'],
      report.final.map((c) => [c.counter, cell(c.owner), String(c.value), String(c.op)]),
    ).map((l) => `  ${l}`),
    '',
    'ledger:',
    ...table(LEDGER_COLUMNS, report.ledger.map(ledgerRow)).map((l) => `  ${l}`),
  ];
}

const csvCell = (v: string | number | null): string => {
  const text = v === null ? '' : String(v);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};

/** The ledger as CSV (RFC 4180), one line per ledger line, header first. */
export function auditCsv(report: AuditReport): string[] {
  const header = ['seq', 'op', 'line', 'type', 'counter', 'owner', 'pages', 'delta', 'value', 'fn', 'pfn', 'mm'];
  return [
    header.join(','),
    ...report.ledger.map((l) =>
      [l.seq, l.op, l.line, l.type, l.counter, l.owner, l.pages, l.delta, l.value, l.fn, l.pfn, l.mm]
        .map(csvCell)
        .join(','),
    ),
  ];
}

/** What --json prints for one run. */
export function auditJson(report: AuditReport): Record<string, unknown> {
  return {
    run: report.run,
    trace: report.tracePath,
    variant: report.variant,
    flags: report.flags,
    status: report.status,
    filter: report.filter,
    ok: report.ok,
    rules: report.rules,
    final: report.final,
    ledger: report.ledger,
  };
}

/** The counters in chart and summary order. */
export const CHART_COUNTERS: readonly CounterName[] = COUNTER_NAMES;
