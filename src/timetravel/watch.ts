// SPDX-License-Identifier: GPL-2.0-only
/**
 * watch: the first event of a run at which a predicate over the state holds.
 *
 * The expression language:
 *   values      integers (decimal or 0x hex, optionally negative), `none` (an absent value)
 *               npinned, last_npinned, refs              of any iopt_pages (see below)
 *               pages.N.npinned, pages.N.last_npinned, pages.N.refs
 *               user.UID.locked_vm, mm.ID.locked_vm, mm.ID.pinned_vm, mm.ID.mm_users, mm.ID.mm_count
 *               (the kernel's names, as diff and step print them: src/state/kernel-names.ts; `users` and
 *               `count` for mm_users and mm_count, and `users.UID` / `mms.ID`, are accepted too)
 *               violations, warns                        counters of findings so far
 *               pins(PFN), maps(PFN)                     pin and map count of a physical page (0 if free)
 *               xa(PAGES, INDEX)                         the PFN stored at an index, none if absent
 *   conditions  value (== != < <= > >=) value,  cond && cond,  cond || cond,  !cond,  ( ... ),
 *               and a lone value, which holds when it is neither 0 nor none.
 * A bare pages field (`npinned != last_npinned`) asks whether some iopt_pages satisfies the expression.
 * none equals only none and is neither < nor > anything.
 *
 * Objects that do not exist: a value of a named iopt_pages, user or mm (`pages.9.npinned`, `xa(9, 0)`,
 * `user.1000.locked_vm`, `mm.2.users`) is unknown at an event where that object does not exist (not yet
 * created, or already freed), and a comparison with an unknown value is unknown: it neither holds nor fails,
 * `!` keeps it unknown, `&&` and `||` follow three-valued logic (unknown && false is false, unknown || true
 * is true), and the predicate holds only where it is known to be true. So `pages.9.npinned != 0` does not
 * hold before pages 9 exists. An object that exists at no event of the run is a mistake in the expression:
 * watch refuses it ("pages 9 never exists in run 1", a NotFoundError).
 *
 * Search: the predicate is evaluated at `from`, then after each event that can change a value it reads
 * (the event types that write those fields, streamed with a type filter), on a state moved forward by the
 * reducers; between two such events the predicate cannot change, and a stretch without any is skipped by
 * jumping to the snapshot before the next one. So the answer is exact (the FIRST event at which the
 * predicate holds, even when it holds only briefly), rare predicates cost a few snapshot loads, and the
 * worst case is one replay of the run. With `monotonic: true` the caller promises the predicate never
 * turns false again once true: snapshots are then bisected and only the last stretch is stepped.
 */
import type { EventType } from '../events/events.js';
import { FINDING_EVENTS, PIN_EVENTS } from '../events/groups.js';
import { rangeGet } from '../structures/range-map.js';
import { xaLoad } from '../structures/xarray.js';
import { BadInputError, NotFoundError } from '../lib/errors.js';
import type { Pages, State } from '../state/state.js';
import type { EventSource } from './source.js';
import { ForwardSeeker, checkSeq, loadSnapshot } from './state-at.js';
import { initialState } from '../state/state.js';
import { WATCH_MM_FIELDS, WATCH_PAGES_FIELDS } from '../state/kernel-names.js';

/** A parse error: one line naming the column. */
export class ExpressionError extends BadInputError {
  override readonly name: string = 'ExpressionError';

  constructor(
    readonly detail: string,
    /** 1-based column of the offending character. */
    readonly column: number,
    readonly expression: string,
  ) {
    super(`bad expression at column ${column}: ${detail} (in "${expression}")`, { field: 'expression' });
  }
}

type PagesField = 'npinned' | 'lastNpinned' | 'refs';
type MmField = 'lockedVm' | 'pinnedVm' | 'users' | 'count';

