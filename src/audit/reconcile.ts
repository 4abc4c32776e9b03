// SPDX-License-Identifier: GPL-2.0-only
/**
 * Reconciliation of a run's accounting ledger, as double-entry bookkeeping. Five rules, each checked at
 * rest (at the end of every op, setup and teardown included):
 *
 *   ledger-equals-state     every account's balance (sum of its ledger deltas) equals the value the state
 *                           holds; a released iopt_pages holds nothing, so books left on it are orphaned.
 *   npinned-equals-pins     each iopt_pages' npinned equals the indexes it must hold pinned (what its
 *                           accesses and filled areas cover, from the state), and all pages' npinned
 *                           together equal the pins held on physical pages (the pins account).
 *   charged-equals-pinned   last_npinned == npinned, and the pinned_vm charged for the pages equals npinned.
 *   counters-move-together  per iopt_pages, by its account mode: USER charges user.locked_vm and
 *                           mm.pinned_vm alike, MM charges mm.locked_vm and mm.pinned_vm alike, NONE only
 *                           mm.pinned_vm; the other locked counter holds nothing for it.
 *   zero-after-teardown     after the teardown op every account is back to zero.
 *
 * How the first op is found: the ledger's balances at every op boundary come from SQL (ledger.ts: the last
 * running sum per account and op), so the rules that read only the ledger are evaluated at every boundary
 * in one forward pass over those closings (O(closings)), and the first boundary where one fails is its op.
 * ledger-equals-state compares with the state: the final state is rebuilt (snapshot + tail) and, for the
 * accounts that disagree there, the first disagreeing op is found by bisecting over the op boundaries with
 * stateAt (O(log ops) rebuilds; exact when a disagreement, once there, stays, which holds because reducers
 * only add deltas and a released pages never comes back). The per-pages holdings of npinned-equals-pins are
 * read from states visited forward (ForwardSeeker: O(events) in all), only at ops that changed them.
 *
 * A holdings check costs the size of that pages' access_itree and domains_itree, as the model's own
 * invariant check after every op does.
 *
 * A broken rule cites the events of its first broken op that moved the accounts concerned (ledger lines, plus
 * the xarray, interval-tree, area and release events for holdings), at most EVIDENCE_MAX of them;
 * zero-after-teardown cites where each account left non-zero was last moved.
 *
 * Deliberately not exempted: MM-mode charges of a process that has exited, which update_mm_locked_vm cannot
 * return (upstream behaviour; the model's invariants exempt them). The ledger does not balance there, so
 * the rule breaks, and its detail says why.
 */
import { HOLDING_EVIDENCE_EVENTS } from '../events/groups.js';
import type { Pages, State } from '../state/state.js';
import { mustHoldPinned } from '../kernel/invariants/held.js';
import { runsSize } from '../kernel/invariants/runs.js';
import { rangeForEach } from '../structures/range-map.js';
import { decodeJson } from '../lib/codec.js';
import { OP_CHUNK } from '../store/index.js';
import type { Store, StoredOp } from '../store/index.js';
import { ForwardSeeker, stateAt } from '../timetravel/state-at.js';
import { StoreSource } from '../timetravel/store-source.js';
import {
  ACCOUNTING_COUNTERS,
  accountClosings,
  holdingChanges,
  lastLines,
  ledgerLines,
  pagesClosings,
  runObjects,
  type Account,
  type AccountModeName,
  type AccountingCounter,
  type Closing,
  type CounterName,
  type LedgerLine,
  type PagesClosing,
  type PagesInfo,
  type RunObjects,
} from './ledger.js';
import { pushAll } from '../lib/arrays.js';
import { hex } from '../lib/format.js';

export const RULE_NAMES = [
  'ledger-equals-state',
  'npinned-equals-pins',
  'charged-equals-pinned',
  'counters-move-together',
  'zero-after-teardown',
] as const;
export type RuleName = (typeof RULE_NAMES)[number];

