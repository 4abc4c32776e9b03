// SPDX-License-Identifier: GPL-2.0-only
/**
 * The accounting ledger of a run as store queries: every change to a pin counter, read from the event log
 * with window functions over fields of the JSON payloads, never by scanning events in JavaScript. The
 * accounting rules built on these rows live in src/audit/ (ledger.ts, reconcile.ts).
 *
 * Counters (a ledger "account" is counter + owner):
 *   user.locked_vm  owner = uid            AccountingCharged / AccountingUncharged
 *   mm.locked_vm    owner = mm id          idem
 *   mm.pinned_vm    owner = mm id          idem
 *   npinned         owner = iopt_pages id  NpinnedChanged (delta)
 *   last_npinned    owner = iopt_pages id  LastNpinnedSet (a set: delta = value - previous value)
 *   pins            owner = none           PagesPinned / PagesUnpinned: physical pins held by the whole run
 *                                          (an unpin names no owner, so pins are one account)
 * Every line also carries `pages`, the iopt_pages it was made for (null for pins), so the accounting
 * counters can be summed per pages as well as per owner.
 *
 * `value` is the account's balance after the line (SUM() OVER (PARTITION BY counter, owner ORDER BY seq));
 * `pagesValue` the balance of counter + pages. Both are computed over the whole run before any filter, so a
 * filtered ledger still shows true balances.
 *
 * Portability: window functions, CTEs and CASE are standard SQL; the JSON field reads come from the
 * dialect (QueryContext.dialect), so the same query runs on SQLite and PostgreSQL.
 */
import { sql, type Expression, type ExpressionBuilder, type QueryCreator, type SqlBool } from 'kysely';
import type { EventType } from '../../events/events.js';
import { EVENTS_CHANGING_HELD_PINS, LEDGER_EVENTS } from '../../events/groups.js';
import type { Database } from '../schema.js';
import type { QueryContext, SqlDialect, StoreQuery } from './context.js';

export const COUNTER_NAMES = [
  'user.locked_vm',
  'mm.locked_vm',
  'mm.pinned_vm',
  'npinned',
  'last_npinned',
  'pins',
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];
/** The counters charged by AccountingCharged / AccountingUncharged. */
export const ACCOUNTING_COUNTERS = ['user.locked_vm', 'mm.locked_vm', 'mm.pinned_vm'] as const;
export type AccountingCounter = (typeof ACCOUNTING_COUNTERS)[number];

export interface LedgerLine {
  seq: number;
  /** Op index (0 setup, 1..N the trace, N+1 teardown). */
  op: number;
  /** Trace line of the op (0 for setup); null only if the op row is missing (an interrupted run). */
  line: number | null;
  type: string;
  counter: CounterName;
  /** uid, mm id or pages id; null for pins. */
  owner: number | null;
  pages: number | null;
  delta: number;
  /** Balance of counter + owner after this line. */
  value: number;
  /** Balance of counter + pages after this line (for pins: the pins balance). */
  pagesValue: number;
  fn: string;
  /** First PFN of a pin or unpin run. */
  pfn: number | null;
  /** The mm a pin was taken from. */
  mm: number | null;
}

/** One account, as the filters and rules name it. */
export interface Account {
  counter: CounterName;
  owner: number | null;
}

/** Lines of any of `pages`, or of any of `accounts`. */
export interface LineFilter {
  pages?: readonly number[];
  accounts?: readonly Account[];
}

/**
 * Which lines to return: those matching every filter of `where` (none: every line), of op `op` if given.
 */
export interface LedgerSelection {
  where?: readonly LineFilter[];
  op?: number;
}

/** The balance of an account at the end of an op in which it changed. */
export interface Closing {
  op: number;
  counter: CounterName;
  owner: number | null;
  value: number;
}

/** The balance of an accounting counter charged for one pages, at the end of an op in which it changed. */
export interface PagesClosing {
  op: number;
  counter: AccountingCounter;
  pages: number;
  value: number;
}

/** The total of the selected lines of a counter at the end of an op in which it changed (chart series). */
export interface SeriesClosing {
  op: number;
  counter: CounterName;
  value: number;
}

/** A number field of the payload. Paths are constants of this file, never user input. */
function num(d: SqlDialect, ...path: string[]) {
  return d.jsonNumber('payload', path);
}