type ValueNode =
  | { kind: 'number'; value: number | null }
  | { kind: 'pages'; pages: number | null; field: PagesField }
  | { kind: 'user'; uid: number }
  | { kind: 'mm'; mm: number; field: MmField }
  | { kind: 'findings'; field: 'violations' | 'warns' }
  | { kind: 'frame'; field: 'pins' | 'maps'; pfn: number }
  | { kind: 'xa'; pages: number; index: number };

type CmpOp = '==' | '!=' | '<' | '<=' | '>' | '>=';

type CondNode =
  | { kind: 'cmp'; op: CmpOp; left: ValueNode; right: ValueNode }
  | { kind: 'and' | 'or'; left: CondNode; right: CondNode }
  | { kind: 'not'; operand: CondNode }
  | { kind: 'truthy'; value: ValueNode };

type Node = { type: 'value'; node: ValueNode } | { type: 'cond'; node: CondNode };

interface Token {
  kind: 'number' | 'name' | 'op' | '(' | ')' | ',' | 'end';
  text: string;
  /** 0-based offset in the expression. */
  pos: number;
}

const OPERATORS = ['==', '!=', '<=', '>=', '&&', '||', '<', '>', '!', '-'];

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const ch = expr[i] as string;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const rest = expr.slice(i);
    const num = /^(0x[0-9a-fA-F]+|\d+)(?![A-Za-z0-9_])/.exec(rest);
    if (num) {
      tokens.push({ kind: 'number', text: num[0], pos: i });
      i += num[0].length;
      continue;
    }
    const name = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*/.exec(rest);
    if (name) {
      tokens.push({ kind: 'name', text: name[0], pos: i });
      i += name[0].length;
      continue;
    }
    if (ch === '(' || ch === ')' || ch === ',') {
      tokens.push({ kind: ch, text: ch, pos: i });
      i++;
      continue;
    }
    const op = OPERATORS.find((o) => rest.startsWith(o));
    if (op === undefined) throw new ExpressionError(`unexpected character '${ch}'`, i + 1, expr);
    if (op === '-' && !/^-\s*(0x[0-9a-fA-F]+|\d)/.test(rest))
      throw new ExpressionError(`'-' must precede a number`, i + 1, expr);
    tokens.push({ kind: 'op', text: op, pos: i });
    i += op.length;
  }
  tokens.push({ kind: 'end', text: 'end of expression', pos: expr.length });
  return tokens;
}

// The kernel's field names (kernel-names.ts): what diff, step and bisect print is what watch reads.
const PAGES_FIELDS: Readonly<Record<string, PagesField>> = WATCH_PAGES_FIELDS;
const MM_FIELDS: Readonly<Record<string, MmField>> = WATCH_MM_FIELDS;
const FIELD_LIST =
  'npinned, last_npinned, refs, pages.N.<field>, user.UID.locked_vm, mm.ID.<locked_vm|pinned_vm|mm_users|mm_count>, violations, warns, pins(PFN), maps(PFN), xa(PAGES, INDEX)';

