// SPDX-License-Identifier: GPL-2.0-only
/**
 * Structural diff of two states: every record, field, run, tree node and mapping that differs, with the
 * value on each side. What `diff RUN SEQ_A SEQ_B` prints and what run bisect reports at the first op whose
 * digests differ.
 *
 * Cost: linear in the records and runs of the two states, never in pages. Run-length structures (frames,
 * page tables, VMAs, xarrays) are compared run against run: both run lists are cut at the union of their
 * boundaries and each piece is compared once, then adjacent differing pieces with the same change are
 * merged into one difference. Anything identical by reference (two states that share structure, as the
 * states of an immer step do) or, for the canonical structures, by digest, is skipped without a walk.
 *
 * A Difference names a table, the record's key, a path inside the record and, for runs and nodes, the
 * position as a range; `a` / `b` are the values on side A and B, undefined where that side has none.
 *
 * Left out, as the digest leaves them out: `state.run` (the variant and its fixes: two variants in the same
 * state are equal states). Reported though not digested: the cursors nextId, nextPfn, opsDone (table
 * 'cursors'), which say how a state was reached.
 */
import { hex } from '../lib/format.js';
import { kernelField, kernelPlace } from './kernel-names.js';
import type { Digest } from '../lib/digest.js';
import { digestEquals, digestHex } from '../lib/digest.js';
import { encodeJson } from '../lib/codec.js';
import { mappingsForEachFrom } from '../structures/mapping-table.js';
import type { IntervalTree } from '../structures/interval-tree.js';
import { itreeEntries } from '../structures/interval-tree.js';
import type { ItreeEntry, Key as TreeKey } from '../structures/interval-tree.js';
import type { RangeMap } from '../structures/range-map.js';
import { rangeForEachAll } from '../structures/range-map.js';
import { xaForEachRun } from '../structures/xarray.js';
import type { Xarray } from '../structures/xarray.js';
import { STATE_TABLES, type Frame, type Mapping, type MappingTable, type State, type Vma } from './state.js';

/** The tables of a diff, in the order differences are listed. */
export const DIFF_TABLES = STATE_TABLES;
export type DiffTable = (typeof DIFF_TABLES)[number];

/** What a range counts: physical pages, user virtual pages, page indexes of an iopt_pages, bytes of IOVA. */
export type DiffUnit = 'pfn' | 'vpn' | 'index' | 'iova';

/** An inclusive range of units. */
export interface DiffRange {
  unit: DiffUnit;
  first: number | bigint;
  last: number | bigint;
}

export interface Difference {
  table: DiffTable;
  /** The record's key in its table (pid, mm id, pages id, IOAS name, ...); null for state-wide tables. */
  key: string | null;
  /** Where inside the record, outermost first: ['npinned'], ['xa', 'index 0..511'], ['pfn 0x40000..0x401ff', 'pins']. */
  path: string[];
  /** For runs, tree nodes and mappings: the units they cover. */
  at: DiffRange | null;
  /** The value on side A; undefined when A has none (the record, run or node exists only in B). */
  a: unknown;
  b: unknown;
}

export interface StateDiff {
  digestA: string;
  digestB: string;
  differences: Difference[];
}

// ---- formatting, shared with the renderers --------------------------------------------------------------

export { hex } from '../lib/format.js';

/** A range as text: `pfn 0x40000..0x401ff`, `index 0..511`, `iova 0x1000` (one unit). */
export function rangeText(r: DiffRange): string {
  const show = r.unit === 'index' ? (n: number | bigint): string => n.toString() : hex;
  return r.first === r.last ? `${r.unit} ${show(r.first)}` : `${r.unit} ${show(r.first)}..${show(r.last)}`;
}

// Numbers that are addresses or PFNs print in hex; bigints are addresses or byte counts and always do,
// except a memlock limit, which reads better in decimal.
const HEX_NUMBERS = new Set(['pfn', 'nextPfn', 'oldPfn', 'newPfn', 'vpn']);
const DECIMAL_BIGINTS = new Set(['memlock']);

/**
 * One value as short readable text; `field` picks hex or decimal. undefined (absent) prints as (none). The
 * fields of an object (a record of `table`) are named as the kernel names them (kernel-names.ts).
 */