/** The ledger's source rows, one per accounting event, with the delta of every kind but last_npinned. */
function accountingEvents(db: QueryCreator<Database>, d: SqlDialect, run: number) {
  return db
    .selectFrom('events')
    .where('run', '=', run)
    .where('type', 'in', LEDGER_EVENTS)
    .select(['seq', 'op', 'type'])
    .select([
      sql<CounterName>`case type
        when 'NpinnedChanged' then 'npinned'
        when 'LastNpinnedSet' then 'last_npinned'
        when 'PagesPinned' then 'pins'
        when 'PagesUnpinned' then 'pins'
        when 'PagesPinnedRuns' then 'pins'
        when 'PagesUnpinnedRuns' then 'pins'
        else ${d.jsonText('payload', ['counter'])} end`.as('counter'),
      sql<number | null>`case
        when type in ('NpinnedChanged', 'LastNpinnedSet') then ${num(d, 'pages')}
        when type in ('PagesPinned', 'PagesUnpinned', 'PagesPinnedRuns', 'PagesUnpinnedRuns') then null
        else ${num(d, 'owner')} end`.as('owner'),
      sql<
        number | null
      >`case when type in ('PagesPinned', 'PagesUnpinned', 'PagesPinnedRuns', 'PagesUnpinnedRuns') then null else ${num(d, 'pages')} end`.as(
        'pages',
      ),
      sql<number | null>`case type
        when 'AccountingCharged' then ${num(d, 'delta')}
        when 'AccountingUncharged' then -${num(d, 'delta')}
        when 'NpinnedChanged' then ${num(d, 'delta')}
        when 'PagesPinned' then ${num(d, 'count')}
        when 'PagesUnpinned' then -${num(d, 'count')}
        when 'PagesPinnedRuns' then ${num(d, 'npages')}
        when 'PagesUnpinnedRuns' then -${num(d, 'npages')}
        else null end`.as('raw'),
      num(d, 'value').as('setValue'),
      sql<string>`${d.jsonText('payload', ['fn'])}`.as('fn'),
      num(d, 'pfn').as('pfn'),
      num(d, 'mm').as('mm'),
    ]);
}

/** The whole run's ledger with deltas and balances, as CTEs `acc` -> `deltas` -> `ledger`. */
function ledgerCte({ db, dialect }: QueryContext, run: number) {
  return db
    .with('acc', (qb) => accountingEvents(qb, dialect, run))
    .with('deltas', (qb) =>
      qb
        .selectFrom('acc')
        .select(['seq', 'op', 'type', 'counter', 'owner', 'pages', 'fn', 'pfn', 'mm'])
        .select(
          sql<number>`case when counter = 'last_npinned'
            then "setValue" - coalesce(lag("setValue") over (partition by counter, owner order by seq), 0)
            else raw end`.as('delta'),
        ),
    )
    .with('ledger', (qb) =>
      qb
        .selectFrom('deltas')
        .selectAll()
        .select([
          sql<number>`sum(delta) over (partition by counter, owner order by seq)`.as('value'),
          sql<number>`sum(delta) over (partition by counter, pages order by seq)`.as('pagesValue'),
        ]),
    );
}

/** The columns a selection filters on, as the `ledger` CTE and those built on it have them. */
interface SelectionColumns {
  counter: CounterName;
  owner: number | null;
  pages: number | null;
}
type WhereBuilder = ExpressionBuilder<{ ledger: SelectionColumns }, 'ledger'>;

/** The selection's filters as one where-expression on the `ledger` CTE; null when it selects everything. */
function selectionFilter(selection: LedgerSelection): ((eb: WhereBuilder) => Expression<SqlBool>) | null {
  const where = selection.where ?? [];
  if (where.length === 0) return null;
  return (eb) =>
    eb.and(
      where.map((f) => {
        const any: Expression<SqlBool>[] = [];
        if (f.pages !== undefined && f.pages.length > 0) any.push(eb('pages', 'in', [...f.pages]));
        for (const a of f.accounts ?? []) {
          any.push(
            eb.and([
              eb('counter', '=', a.counter),
              a.owner === null ? eb('owner', 'is', null) : eb('owner', '=', a.owner),
            ]),
          );
        }
        return any.length > 0 ? eb.or(any) : eb.lit(false);
      }),
    );
}