function parseInteger(text: string): number | null {
  const n = /^0x[0-9a-f]+$/i.test(text) ? Number.parseInt(text.slice(2), 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  return Number.isSafeInteger(n) ? n : null;
}

class Parser {
  private i = 0;
  constructor(
    private readonly expr: string,
    private readonly tokens: Token[],
  ) {}

  private peek(): Token {
    return this.tokens[this.i] as Token;
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'end') this.i++;
    return t;
  }

  private fail(t: Token, detail: string): never {
    throw new ExpressionError(detail, t.pos + 1, this.expr);
  }

  private found(t: Token): string {
    return t.kind === 'end' ? 'the end of the expression' : `'${t.text}'`;
  }

  private expect(kind: Token['kind'], what: string): Token {
    const t = this.next();
    if (t.kind !== kind) this.fail(t, `expected ${what} but found ${this.found(t)}`);
    return t;
  }

  parse(): CondNode {
    const node = this.parseOr();
    const t = this.peek();
    if (t.kind !== 'end') this.fail(t, `expected an operator or the end but found ${this.found(t)}`);
    return asCond(node);
  }

  private parseOr(): Node {
    let left = this.parseAnd();
    while (this.peek().kind === 'op' && this.peek().text === '||') {
      this.next();
      const right = this.parseAnd();
      left = { type: 'cond', node: { kind: 'or', left: asCond(left), right: asCond(right) } };
    }
    return left;
  }

  private parseAnd(): Node {
    let left = this.parseNot();
    while (this.peek().kind === 'op' && this.peek().text === '&&') {
      this.next();
      const right = this.parseNot();
      left = { type: 'cond', node: { kind: 'and', left: asCond(left), right: asCond(right) } };
    }
    return left;
  }

  private parseNot(): Node {
    if (this.peek().kind === 'op' && this.peek().text === '!') {
      this.next();
      return { type: 'cond', node: { kind: 'not', operand: asCond(this.parseNot()) } };
    }
    return this.parseCmp();
  }

  private parseCmp(): Node {
    const leftToken = this.peek();
    const left = this.parsePrimary();
    const t = this.peek();
    if (t.kind !== 'op' || !['==', '!=', '<', '<=', '>', '>='].includes(t.text)) return left;
    this.next();
    const rightToken = this.peek();
    const right = this.parsePrimary();
    if (left.type !== 'value') this.fail(leftToken, `'${t.text}' compares values, but its left side is a condition`);
    if (right.type !== 'value') this.fail(rightToken, `'${t.text}' compares values, but its right side is a condition`);
    return { type: 'cond', node: { kind: 'cmp', op: t.text as CmpOp, left: left.node, right: right.node } };
  }

  private parsePrimary(): Node {
    const t = this.next();
    if (t.kind === '(') {
      const inner = this.parseOr();
      this.expect(')', `')' to close the '(' at column ${t.pos + 1}`);
      return inner;
    }
    if (t.kind === 'number') return { type: 'value', node: { kind: 'number', value: this.integer(t) } };
    if (t.kind === 'op' && t.text === '-') {
      const n = this.expect('number', "a number after '-'");
      return { type: 'value', node: { kind: 'number', value: -this.integer(n) } };
    }
    if (t.kind === 'name') return { type: 'value', node: this.field(t) };
    return this.fail(t, `expected a value, '(' or '!' but found ${this.found(t)}`);
  }

  private integer(t: Token): number {
    const n = parseInteger(t.text);
    if (n === null) this.fail(t, `${t.text} is not a safe integer`);
    return n;
  }

  private segment(t: Token, text: string | undefined, what: string): number {
    const n = text === undefined ? null : parseInteger(text);
    if (n === null) this.fail(t, `expected ${what} in '${t.text}'`);
    return n;
  }

  private args(name: Token, count: number): number[] {
    this.expect('(', `'(' after ${name.text}`);
    const out: number[] = [];
    for (let k = 0; k < count; k++) {
      if (k > 0) this.expect(',', `',' between the arguments of ${name.text}`);
      out.push(this.integer(this.expect('number', `an integer argument of ${name.text}`)));
    }
    this.expect(')', `')' after the arguments of ${name.text}`);
    return out;
  }

  private field(t: Token): ValueNode {
    const parts = t.text.split('.');
    const [head, id, sub] = parts;
    if (parts.length === 1 && head !== undefined) {
      if (head === 'none') return { kind: 'number', value: null };
      const pf = PAGES_FIELDS[head];
      if (pf !== undefined) return { kind: 'pages', pages: null, field: pf };
      if (head === 'violations' || head === 'warns') return { kind: 'findings', field: head };
      if (head === 'pins' || head === 'maps') {
        const [pfn] = this.args(t, 1) as [number];
        return { kind: 'frame', field: head, pfn };
      }
      if (head === 'xa') {
        const [pages, index] = this.args(t, 2) as [number, number];
        return { kind: 'xa', pages, index };
      }
    }
    if (parts.length === 3 && sub !== undefined) {
      if (head === 'pages') {
        const pf = PAGES_FIELDS[sub];
        if (pf === undefined) this.fail(t, `pages has no field '${sub}' (npinned, last_npinned, refs)`);
        return { kind: 'pages', pages: this.segment(t, id, 'a pages id'), field: pf };
      }
      // `users.UID` and `mms.ID` as diff and step print them, `user.UID` and `mm.ID` as watch first took them.
      if (head === 'user' || head === 'users') {
        if (sub !== 'locked_vm') this.fail(t, `user has no field '${sub}' (locked_vm)`);
        return { kind: 'user', uid: this.segment(t, id, 'a uid') };
      }
      if (head === 'mm' || head === 'mms') {
        const mf = MM_FIELDS[sub];
        if (mf === undefined) this.fail(t, `mm has no field '${sub}' (locked_vm, pinned_vm, mm_users, mm_count)`);
        return { kind: 'mm', mm: this.segment(t, id, 'an mm id'), field: mf };
      }
    }
    return this.fail(t, `unknown field '${t.text}' (fields: ${FIELD_LIST})`);
  }
}