export function formatValue(value: unknown, field = '', table = ''): string {
  if (value === undefined) return '(none)';
  if (value === null) return 'null';
  if (typeof value === 'bigint') return DECIMAL_BIGINTS.has(field) ? value.toString() : hex(value);
  if (typeof value === 'number') return HEX_NUMBERS.has(field) ? hex(value) : String(value);
  if (typeof value === 'string') return value === '' ? '""' : value;
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (Array.isArray(value)) return `[${value.map((v) => formatValue(v, field, table)).join(', ')}]`;
  if (typeof value === 'object') {
    const parts = Object.entries(value as Record<string, unknown>).map(
      ([k, v]) => `${kernelField(table, k)} ${formatValue(v, k)}`,
    );
    return `{${parts.join(', ')}}`;
  }
  return typeof value === 'symbol' ? value.toString() : 'function';
}

// ---- the collector ----------------------------------------------------------------------------------------

type Rec = Record<string, unknown>;

function sortedKeys(a: object | undefined, b: object | undefined): string[] {
  const keys = new Set<string>();
  if (a !== undefined) for (const k of Object.keys(a)) keys.add(k);
  if (b !== undefined) for (const k of Object.keys(b)) keys.add(k);
  const numeric = (k: string): boolean => /^\d+$/.test(k);
  return [...keys].sort((x, y) => {
    if (numeric(x) && numeric(y)) return Number(x) - Number(y);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/** Equal as values: identical primitives, or objects with the same canonical JSON. */
function sameValue(x: unknown, y: unknown): boolean {
  if (x === y) return true;
  if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return false;
  return encodeJson(x) === encodeJson(y);
}

function sameDigest(x: { digest: Digest } | undefined, y: { digest: Digest } | undefined): boolean {
  return x !== undefined && y !== undefined && digestEquals(x.digest, y.digest);
}

interface Sink {
  out: Difference[];
  table: DiffTable;
  key: string | null;
}

function push(s: Sink, path: string[], a: unknown, b: unknown, at: DiffRange | null = null): void {
  s.out.push({ table: s.table, key: s.key, path, at, a, b });
}

/**
 * Differences over runs of units: adjacent pieces with the same change (same `sig`, and `continues` when
 * values must also continue, like PFNs) become one difference. The path is [...before, range, ...after].
 */
class RunDiffs {
  private readonly pending = new Map<string, { d: Difference; count: number; after: string[] }>();
  private readonly made: { d: Difference; after: string[] }[] = [];

  constructor(
    private readonly sink: Sink,
    private readonly unit: DiffUnit,
    private readonly before: string[],
  ) {}

  add(
    sig: string,
    first: number,
    count: number,
    after: string[],
    a: unknown,
    b: unknown,
    continues?: (prevA: unknown, prevB: unknown, prevCount: number) => boolean,
  ): void {
    const prev = this.pending.get(sig);
    if (
      prev !== undefined &&
      (prev.d.at?.last as number) + 1 === first &&
      (continues === undefined || continues(prev.d.a, prev.d.b, prev.count))
    ) {
      (prev.d.at as DiffRange).last = first + count - 1;
      prev.count += count;
      return;
    }
    const d: Difference = {
      table: this.sink.table,
      key: this.sink.key,
      path: [],
      at: { unit: this.unit, first, last: first + count - 1 },
      a,
      b,
    };
    this.sink.out.push(d);
    this.pending.set(sig, { d, count, after });
    this.made.push({ d, after });
  }

  finish(): void {
    for (const { d, after } of this.made) d.path = [...this.before, rangeText(d.at as DiffRange), ...after];
  }
}

interface Piece<T> {
  start: number;
  count: number;
  value: T;
}

/** Cut two ascending lists of disjoint runs at the union of their boundaries; call `fn` per covered piece. */
function sweep<T>(
  as: readonly Piece<T>[],
  bs: readonly Piece<T>[],
  fn: (first: number, count: number, a: Piece<T> | undefined, b: Piece<T> | undefined) => void,
): void {
  let i = 0;
  let j = 0;
  let pos = -Infinity;
  while (i < as.length || j < bs.length) {
    const a = as[i];
    const b = bs[j];
    const aStart = a === undefined ? Infinity : Math.max(a.start, pos);
    const bStart = b === undefined ? Infinity : Math.max(b.start, pos);
    const start = Math.min(aStart, bStart);
    const inA = a !== undefined && aStart === start;
    const inB = b !== undefined && bStart === start;
    let end = Infinity;
    if (a !== undefined) end = Math.min(end, inA ? a.start + a.count : aStart);
    if (b !== undefined) end = Math.min(end, inB ? b.start + b.count : bStart);
    fn(start, end - start, inA ? a : undefined, inB ? b : undefined);
    pos = end;
    if (a !== undefined && a.start + a.count <= pos) i++;
    if (b !== undefined && b.start + b.count <= pos) j++;
  }
}

function segmentsOf<V>(m: RangeMap<V> | undefined): Piece<{ value: V; key: string }>[] {
  const out: Piece<{ value: V; key: string }>[] = [];
  if (m !== undefined)
    rangeForEachAll(m, (start, count, value, key) => void out.push({ start, count, value: { value, key } }));
  return out;
}

/** Range maps of records (frames, VMAs): a differing piece is reported per field, a missing one whole. */
function diffRangeMap<V extends object>(
  sink: Sink,
  unit: DiffUnit,
  before: string[],
  ma: RangeMap<V> | undefined,
  mb: RangeMap<V> | undefined,
): void {
  if (ma === mb || sameDigest(ma, mb)) return;
  const runs = new RunDiffs(sink, unit, before);
  sweep(segmentsOf(ma), segmentsOf(mb), (first, count, pa, pb) => {
    if (pa !== undefined && pb !== undefined) {
      if (pa.value.key === pb.value.key) return;
      const va = pa.value.value as Rec;
      const vb = pb.value.value as Rec;
      for (const field of sortedKeys(va, vb)) {
        if (sameValue(va[field], vb[field])) continue;
        runs.add(
          `${field}|${encodeJson(va[field])}|${encodeJson(vb[field])}`,
          first,
          count,
          [field],
          va[field],
          vb[field],
        );
      }
      return;
    }
    const va = pa?.value.value;
    const vb = pb?.value.value;
    runs.add(`*|${pa?.value.key ?? '-'}|${pb?.value.key ?? '-'}`, first, count, [], va, vb);
  });
  runs.finish();
}

function xaRunsOf(xa: Xarray | undefined): Piece<number>[] {
  const out: Piece<number>[] = [];
  if (xa !== undefined)
    xaForEachRun(
      xa,
      0,
      Number.MAX_SAFE_INTEGER,
      (index, pfn, count) => void out.push({ start: index, count, value: pfn }),
    );
  return out;
}

/** Xarrays (index -> PFN) and page tables (vpn -> PFN): a differing piece gives the first PFN on each side. */
function diffXarray(sink: Sink, unit: DiffUnit, field: string, xa: Xarray | undefined, xb: Xarray | undefined): void {
  if (xa === xb || sameDigest(xa, xb)) return;
  const runs = new RunDiffs(sink, unit, [field]);
  sweep(xaRunsOf(xa), xaRunsOf(xb), (first, count, pa, pb) => {
    const pfnA = pa === undefined ? undefined : pa.value + (first - pa.start);
    const pfnB = pb === undefined ? undefined : pb.value + (first - pb.start);
    if (pfnA === pfnB) return;
    const sig = `${pfnA === undefined ? '-' : '+'}${pfnB === undefined ? '-' : '+'}`;
    runs.add(sig, first, count, [], pfnA, pfnB, (prevA, prevB, prevCount) => {
      const next = (p: unknown): unknown => (p === undefined ? undefined : (p as number) + prevCount);
      return next(prevA) === pfnA && next(prevB) === pfnB;
    });
  });
  runs.finish();
}

/** Interval trees: nodes matched by id; a node on one side only, or with other bounds, differs. */
function diffItree<K extends TreeKey>(
  sink: Sink,
  unit: DiffUnit,
  field: string,
  ta: IntervalTree<K> | undefined,
  tb: IntervalTree<K> | undefined,
): void {
  if (ta === tb || sameDigest(ta, tb)) return;
  const ea = ta === undefined ? [] : itreeEntries(ta);
  const eb = tb === undefined ? [] : itreeEntries(tb);
  const onlyB = new Map<number, ItreeEntry<K>>(eb.map((e) => [e.id, e]));
  const bounds = (e: ItreeEntry<K>): { start: K; last: K } => ({ start: e.start, last: e.last });
  for (const e of ea) {
    const o = onlyB.get(e.id);
    onlyB.delete(e.id);
    if (o !== undefined && o.start === e.start && o.last === e.last) continue;
    push(sink, [field, `node ${e.id}`], bounds(e), o === undefined ? undefined : bounds(o), {
      unit,
      first: e.start,
      last: e.last,
    });
  }
  for (const e of eb) {
    if (onlyB.has(e.id))
      push(sink, [field, `node ${e.id}`], undefined, bounds(e), { unit, first: e.start, last: e.last });
  }
}

function mappingsOf(t: MappingTable | undefined): Mapping[] {
  const out: Mapping[] = [];
  if (t !== undefined) mappingsForEachFrom(t, undefined, (m) => void out.push(m));
  return out;
}

const mappingView = (m: Mapping): Rec => ({
  paddr: m.paddr,
  size: m.size,
  pgsize: m.pgsize,
  read: m.read,
  write: m.write,
  extent: m.extent,
  headFlag: m.headFlag,
  tailFlag: m.tailFlag,
});

/** IO page tables: pieces matched by IOVA. */
function diffMappings(sink: Sink, ta: MappingTable | undefined, tb: MappingTable | undefined): void {
  if (ta === tb || sameDigest(ta, tb)) return;
  const ma = mappingsOf(ta);
  const mb = mappingsOf(tb);
  let i = 0;
  let j = 0;
  const at = (m: Mapping): DiffRange => ({ unit: 'iova', first: m.iova, last: m.iova + m.size - 1n });
  const path = (m: Mapping): string[] => ['mappings', rangeText(at(m))];
  while (i < ma.length || j < mb.length) {
    const a = ma[i];
    const b = mb[j];
    if (a !== undefined && b !== undefined && a.iova === b.iova) {
      const va = mappingView(a);
      const vb = mappingView(b);
      if (a.size === b.size ? !sameValue(va, vb) : true) {
        push(
          sink,
          a.size === b.size ? path(a) : ['mappings', `iova ${hex(a.iova)}`],
          va,
          vb,
          a.size >= b.size ? at(a) : at(b),
        );
      }
      i++;
      j++;
    } else if (a !== undefined && (b === undefined || a.iova < b.iova)) {
      push(sink, path(a), mappingView(a), undefined, at(a));
      i++;
    } else if (b !== undefined) {
      push(sink, path(b), undefined, mappingView(b), at(b));
      j++;
    }
  }
}

/** A small keyed map inside a record (reserved owners, access items): entries matched by key. */
function diffKeyed(sink: Sink, field: string, ma: object | undefined, mb: object | undefined): void {
  if (ma === mb) return;
  const ra = (ma ?? {}) as Rec;
  const rb = (mb ?? {}) as Rec;
  for (const k of sortedKeys(ra, rb)) {
    if (!sameValue(ra[k], rb[k])) push(sink, [field, k], ra[k], rb[k]);
  }
}

// ---- records ------------------------------------------------------------------------------------------------

type NestedDiff = (sink: Sink, field: string, a: unknown, b: unknown) => void;

const xaOf =
  (unit: DiffUnit): NestedDiff =>
  (sink, field, a, b) =>
    diffXarray(sink, unit, field, a as Xarray | undefined, b as Xarray | undefined);
const itreeOf =
  (unit: DiffUnit): NestedDiff =>
  (sink, field, a, b) =>
    diffItree(sink, unit, field, a as IntervalTree<TreeKey> | undefined, b as IntervalTree<TreeKey> | undefined);
const keyed: NestedDiff = (sink, field, a, b) =>
  diffKeyed(sink, field, a as object | undefined, b as object | undefined);

interface TableSpec {
  table: DiffTable;
  rows: (s: State) => Record<string, object>;
  /** Fields holding structures, compared structurally and left out of a whole-record value. */
  nested: Record<string, NestedDiff>;
}

const TABLES: readonly TableSpec[] = [
  { table: 'processes', rows: (s) => s.processes, nested: {} },
  {
    table: 'mms',
    rows: (s) => s.mms,
    nested: {
      pt: xaOf('vpn'),
      vmas: (sink, field, a, b) =>
        diffRangeMap(sink, 'vpn', [field], a as RangeMap<Vma> | undefined, b as RangeMap<Vma> | undefined),
    },
  },
  { table: 'users', rows: (s) => s.users, nested: {} },
  { table: 'heap', rows: (s) => s.heap, nested: {} },
  { table: 'ctxs', rows: (s) => s.ctxs, nested: {} },
  {
    table: 'ioases',
    rows: (s) => s.ioases,
    nested: { areas: itreeOf('iova'), allowed: itreeOf('iova'), reserved: itreeOf('iova'), reservedOwners: keyed },
  },
  {
    table: 'pages',
    rows: (s) => s.pages,
    nested: { xa: xaOf('index'), accessTree: itreeOf('index'), domainsTree: itreeOf('index') },
  },
  { table: 'areas', rows: (s) => s.areas, nested: {} },
  { table: 'pagesAccesses', rows: (s) => s.pagesAccesses, nested: {} },
  { table: 'accesses', rows: (s) => s.accesses, nested: { items: keyed } },
  {
    table: 'domains',
    rows: (s) => s.domains,
    nested: {
      mappings: (sink, _field, a, b) =>
        diffMappings(sink, a as MappingTable | undefined, b as MappingTable | undefined),
    },
  },
  { table: 'files', rows: (s) => s.files, nested: { pt: xaOf('index') } },
  { table: 'openFiles', rows: (s) => s.openFiles, nested: {} },
  { table: 'fds', rows: (s) => s.fds, nested: {} },
];

/** The record's plain fields (what a whole added or removed record shows). */
function scalarView(rec: object, nested: Record<string, NestedDiff>): Rec {
  const view: Rec = {};
  for (const [field, value] of Object.entries(rec)) if (!(field in nested)) view[field] = value;
  return view;
}

function diffRecord(sink: Sink, ra: Rec | undefined, rb: Rec | undefined, nested: Record<string, NestedDiff>): void {
  if (ra === rb) return;
  if (ra === undefined || rb === undefined) {
    push(
      sink,
      [],
      ra === undefined ? undefined : scalarView(ra, nested),
      rb === undefined ? undefined : scalarView(rb, nested),
    );
  }
  for (const field of sortedKeys(ra, rb)) {
    const va = ra?.[field];
    const vb = rb?.[field];
    const structural = nested[field];
    if (structural !== undefined) structural(sink, field, va, vb);
    else if (ra !== undefined && rb !== undefined && !sameValue(va, vb)) push(sink, [field], va, vb);
  }
}

function diffTable(out: Difference[], spec: TableSpec, a: State, b: State): void {
  const ta = spec.rows(a);
  const tb = spec.rows(b);
  if (ta === tb) return;
  for (const key of sortedKeys(ta, tb)) {
    diffRecord({ out, table: spec.table, key }, ta[key] as Rec | undefined, tb[key] as Rec | undefined, spec.nested);
  }
}

function diffFields(out: Difference[], table: DiffTable, a: Rec, b: Rec): void {
  if (a === b) return;
  const sink: Sink = { out, table, key: null };
  for (const field of sortedKeys(a, b)) if (!sameValue(a[field], b[field])) push(sink, [field], a[field], b[field]);
}

function diffPageData(out: Difference[], a: Record<number, string>, b: Record<number, string>): void {
  if (a === b) return;
  const sink: Sink = { out, table: 'pageData', key: null };
  for (const key of sortedKeys(a, b)) {
    const pfn = Number(key);
    const va = a[pfn];
    const vb = b[pfn];
    if (va !== vb) push(sink, [`pfn ${hex(pfn)}`], va, vb, { unit: 'pfn', first: pfn, last: pfn });
  }
}

/**
 * Everything that differs between two states, table by table, in DIFF_TABLES order.
 *
 * @example diffStates(stateAt(src, 100), stateAt(src, 200)).differences
 */
export function diffStates(a: State, b: State): StateDiff {
  const out: Difference[] = [];
  const result = (): StateDiff => ({ digestA: digestHex(a.digest), digestB: digestHex(b.digest), differences: out });
  if (a === b) return result();
  diffFields(out, 'config', a.config as unknown as Rec, b.config as unknown as Rec);
  diffFields(out, 'counts', a.counts, b.counts);
  diffFields(
    out,
    'cursors',
    { nextId: a.nextId, nextPfn: a.nextPfn, opsDone: a.opsDone },
    { nextId: b.nextId, nextPfn: b.nextPfn, opsDone: b.opsDone },
  );
  if (!sameValue(a.fault, b.fault)) push({ out, table: 'fault', key: null }, [], a.fault, b.fault);
  const byTable = new Map(TABLES.map((t) => [t.table, t]));
  for (const table of DIFF_TABLES) {
    if (table === 'frames') {
      diffRangeMap<Frame>({ out, table: 'frames', key: null }, 'pfn', [], a.frames, b.frames);
    } else if (table === 'pageData') {
      diffPageData(out, a.pageData, b.pageData);
    } else {
      const spec = byTable.get(table);
      if (spec !== undefined) diffTable(out, spec, a, b);
    }
  }
  return result();
}

// ---- rendering ------------------------------------------------------------------------------------------------

/** The field a value belongs to, for hex/decimal choice: the last path element that is a name. */
function fieldOf(d: Difference): string {
  for (let i = d.path.length - 1; i >= 0; i--) {
    const p = d.path[i] as string;
    if (/^[A-Za-z_]+$/.test(p)) return p;
  }
  return '';
}

/** A PFN that starts a run of `count` pages: `pfn 0x40000..0x401ff`. */
function pfnRun(pfn: unknown, count: number): string {
  if (typeof pfn !== 'number') return formatValue(pfn);
  return count === 1 ? `pfn ${hex(pfn)}` : `pfn ${hex(pfn)}..${hex(pfn + count - 1)}`;
}

function bytesDiffer(a: string | undefined, b: string | undefined): string {
  const x = a ?? '';
  const y = b ?? '';
  const n = Math.max(x.length, y.length);
  let first = -1;
  let last = -1;
  for (let i = 0; i < n; i += 2) {
    if (x.slice(i, i + 2) !== y.slice(i, i + 2)) {
      if (first < 0) first = i / 2;
      last = i / 2;
    }
  }
  if (a === undefined) return 'written (was zeros)';
  if (b === undefined) return 'dropped (reads zeros)';
  return first === last ? `byte ${hex(first)} differs` : `bytes ${hex(first)}..${hex(last)} differ`;
}

/** Where a difference is, as a person reads it: `pages 7 last_npinned`, `violations (count)` (kernel-names.ts). */
export function differencePlace(d: Difference): string {
  return kernelPlace(d.table, d.key, d.path);
}

/** One line for a difference: `pages 7 npinned: 512 -> 511`, `frames pfn 0x40200..0x403ff pins: 1 -> 0`. */
export function renderDifference(d: Difference): string {
  const where = differencePlace(d);
  if (d.table === 'pageData') return `${where}: ${bytesDiffer(d.a as string | undefined, d.b as string | undefined)}`;
  const field = fieldOf(d);
  if ((field === 'xa' || field === 'pt') && d.at !== null) {
    const count = Number(d.at.last) - Number(d.at.first) + 1;
    return `${where}: ${pfnRun(d.a, count)} -> ${pfnRun(d.b, count)}`;
  }
  return `${where}: ${formatValue(d.a, field, d.table)} -> ${formatValue(d.b, field, d.table)}`;
}

/** The diff as readable lines, one per difference (none when the states are equal). */
export function renderDiff(diff: StateDiff): string[] {
  return diff.differences.map(renderDifference);
}