export const RULE_DESCRIPTIONS: Record<RuleName, string> = {
  'ledger-equals-state': "the sum of each counter's deltas equals the value held in the state",
  'npinned-equals-pins': 'npinned equals the pins the iopt_pages holds on physical pages',
  'charged-equals-pinned': 'charged equals pinned at rest (last_npinned == npinned == pinned_vm charged)',
  'counters-move-together': 'pinned_vm and locked_vm move together as the account mode says',
  'zero-after-teardown': 'every counter returns to zero after teardown',
};

/** Events cited per broken rule. */
export const EVIDENCE_MAX = 16;

/** One event that broke a rule. */
export interface EvidenceEvent {
  seq: number;
  op: number;
  type: string;
  fn: string | null;
  text: string;
}

export interface RuleResult {
  rule: RuleName;
  ok: boolean;
  description: string;
  /** First op at which the rule broke (null when ok or not checked). */
  op: number | null;
  /** Its trace line. */
  line: number | null;
  opName: string | null;
  /** What was wrong at that op. */
  detail: string | null;
  /** The accounts that disagreed there, as "counter:owner" ("npinned:2", "pins:-"). */
  accounts: string[];
  events: EvidenceEvent[];
  /** Events of that op that moved those accounts but are not cited (beyond EVIDENCE_MAX). */
  moreEvents: number;
  /** Why the rule was not checked (a run without its teardown op); null when it was. */
  skipped: string | null;
}

export interface Reconciliation {
  run: number;
  ok: boolean;
  rules: RuleResult[];
}

const key = (counter: CounterName, owner: number | null): string => `${counter}:${owner ?? '-'}`;

function parseKey(k: string): Account {
  const at = k.lastIndexOf(':');
  const owner = k.slice(at + 1);
  return { counter: k.slice(0, at) as CounterName, owner: owner === '-' ? null : Number(owner) };
}

function okResult(rule: RuleName, skipped: string | null = null): RuleResult {
  return {
    rule,
    ok: true,
    description: RULE_DESCRIPTIONS[rule],
    op: null,
    line: null,
    opName: null,
    detail: null,
    accounts: [],
    events: [],
    moreEvents: 0,
    skipped,
  };
}

/** A break found during the walk, before its evidence is read. */
interface Break {
  op: number;
  detail: string;
  accounts: Account[];
  /** Pages whose xarray / domains / release events are evidence too. */
  holdingsOf: number[];
  /** Areas whose events are evidence too (stale domains_itree nodes). */
  areas?: number[];
  /** Cite the last lines of the accounts (where they were left) instead of the op's lines. */
  lastLinesOnly?: boolean;
}

/**
 * Indexes an iopt_pages must hold pinned, by the kernel model's held-pins rule (mustHoldPinned); `stale`
 * receives the domains_itree nodes that count for nothing.
 */
export function heldIndexes(state: State, p: Pages, stale: number[] = []): number {
  return runsSize(mustHoldPinned(state, p, stale));
}

/** Pins held on physical pages in a state (frames' pin counts). */
function statePins(state: State): number {
  let pins = 0;
  rangeForEach(state.frames, 0, Number.MAX_SAFE_INTEGER, (_start, count, frame) => {
    pins += frame.pins * count;
  });
  return pins;
}

/** The value each account has in a state (accounts named in `keys` only, or all when null). */
function stateValues(
  state: State,
  released: ReadonlySet<number>,
  keys: ReadonlySet<string> | null,
): Map<string, number> {
  const out = new Map<string, number>();
  const put = (k: string, v: number): void => {
    if (keys === null || keys.has(k)) out.set(k, v);
  };
  for (const u of Object.values(state.users)) put(key('user.locked_vm', u.uid), u.lockedVm);
  for (const mm of Object.values(state.mms)) {
    put(key('mm.locked_vm', mm.id), mm.lockedVm);
    put(key('mm.pinned_vm', mm.id), mm.pinnedVm);
  }
  for (const p of Object.values(state.pages)) {
    put(key('npinned', p.id), p.npinned);
    put(key('last_npinned', p.id), p.lastNpinned);
  }
  // A released iopt_pages is gone from the state: it holds nothing.
  for (const id of released) {
    if (state.pages[id] !== undefined) continue;
    put(key('npinned', id), 0);
    put(key('last_npinned', id), 0);
  }
  put(key('pins', null), statePins(state));
  return out;
}