function asCond(n: Node): CondNode {
  return n.type === 'cond' ? n.node : { kind: 'truthy', value: n.node };
}

// ---- evaluation -----------------------------------------------------------------------------------------------

/** A value, none (null), or undefined when the object it belongs to does not exist at this event. */
type Value = number | null | undefined;

function valueOf(n: ValueNode, s: State, scope: Pages | null): Value {
  switch (n.kind) {
    case 'number':
      return n.value;
    case 'pages': {
      const p = n.pages === null ? scope : s.pages[n.pages];
      return p === null || p === undefined ? undefined : p[n.field];
    }
    case 'user': {
      const u = s.users[n.uid];
      return u === undefined ? undefined : u.lockedVm;
    }
    case 'mm': {
      const m = s.mms[n.mm];
      return m === undefined ? undefined : m[n.field];
    }
    case 'findings':
      return s.counts[n.field];
    case 'frame':
      return rangeGet(s.frames, n.pfn)?.[n.field] ?? 0;
    case 'xa': {
      const p = s.pages[n.pages];
      return p === undefined ? undefined : (xaLoad(p.xa, n.index) ?? null);
    }
  }
}

/** Three-valued: null when a side belongs to an object that does not exist. */
function compare(op: CmpOp, a: Value, b: Value): boolean | null {
  if (a === undefined || b === undefined) return null;
  if (op === '==') return a === b;
  if (op === '!=') return a !== b;
  if (a === null || b === null) return false;
  if (op === '<') return a < b;
  if (op === '<=') return a <= b;
  if (op === '>') return a > b;
  return a >= b;
}

/** Kleene logic: true, false, or null (unknown: it reads an object that does not exist here). */
function truth(n: CondNode, s: State, scope: Pages | null): boolean | null {
  switch (n.kind) {
    case 'cmp':
      return compare(n.op, valueOf(n.left, s, scope), valueOf(n.right, s, scope));
    case 'and': {
      const a = truth(n.left, s, scope);
      if (a === false) return false;
      const b = truth(n.right, s, scope);
      return b === false ? false : a === null || b === null ? null : true;
    }
    case 'or': {
      const a = truth(n.left, s, scope);
      if (a === true) return true;
      const b = truth(n.right, s, scope);
      return b === true ? true : a === null || b === null ? null : false;
    }
    case 'not': {
      const a = truth(n.operand, s, scope);
      return a === null ? null : !a;
    }
    case 'truthy': {
      const v = valueOf(n.value, s, scope);
      return v === undefined ? null : v !== null && v !== 0;
    }
  }
}

function holds(n: CondNode, s: State, scope: Pages | null): boolean {
  return truth(n, s, scope) === true;
}