/** The ledger lines of a run (all, or the selection), in seq order, each with its trace line. */
export function ledgerLinesQuery(run: number, selection: LedgerSelection = {}): StoreQuery<LedgerLine[]> {
  return async (ctx) => {
    let query = ledgerCte(ctx, run)
      .selectFrom('ledger')
      .leftJoin('ops', (join) => join.on('ops.run', '=', run).onRef('ops.idx', '=', 'ledger.op'))
      .select([
        'ledger.seq',
        'ledger.op',
        'ops.line',
        'ledger.type',
        'ledger.counter',
        'ledger.owner',
        'ledger.pages',
        'ledger.delta',
        'ledger.value',
        'ledger.pagesValue',
        'ledger.fn',
        'ledger.pfn',
        'ledger.mm',
      ]);
    const filter = selectionFilter(selection);
    if (filter !== null) query = query.where(filter as never);
    if (selection.op !== undefined) query = query.where('ledger.op', '=', selection.op);
    const rows = await query.orderBy('ledger.seq').execute();
    return rows.map((r) => ({ ...r, line: r.line ?? null }));
  };
}

/** The last line of each selected account (where its balance was left). */
export function lastLinesQuery(run: number, accounts: readonly Account[]): StoreQuery<LedgerLine[]> {
  return async (ctx) => {
    if (accounts.length === 0) return [];
    const filter = selectionFilter({ where: [{ accounts }] });
    const rows = await ledgerCte(ctx, run)
      .with('picked', (qb) => {
        let q = qb
          .selectFrom('ledger')
          .selectAll()
          .select(sql<number>`row_number() over (partition by counter, owner order by seq desc)`.as('rn'));
        if (filter !== null) q = q.where(filter as never);
        return q;
      })
      .selectFrom('picked')
      .leftJoin('ops', (join) => join.on('ops.run', '=', run).onRef('ops.idx', '=', 'picked.op'))
      .where('picked.rn', '=', 1)
      .select([
        'picked.seq',
        'picked.op',
        'ops.line',
        'picked.type',
        'picked.counter',
        'picked.owner',
        'picked.pages',
        'picked.delta',
        'picked.value',
        'picked.pagesValue',
        'picked.fn',
        'picked.pfn',
        'picked.mm',
      ])
      .orderBy('picked.seq')
      .execute();
    return rows.map((r) => ({ ...r, line: r.line ?? null }));
  };
}

/** Balances of every account at the end of each op in which it changed, by op then account. */
export function accountClosingsQuery(run: number): StoreQuery<Closing[]> {
  return (ctx) =>
    ledgerCte(ctx, run)
      .with('last', (qb) =>
        qb
          .selectFrom('ledger')
          .select(['op', 'counter', 'owner', 'value'])
          .select(sql<number>`row_number() over (partition by op, counter, owner order by seq desc)`.as('rn')),
      )
      .selectFrom('last')
      .where('rn', '=', 1)
      .select(['op', 'counter', 'owner', 'value'])
      .orderBy('op')
      .orderBy('counter')
      .orderBy('owner')
      .execute();
}

/** Per-pages balances of the accounting counters at the end of each op in which they changed. */
export function pagesClosingsQuery(run: number): StoreQuery<PagesClosing[]> {
  return async (ctx) => {
    const rows = await ledgerCte(ctx, run)
      .with('last', (qb) =>
        qb
          .selectFrom('ledger')
          .where('counter', 'in', [...ACCOUNTING_COUNTERS])
          .where('pages', 'is not', null)
          .select(['op', 'counter', 'pages', 'pagesValue'])
          .select(sql<number>`row_number() over (partition by op, counter, pages order by seq desc)`.as('rn')),
      )
      .selectFrom('last')
      .where('rn', '=', 1)
      .select(['op', 'counter', 'pages', 'pagesValue'])
      .orderBy('op')
      .orderBy('counter')
      .orderBy('pages')
      .execute();
    return rows.map((r) => ({
      op: r.op,
      counter: r.counter as AccountingCounter,
      pages: r.pages ?? 0,
      value: r.pagesValue,
    }));
  };
}

/**
 * The chart series: per counter, the total of the selected lines at the end of each op in which it changed
 * (a running sum of the selected deltas, so a filter shows the selected accounts' total).
 */