/** Balances of accounts at any op: the closings of each account in op order, searched by bisection. */
class History {
  private readonly byKey = new Map<string, { ops: number[]; values: number[] }>();

  constructor(closings: readonly Closing[]) {
    for (const c of closings) {
      const k = key(c.counter, c.owner);
      let h = this.byKey.get(k);
      if (h === undefined) this.byKey.set(k, (h = { ops: [], values: [] }));
      h.ops.push(c.op);
      h.values.push(c.value);
    }
  }

  keys(): IterableIterator<string> {
    return this.byKey.keys();
  }

  /** Balance of the account at the end of `op`. */
  at(k: string, op: number): number {
    const h = this.byKey.get(k);
    if (h === undefined) return 0;
    let lo = 0;
    let hi = h.ops.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((h.ops[mid] ?? 0) <= op) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0 : (h.values[lo - 1] ?? 0);
  }
}

function modeAt(info: PagesInfo | undefined, op: number): AccountModeName {
  let mode: AccountModeName = 'none';
  for (const m of info?.modes ?? []) if (m.op <= op) mode = m.mode;
  return mode;
}

function lineText(l: LedgerLine): string {
  const owner = l.owner === null ? '' : `[${l.owner}]`;
  const pages =
    l.pages !== null && l.counter !== 'npinned' && l.counter !== 'last_npinned' ? ` for iopt_pages ${l.pages}` : '';
  const pfn = l.pfn !== null ? ` (pfn ${hex(l.pfn)})` : '';
  return `${l.counter}${owner} ${l.delta >= 0 ? '+' : ''}${l.delta} -> ${l.value}${pages}${pfn}`;
}

/** One holding event (xarray, domains_itree, release) as evidence text. */
function holdingText(type: string, e: Record<string, unknown>): string {
  const tree = e['tree'] as { kind?: string } | undefined;
  switch (type) {
    case 'XaStored':
      return `xarray of iopt_pages ${String(e['pages'])}: stored ${String(e['count'])} at index ${String(e['index'])}`;
    case 'XaErased':
      return `xarray of iopt_pages ${String(e['pages'])}: erased ${String(e['count'])} at index ${String(e['index'])}`;
    case 'XaStoredRuns':
    case 'XaErasedRuns': {
      // [index, pfn, count] or [index, count]: the count is last either way.
      const runs = e['runs'] as number[][];
      const pages = runs.reduce((n, r) => n + (r[r.length - 1] ?? 0), 0);
      const verb = type === 'XaStoredRuns' ? 'stored' : 'erased';
      return `xarray of iopt_pages ${String(e['pages'])}: ${verb} ${pages} in ${runs.length} runs from index ${String(runs[0]?.[0])}`;
    }
    case 'ItreeInserted':
    case 'ItreeRemoved':
      return `${tree?.kind ?? ''}_itree: ${type === 'ItreeInserted' ? 'inserted' : 'removed'} [${String(e['start'])}, ${String(e['last'])}]`;
    case 'PagesReleased':
      return `iopt_pages ${String(e['pages'])} released`;
    case 'AreaPagesSet':
      return `area ${String(e['area'])} now belongs to iopt_pages ${String(e['pages'])}`;
    case 'AreaStorageDomainSet':
      return `area ${String(e['area'])} storage domain ${String(e['domain'])}`;
    case 'AreaFreed':
      return `area ${String(e['area'])} freed`;
    default:
      return type;
  }
}