// The event types whose reducers write the fields a value reads.
const PAGES_TYPES: readonly EventType[] = [
  'PagesAllocated',
  'PagesReleased',
  'NpinnedChanged',
  'LastNpinnedSet',
  'PagesRefChanged',
];
const TYPES_OF: Record<Exclude<ValueNode['kind'], 'number' | 'pages'>, readonly EventType[]> = {
  user: ['ProcessCreated', 'AccountingCharged', 'AccountingUncharged'],
  mm: ['ProcessCreated', 'AccountingCharged', 'AccountingUncharged', 'MmGot', 'MmPut', 'MmGrabbed', 'MmDropped'],
  findings: FINDING_EVENTS,
  frame: ['FramesAllocated', 'FrameRunsAllocated', 'VmaMapped', 'VmaUnmapped', 'CowBroken', ...PIN_EVENTS],
  xa: ['PagesAllocated', 'PagesReleased', 'XaStored', 'XaErased', 'XaStoredRuns', 'XaErasedRuns'],
};

function valuesOf(n: CondNode, out: ValueNode[] = []): ValueNode[] {
  if (n.kind === 'cmp') out.push(n.left, n.right);
  else if (n.kind === 'truthy') out.push(n.value);
  else if (n.kind === 'not') valuesOf(n.operand, out);
  else {
    valuesOf(n.left, out);
    valuesOf(n.right, out);
  }
  return out;
}

/** A parsed predicate. */
export interface Predicate {
  readonly expression: string;
  /** Does the state satisfy it (for some iopt_pages, when it reads bare pages fields)? */
  test(state: State): boolean;
  /** Event types after which the predicate may change value. */
  readonly types: readonly EventType[];
}

/** The objects an expression names: iopt_pages ids, uids, mm ids. */
export interface NamedObjects {
  pages: ReadonlySet<number>;
  users: ReadonlySet<number>;
  mms: ReadonlySet<number>;
}

function namedObjects(values: readonly ValueNode[]): NamedObjects {
  const pages = new Set<number>();
  const users = new Set<number>();
  const mms = new Set<number>();
  for (const v of values) {
    if (v.kind === 'pages' && v.pages !== null) pages.add(v.pages);
    else if (v.kind === 'xa') pages.add(v.pages);
    else if (v.kind === 'user') users.add(v.uid);
    else if (v.kind === 'mm') mms.add(v.mm);
  }
  return { pages, users, mms };
}

/**
 * Refuse an expression naming an object that no event of the run creates: it can only be a typo, and its
 * comparisons would never be known, so the search would quietly answer "never holds".
 */
async function requireNamedObjects(
  source: EventSource,
  named: NamedObjects,
  end: number,
  runName: string,
): Promise<void> {
  const pages = new Set(named.pages);
  const users = new Set(named.users);
  const mms = new Set(named.mms);
  if (pages.size + users.size + mms.size === 0) return;
  for await (const { event } of source.events(1, end, ['PagesAllocated', 'ProcessCreated'])) {
    if (event.type === 'PagesAllocated') pages.delete(event.pages);
    else if (event.type === 'ProcessCreated') {
      users.delete(event.uid);
      mms.delete(event.mm);
    }
    if (pages.size + users.size + mms.size === 0) return;
  }
  const [p] = pages;
  if (p !== undefined) throw new NotFoundError(`pages ${p} never exists in ${runName}`, 'pages', p);
  const [u] = users;
  if (u !== undefined) throw new NotFoundError(`user ${u} never exists in ${runName}`, 'user', u);
  const [m] = mms;
  if (m !== undefined) throw new NotFoundError(`mm ${m} never exists in ${runName}`, 'mm', m);
}

interface CompiledPredicate extends Predicate {
  /** The iopt_pages, users and mms the expression names. */
  readonly named: NamedObjects;
  /** Test only for one iopt_pages: enough after an event that changed only that pages' bare fields. */
  testPages(state: State, pages: number): boolean;
  /** Types that change a value read for every pages (so the whole existential must be re-tested). */
  readonly globalTypes: ReadonlySet<EventType>;
}

/**
 * Parse a watch expression; throws ExpressionError (a BadInputError) naming the column of the problem.
 *
 * @example compileWatch('npinned != last_npinned').test(state)
 */