export function seriesClosingsQuery(run: number, selection: LedgerSelection = {}): StoreQuery<SeriesClosing[]> {
  const filter = selectionFilter(selection);
  return (ctx) =>
    ledgerCte(ctx, run)
      .with('picked', (qb) => {
        let q = qb.selectFrom('ledger').select(['seq', 'op', 'counter', 'delta']);
        if (filter !== null) q = q.where(filter as never);
        return q;
      })
      .with('totals', (qb) =>
        qb
          .selectFrom('picked')
          .select(['op', 'counter'])
          .select([
            sql<number>`sum(delta) over (partition by counter order by seq)`.as('value'),
            sql<number>`row_number() over (partition by op, counter order by seq desc)`.as('rn'),
          ]),
      )
      .selectFrom('totals')
      .where('rn', '=', 1)
      .select(['op', 'counter', 'value'])
      .orderBy('op')
      .orderBy('counter')
      .execute();
}

/** Final balance of every account of a run (the last closing of each). */
export function finalBalancesQuery(run: number): StoreQuery<Closing[]> {
  return ({ db, dialect }) =>
    db
      .with('acc', (qb) => accountingEvents(qb, dialect, run))
      .with('deltas', (qb) =>
        qb
          .selectFrom('acc')
          .select(['seq', 'op', 'counter', 'owner'])
          .select(
            sql<number>`case when counter = 'last_npinned'
            then "setValue" - coalesce(lag("setValue") over (partition by counter, owner order by seq), 0)
            else raw end`.as('delta'),
          ),
      )
      .selectFrom('deltas')
      .groupBy(['counter', 'owner'])
      .select(['counter', 'owner'])
      .select([sql<number>`max(op)`.as('op'), sql<number>`sum(delta)`.as('value')])
      .orderBy('counter')
      .orderBy('owner')
      .execute();
}

// ---- the objects the accounts belong to ------------------------------------------------------------------

export type AccountModeName = 'none' | 'user' | 'mm';

const OBJECT_EVENTS: readonly EventType[] = [
  'PagesAllocated',
  'PagesAccountModeSet',
  'PagesSourceChanged',
  'PagesReleased',
  'ProcessCreated',
  'ProcessExited',
];

/** One event that makes, changes or ends an iopt_pages or a process, with the fields the audit reads. */
export interface ObjectEventRow {
  seq: number;
  op: number;
  type: string;
  pages: number | null;
  npages: number | null;
  mode: AccountModeName | null;
  sourcePid: string | number | null;
  sourceMm: number | null;
  sourceUid: number | null;
  pid: string | number | null;
  mm: number | null;
  uid: number | null;
}

/** The events of a run that make, change or end an iopt_pages or a process, in seq order. */
export function objectEventsQuery(run: number): StoreQuery<ObjectEventRow[]> {
  return ({ db, dialect: d }) =>
    db
      .selectFrom('events')
      .where('run', '=', run)
      .where('type', 'in', OBJECT_EVENTS)
      .select(['seq', 'op', 'type'])
      .select([
        num(d, 'pages').as('pages'),
        num(d, 'npages').as('npages'),
        sql<AccountModeName | null>`${d.jsonText('payload', ['accountMode'])}`.as('mode'),
        sql<string | number | null>`${d.jsonText('payload', ['sourcePid'])}`.as('sourcePid'),
        num(d, 'sourceMm').as('sourceMm'),
        num(d, 'sourceUid').as('sourceUid'),
        sql<string | number | null>`${d.jsonText('payload', ['pid'])}`.as('pid'),
        num(d, 'mm').as('mm'),
        num(d, 'uid').as('uid'),
      ])
      .orderBy('seq')
      .execute();
}

/**
 * (op, pages) pairs, distinct, by op then pages: the ops in which what an iopt_pages holds (npinned,
 * xarray, access_itree, domains_itree, its areas) may have changed.
 */
export function holdingChangesQuery(
  run: number,
  seqs: { fromSeq: number; toSeq: number } | null = null,
): StoreQuery<{ op: number; pages: number }[]> {
  return ({ db, dialect: d }) => {
    const pages = sql<number>`coalesce(${num(d, 'pages')}, ${num(d, 'tree', 'pages')})`;
    let events = db.selectFrom('events').where('run', '=', run);
    if (seqs !== null) events = events.where('seq', '>=', seqs.fromSeq).where('seq', '<=', seqs.toSeq);
    return events
      .where('type', 'in', EVENTS_CHANGING_HELD_PINS)
      .where(sql<SqlBool>`${pages} is not null`)
      .select(['op', pages.as('pages')])
      .distinct()
      .orderBy('op')
      .orderBy('pages')
      .execute();
  };
}