async function evidenceFor(store: Store, run: number, b: Break): Promise<{ events: EvidenceEvent[]; more: number }> {
  const lines =
    b.lastLinesOnly === true
      ? await lastLines(store, run, b.accounts)
      : await ledgerLines(store, run, { where: [{ accounts: b.accounts }], op: b.op });
  const events: EvidenceEvent[] = lines.map((l) => ({
    seq: l.seq,
    op: l.op,
    type: l.type,
    fn: l.fn,
    text: lineText(l),
  }));
  if (b.holdingsOf.length > 0) {
    const wanted = new Set(b.holdingsOf);
    const areas = new Set(b.areas ?? []);
    for await (const row of store.events(run, { op: b.op, types: HOLDING_EVIDENCE_EVENTS })) {
      const e = decodeJson(row.payload) as Record<string, unknown>;
      const tree = e['tree'] as { kind?: string; pages?: number } | undefined;
      const pages = (e['pages'] as number | null | undefined) ?? tree?.pages;
      const area = e['area'] as number | undefined;
      const mine = pages !== undefined && pages !== null && wanted.has(pages);
      if (!mine && !(area !== undefined && areas.has(area))) continue;
      events.push({
        seq: row.seq,
        op: row.op,
        type: row.type,
        fn: (e['fn'] as string | undefined) ?? null,
        text: holdingText(row.type, e),
      });
    }
    events.sort((a, z) => a.seq - z.seq);
  }
  return { events: events.slice(0, EVIDENCE_MAX), more: Math.max(0, events.length - EVIDENCE_MAX) };
}

/**
 * What the forward pass reads besides the ops and their holding changes (which it streams from the store):
 * ledger closings and the run's objects. Exposed for the summary.
 */
export interface ReconcileInput {
  closings: Closing[];
  pagesClosings: PagesClosing[];
  objects: RunObjects;
}

export async function reconcileInput(store: Store, run: number): Promise<ReconcileInput> {
  return {
    closings: await accountClosings(store, run),
    pagesClosings: await pagesClosings(store, run),
    objects: await runObjects(store, run),
  };
}

/**
 * The ops of a run in index order, each with the iopt_pages whose holdings it may have changed, read a chunk
 * of ops (and the holding changes within their events' seqs) at a time: a long run's pass holds one chunk.
 */