export function compileWatch(expression: string): CompiledPredicate {
  const root = new Parser(expression, tokenize(expression)).parse();
  const values = valuesOf(root);
  const bare = values.some((v) => v.kind === 'pages' && v.pages === null);
  const globalTypes = new Set<EventType>();
  const all = new Set<EventType>();
  for (const v of values) {
    if (v.kind === 'number') continue;
    const types = v.kind === 'pages' ? PAGES_TYPES : TYPES_OF[v.kind];
    for (const t of types) {
      all.add(t);
      if (!(v.kind === 'pages' && v.pages === null)) globalTypes.add(t);
    }
  }
  return {
    expression,
    types: [...all],
    globalTypes,
    named: namedObjects(values),
    test(state: State): boolean {
      if (!bare) return holds(root, state, null);
      for (const key in state.pages) {
        const p = state.pages[Number(key)];
        if (p !== undefined && holds(root, state, p)) return true;
      }
      return false;
    },
    testPages(state: State, pages: number): boolean {
      const p = state.pages[pages];
      return p !== undefined && holds(root, state, p);
    },
  };
}

export interface WatchHit {
  /** The first seq at which the predicate holds (0: it holds in the initial state). */
  seq: number;
  /** The op of that event; -1 for seq 0. */
  op: number;
}

export interface WatchOptions {
  /** Start looking at this seq (0 unless given): the answer is the first seq >= from where it holds. */
  from?: number;
  /** How messages name the run ("run 3"); "the run" unless given. */
  runName?: string;
  /** The predicate never turns false once true: bisect the snapshots instead of scanning. */
  monotonic?: boolean;
}

async function opOfSeq(source: EventSource, seq: number): Promise<number> {
  if (seq === 0) return -1;
  for await (const e of source.events(seq, seq)) return e.op;
  return -1;
}

/** Step from `start` (where the predicate does not hold) to `end`, testing after each event that may change it. */
async function scan(
  source: EventSource,
  pred: CompiledPredicate,
  start: number,
  end: number,
  seeker: ForwardSeeker,
): Promise<WatchHit | null> {
  if (pred.types.length === 0) return null;
  for await (const { seq, op, event } of source.events(start + 1, end, pred.types)) {
    const state = await seeker.seek(seq);
    const scoped = !pred.globalTypes.has(event.type) && 'pages' in event && typeof event.pages === 'number';
    if (scoped ? pred.testPages(state, event.pages as number) : pred.test(state)) return { seq, op };
  }
  return null;
}

/**
 * The first event at or after `from` at which the expression holds, or null if it never does.
 *
 * @example await watch(source, 'npinned != last_npinned') // { seq: 1234, op: 17 }
 */
export async function watch(
  source: EventSource,
  expression: string,
  options: WatchOptions = {},
): Promise<WatchHit | null> {
  const pred = compileWatch(expression);
  const from = options.from ?? 0;
  checkSeq(source, from);
  const end = source.eventCount();
  await requireNamedObjects(source, pred.named, end, options.runName ?? 'the run');
  const seeker = new ForwardSeeker(source);
  if (pred.test(await seeker.seek(from))) return { seq: from, op: await opOfSeq(source, from) };
  if (options.monotonic !== true) return scan(source, pred, from, end, seeker);

  // Bisect the snapshots after `from`: the first one where it holds bounds the stretch to step.
  const seqs = source.snapshotSeqs().filter((s) => s > from);
  let lo = 0;
  let hi = seqs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const seq = seqs[mid] as number;
    const blob = await source.snapshotAtOrBefore(seq);
    const state = blob === undefined ? initialState() : loadSnapshot(blob);
    if (pred.test(state)) hi = mid;
    else lo = mid + 1;
  }
  const start = lo === 0 ? from : (seqs[lo - 1] as number);
  const stop = lo < seqs.length ? (seqs[lo] as number) : end;
  const stepper = new ForwardSeeker(source);
  await stepper.seek(start);
  return scan(source, pred, start, stop, stepper);
}