async function* opsWithHoldings(
  store: Store,
  run: number,
): AsyncGenerator<{ op: StoredOp; changed: number[] | undefined }, void, undefined> {
  for (let at = 0; ;) {
    const ops = await store.ops(run, at, at + OP_CHUNK - 1);
    const first = ops[0];
    const last = ops[ops.length - 1];
    if (first === undefined || last === undefined) return;
    const holdings = await holdingChanges(store, run, { fromSeq: first.firstSeq, toSeq: last.lastSeq });
    for (const op of ops) yield { op, changed: holdings.get(op.index) };
    if (ops.length < OP_CHUNK) return;
    at = last.index + 1;
  }
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * Reconcile a stored run: every rule with its first broken op and the events that broke it.
 *
 * @example const r = await reconcile(store, 1); r.rules.filter((x) => !x.ok)
 */
export async function reconcile(store: Store, run: number, input?: ReconcileInput): Promise<Reconciliation> {
  const { closings, pagesClosings: pClosings, objects } = input ?? (await reconcileInput(store, run));
  const source = await StoreSource.open(store, run);
  const seeker = new ForwardSeeker(source);
  const breaks = new Map<RuleName, Break>();
  const brk = (rule: RuleName, b: Break): void => {
    if (!breaks.has(rule)) breaks.set(rule, b);
  };

  const bal = new Map<string, number>();
  const pagesBal = new Map<string, number>();
  let npinnedTotal = 0;
  let pins = 0;
  let ci = 0;
  let pi = 0;
  const modeOps = new Map<number, number[]>();
  for (const info of objects.pages.values()) {
    for (const m of info.modes) {
      const list = modeOps.get(m.op);
      if (list === undefined) modeOps.set(m.op, [info.pages]);
      else list.push(info.pages);
    }
  }

  // The ops stream past in index order (one chunk held at a time); only the count and the last are kept.
  let opCount = 0;
  let lastOp: StoredOp | undefined;
  for await (const { op, changed } of opsWithHoldings(store, run)) {
    opCount += 1;
    lastOp = op;
    const dirty = new Set<number>();
    let pinsMoved = false;
    for (; ci < closings.length && (closings[ci]?.op ?? Infinity) <= op.index; ci++) {
      const c = closings[ci];
      if (c === undefined) continue;
      const k = key(c.counter, c.owner);
      const old = bal.get(k) ?? 0;
      bal.set(k, c.value);
      if (c.counter === 'npinned') npinnedTotal += c.value - old;
      if (c.counter === 'pins') {
        pins = c.value;
        pinsMoved = true;
      }
      if ((c.counter === 'npinned' || c.counter === 'last_npinned') && c.owner !== null) dirty.add(c.owner);
    }
    for (; pi < pClosings.length && (pClosings[pi]?.op ?? Infinity) <= op.index; pi++) {
      const c = pClosings[pi];
      if (c === undefined) continue;
      pagesBal.set(`${c.counter}:${c.pages}`, c.value);
      dirty.add(c.pages);
    }
    for (const id of modeOps.get(op.index) ?? []) dirty.add(id);

    // npinned-equals-pins, whole run: all pages' npinned against the pins held on physical pages.
    if (npinnedTotal !== pins) {
      const moved = [...dirty].map((id) => ({ counter: 'npinned' as const, owner: id }));
      brk('npinned-equals-pins', {
        op: op.index,
        detail: `the iopt_pages hold npinned ${npinnedTotal} in all, but ${plural(pins, 'pin')} are held on physical pages`,
        accounts: pinsMoved ? [...moved, { counter: 'pins', owner: null }] : moved,
        holdingsOf: [],
      });
    }

    // npinned-equals-pins, per pages: npinned against what the state says the pages holds.
    if (changed !== undefined && !breaks.has('npinned-equals-pins')) {
      const state = await seeker.seek(op.lastSeq);
      const wrong: string[] = [];
      const wrongIds: number[] = [];
      const stale: number[] = [];
      for (const id of changed) {
        const p = state.pages[id];
        const staleOfP: number[] = [];
        const held = p === undefined ? 0 : heldIndexes(state, p, staleOfP);
        const npinned = bal.get(key('npinned', id)) ?? 0;
        if (held !== npinned) {
          const staleText =
            staleOfP.length > 0 ? ` (domains_itree still lists freed or unfilled area ${staleOfP.join(', ')})` : '';
          const gone = p === undefined ? ' (released)' : '';
          wrong.push(
            `iopt_pages ${id}${gone} has npinned ${npinned} but its accesses and filled areas cover ${held} ${held === 1 ? 'index' : 'indexes'}${staleText}`,
          );
          wrongIds.push(id);
          pushAll(stale, staleOfP);
        }
      }
      if (wrong.length > 0) {
        brk('npinned-equals-pins', {
          op: op.index,
          detail: wrong.join('; '),
          accounts: wrongIds.map((id) => ({ counter: 'npinned', owner: id })),
          holdingsOf: wrongIds,
          areas: stale,
        });
      }
    }

    for (const id of [...dirty].sort((a, b) => a - b)) {
      const npinned = bal.get(key('npinned', id)) ?? 0;
      const last = bal.get(key('last_npinned', id)) ?? 0;
      const charged = (c: AccountingCounter): number => pagesBal.get(`${c}:${id}`) ?? 0;
      const pinnedVm = charged('mm.pinned_vm');
      const pagesAccounts = (counters: readonly CounterName[]): Account[] => {
        const info = objects.pages.get(id);
        return counters.map((counter) => {
          if (counter === 'npinned' || counter === 'last_npinned') return { counter, owner: id };
          if (counter === 'user.locked_vm') return { counter, owner: info?.sourceUid ?? null };
          return { counter, owner: info?.sourceMm ?? null };
        });
      };
      if (last !== npinned || pinnedVm !== npinned) {
        const info = objects.pages.get(id);
        const source = info === undefined ? undefined : objects.processes.get(info.sourcePid);
        const gone =
          modeAt(info, op.index) === 'mm' && source?.exitedOp != null && source.exitedOp <= op.index
            ? ` (process ${source.pid} has exited: update_mm_locked_vm cannot uncharge mm ${source.mm}, as upstream does too)`
            : '';
        brk('charged-equals-pinned', {
          op: op.index,
          detail: `iopt_pages ${id}: npinned ${npinned}, last_npinned ${last}, mm.pinned_vm charged ${pinnedVm}${gone}`,
          accounts: pagesAccounts(['npinned', 'last_npinned', 'mm.pinned_vm']),
          holdingsOf: [],
        });
      }
      const mode = modeAt(objects.pages.get(id), op.index);
      const user = charged('user.locked_vm');
      const locked = charged('mm.locked_vm');
      const together =
        mode === 'user'
          ? user === pinnedVm && locked === 0
          : mode === 'mm'
            ? locked === pinnedVm && user === 0
            : user === 0 && locked === 0;
      if (!together) {
        brk('counters-move-together', {
          op: op.index,
          detail: `iopt_pages ${id} (${mode.toUpperCase()} accounting): user.locked_vm charged ${user}, mm.locked_vm ${locked}, mm.pinned_vm ${pinnedVm}`,
          accounts: pagesAccounts(ACCOUNTING_COUNTERS),
          holdingsOf: [],
        });
      }
    }
  }

  // zero-after-teardown: the replayer's last op is the teardown.
  const teardown = lastOp?.op === 'teardown' ? lastOp : undefined;
  const complete = teardown !== undefined;
  if (teardown !== undefined) {
    const left = [...bal].filter(([, v]) => v !== 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (left.length > 0) {
      brk('zero-after-teardown', {
        op: teardown.index,
        detail: `left after teardown: ${left.map(([k, v]) => `${k} = ${v}`).join(', ')}`,
        accounts: left.map(([k]) => parseKey(k)),
        holdingsOf: [],
        lastLinesOnly: true,
      });
    }
  }

  // ledger-equals-state: the final state, then bisection over op boundaries for what disagrees.
  const released = new Set<number>();
  for (const info of objects.pages.values()) if (info.releasedOp !== null) released.add(info.pages);
  const history = new History(closings);
  const count = source.eventCount();
  const finalState = await seeker.seek(count);
  const finalValues = stateValues(finalState, released, null);
  const disagree = new Set<string>();
  for (const k of new Set([...finalValues.keys(), ...history.keys()])) {
    if ((finalValues.get(k) ?? 0) !== (bal.get(k) ?? 0)) disagree.add(k);
  }
  // Op rows are numbered 0..opCount-1, so the bisection reads the few it visits by index.
  const opAt = async (i: number): Promise<StoredOp | undefined> => (await store.ops(run, i, i))[0];
  if (disagree.size > 0 && opCount > 0) {
    const fails = async (i: number): Promise<boolean> => {
      const op = await opAt(i);
      if (op === undefined) return true;
      const values = stateValues(await stateAt(source, op.lastSeq), released, disagree);
      return [...disagree].some((k) => (values.get(k) ?? 0) !== history.at(k, op.index));
    };
    // Invariant: fails(hi); lo is the last index known to hold (-1: before the run).
    let lo = -1;
    let hi = opCount - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (await fails(mid)) hi = mid;
      else lo = mid;
    }
    const at = await opAt(hi);
    if (at !== undefined) {
      const values = stateValues(await stateAt(source, at.lastSeq), released, disagree);
      const wrong = [...disagree].filter((k) => (values.get(k) ?? 0) !== history.at(k, at.index)).sort();
      brk('ledger-equals-state', {
        op: at.index,
        detail: wrong.map((k) => `${k}: ledger ${history.at(k, at.index)}, state ${values.get(k) ?? 0}`).join('; '),
        accounts: wrong.map(parseKey),
        holdingsOf: wrong
          .map(parseKey)
          .filter(
            (a) =>
              (a.counter === 'npinned' || a.counter === 'last_npinned') && a.owner !== null && released.has(a.owner),
          )
          .map((a) => a.owner ?? 0),
      });
    }
  }

  const rules: RuleResult[] = [];
  for (const rule of RULE_NAMES) {
    const b = breaks.get(rule);
    if (b === undefined) {
      rules.push(
        okResult(rule, rule === 'zero-after-teardown' && !complete ? 'the run has no teardown op (incomplete)' : null),
      );
      continue;
    }
    const { events, more } = await evidenceFor(store, run, b);
    const op = await opAt(b.op);
    rules.push({
      rule,
      ok: false,
      description: RULE_DESCRIPTIONS[rule],
      op: b.op,
      line: op?.line ?? null,
      opName: op?.op ?? null,
      detail: b.detail,
      accounts: [...new Set(b.accounts.map((a) => key(a.counter, a.owner)))],
      events,
      moreEvents: more,
      skipped: null,
    });
  }
  return { run, ok: rules.every((r) => r.ok), rules };
}
