// SPDX-License-Identifier: GPL-2.0-only
/**
 * Minimising a failing trace while it keeps failing the same way: the same violation kind (or WARN) in the
 * same function, on the same variant.
 *
 * Passes, repeated until none makes progress (or the replay budget runs out):
 * 0. cut everything after the op where the failure first shows (unless it shows only at teardown);
 * 1. ddmin over ops (Zeller's delta debugging, complements only): drop chunks, halving the chunk size
 *    when no chunk can go, down to single ops;
 * 2. sizes and counts: mapping, map, copy, pin, rw and unmap lengths, huge-page counts, fault `nth`;
 * 3. layouts and options: drop `expect`s, drop explicit `pfns`, 2M pages to 4K, read-only to read-write, sub-page offsets,
 *    generic domains to mock, MM accounting to user, VFIO type1 off, CAP_IPC_LOCK off, memlock
 *    back to the default (or unlimited).
 *
 * Validity: every candidate is checked by the trace parser before it is replayed, and removals are closed
 * over dependencies first, so the parser rarely has anything to refuse: dropping the op that creates an
 * object drops every later op that names it (an `ioas_alloc` takes its maps, domains and accesses along,
 * a `process` its mappings, contexts and calls), and a `fault` goes with the op it arms. A candidate that
 * the model throws on is not a reproducer (unless the failure being kept is that exception).
 *
 * Cost: each candidate is one in-memory replay, cached by its text. ddmin needs O(n log n) replays for
 * typical traces and O(n^2) at worst; `maxTests` bounds the total.
 */
import type { TraceHeader, TraceOp } from '../events/trace.js';
import { KTHREAD } from '../events/trace.js';
import { parseTraceText } from '../replay/parse.js';
import { replay } from '../replay/replayer.js';
import type { Failure, FailureKey } from './dedupe.js';
import { failureOfError, failuresOf } from './dedupe.js';
import { serializeTrace } from './write.js';

const PAGE = 4096n;
const HALF_PAGE = 2048n;
const HUGE_PFNS = 512;

export interface ShrinkOptions {
  variant: string;
  fixes: readonly string[];
  /** The failure to keep. */
  target: FailureKey;
  /** The most replays to run (default 3000); the best trace so far is returned when they run out. */
  maxTests?: number;
  /** Checked between replays: true stops shrinking (a time budget); the best trace so far is returned. */
  shouldStop?: () => boolean;
}

export interface ShrinkResult {
  header: TraceHeader;
  ops: TraceOp[];
  /** The kept failure as the shrunk trace shows it. */
  failure: Failure;
  /** Op counts before and after. */
  before: number;
  after: number;
  /** Replays run (cached candidates not counted). */
  tests: number;
  /** True when the budget ran out before the passes reached a fixed point. */
  exhausted: boolean;
}

/** Replay a trace (in memory) and return its failure matching `target`, or null. */
export function reproduces(
  header: TraceHeader,
  ops: readonly TraceOp[],
  options: Pick<ShrinkOptions, 'variant' | 'fixes' | 'target'>,
): Failure | null {
  let parsed;
  try {
    parsed = parseTraceText(serializeTrace({ header, ops }));
  } catch {
    return null;
  }
  return failureIn(parsed, options);
}

function failureIn(
  parsed: ReturnType<typeof parseTraceText>,
  options: Pick<ShrinkOptions, 'variant' | 'fixes' | 'target'>,
): Failure | null {
  const { kind, fn } = options.target;
  let failures: Failure[];
  try {
    failures = failuresOf(replay(parsed, { variant: options.variant, fixes: options.fixes }));
  } catch (error) {
    failures = [failureOfError(error)];
  }
  return failures.find((f) => f.kind === kind && f.fn === fn) ?? null;
}

// ---- dependencies ----------------------------------------------------------------------------------------

type Namespace = 'process' | 'ctx' | 'ioas' | 'domain' | 'access';

interface Refs {
  uses: [Namespace, string][];
  creates: [Namespace, string][];
}

/** The objects an op names: the ones it needs, and the ones it creates. */
function refsOf(op: TraceOp): Refs {
  const uses: [Namespace, string][] = [];
  const creates: [Namespace, string][] = [];
  const f = op as unknown as Record<string, unknown>;
  const str = (k: string): string | null => (typeof f[k] === 'string' ? f[k] : null);
  const pid = str('pid');
  if (pid !== null && pid !== KTHREAD) (op.op === 'process' ? creates : uses).push(['process', pid]);
  const ctx = str('ctx');
  if (ctx !== null) (op.op === 'open' ? creates : uses).push(['ctx', ctx]);
  const ioas = str('ioas');
  if (ioas !== null) (op.op === 'ioas_alloc' ? creates : uses).push(['ioas', ioas]);
  for (const k of ['src', 'dst']) {
    const name = str(k);
    if (name !== null) uses.push(['ioas', name]);
  }
  const domain = str('domain');
  if (domain !== null) (op.op === 'domain_attach' ? creates : uses).push(['domain', domain]);
  const access = str('access');
  if (access !== null) (op.op === 'access_create' ? creates : uses).push(['access', access]);
  return { uses, creates };
}

/**
 * `ops` without the ops at the indexes in `remove`, and without every op that depended on them: ops naming
 * an object whose creation went, and a `fault` whose next op went.
 */
export function withoutOps(ops: readonly TraceOp[], remove: ReadonlySet<number>): TraceOp[] {
  const keep = ops.map((_, i) => !remove.has(i));
  const dead = new Set<string>();
  const id = (ns: Namespace, name: string): string => `${ns}\u0000${name}`;
  ops.forEach((op, i) => {
    const { uses, creates } = refsOf(op);
    if (!keep[i] || uses.some(([ns, name]) => dead.has(id(ns, name)))) {
      keep[i] = false;
      for (const [ns, name] of creates) dead.add(id(ns, name));
    } else {
      for (const [ns, name] of creates) dead.delete(id(ns, name));
    }
  });
  // A fault arms the op right after it; without that op it would arm another one.
  for (let i = ops.length - 1; i >= 0; i--) {
    if (ops[i]?.op === 'fault' && keep[i] && (i + 1 >= ops.length || !keep[i + 1])) keep[i] = false;
  }
  return ops.filter((_, i) => keep[i]);
}

// ---- candidate edits -------------------------------------------------------------------------------------

/** Smaller values than `x`, smallest first: each of `min`, x / 2 and x - step, rounded to `step`. */
function smaller(x: bigint, step: bigint, min: bigint): bigint[] {
  const round = (v: bigint): bigint => (v / step) * step;
  const out: bigint[] = [];
  for (const v of [min, round(x / 2n), x - step]) {
    if (v >= min && v < x && v > 0n && !out.includes(v)) out.push(v);
  }
  return out;
}

/** The first `pages` pages of a PFN layout. */
function truncateRuns(runs: readonly [number, number][], pages: number): [number, number][] {
  const out: [number, number][] = [];
  let left = pages;
  for (const [pfn, count] of runs) {
    if (left <= 0) break;
    const n = Math.min(count, left);
    out.push([pfn, n]);
    left -= n;
  }
  return out;
}

/** Smaller sizes and counts for one op, most aggressive first. */
function sizeEdits(op: TraceOp): TraceOp[] {
  switch (op.op) {
    case 'mmap': {
      const unit = op.huge === '2M' ? BigInt(HUGE_PFNS) * PAGE : op.huge === '1G' ? 1n << 30n : PAGE;
      const units = (op.length + unit - 1n) / unit;
      return smaller(units, 1n, 1n).map((n) => {
        const length = n * unit;
        const pfns = op.pfns === null ? null : truncateRuns(op.pfns, Number(length / PAGE));
        return { ...op, length, pfns };
      });
    }
    case 'ioas_map':
    case 'ioas_copy':
    case 'access_pin':
    case 'vfio_unmap':
    case 'check_map':
    case 'check_refs': {
      const step = op.length % PAGE === 0n ? PAGE : HALF_PAGE;
      return smaller(op.length, step, step).map((length) => ({ ...op, length }));
    }
    case 'ioas_unmap':
      if (op.all) return [];
      return smaller(op.length, PAGE, PAGE).map((length) => ({ ...op, length }));
    case 'access_rw':
      return smaller(op.length, 1n, 1n).map((length) => ({
        ...op,
        length,
        data: op.data === null ? null : op.data.slice(0, Number(length) * 2),
      }));
    case 'write':
      return op.data.length > 2 ? [{ ...op, data: op.data.slice(0, 2) }] : [];
    case 'fault':
      return smaller(BigInt(op.nth), 1n, 1n).map((nth) => ({ ...op, nth: Number(nth) }));
    default:
      return [];
  }
}

/** Simpler layouts and options for one op; an `expect` goes first (a shrunk trace would not meet it). */
function layoutEdits(op: TraceOp): TraceOp[] {
  if (op.expect !== undefined) {
    const { expect: _dropped, ...rest } = op;
    return [rest];
  }
  switch (op.op) {
    case 'mmap': {
      const out: TraceOp[] = [];
      if (op.pfns !== null) out.push({ ...op, pfns: null });
      if (op.huge !== '4K') out.push({ ...op, huge: '4K' });
      if (op.prot !== 'rw') out.push({ ...op, prot: 'rw' });
      if (op.shared) out.push({ ...op, shared: false });
      return out;
    }
    case 'process': {
      const out: TraceOp[] = [];
      if (op.cap_ipc_lock) out.push({ ...op, cap_ipc_lock: false });
      // Toward the default only (from unlimited too), so that no two edits undo each other.
      if (op.memlock !== 65536n) out.push({ ...op, memlock: 65536n });
      if (op.memlock !== 65536n && op.memlock !== 'unlimited') out.push({ ...op, memlock: 'unlimited' });
      if (op.uid !== 1000) out.push({ ...op, uid: 1000 });
      return out;
    }
    case 'open': {
      const out: TraceOp[] = [];
      if (op.account !== 'user') out.push({ ...op, account: 'user' });
      if (op.vfio_type1) out.push({ ...op, vfio_type1: false });
      return out;
    }
    case 'ioas_map': {
      const out: TraceOp[] = [];
      const offset = op.uptr % PAGE;
      if (offset !== 0n) {
        const iova = op.iova === null ? null : op.iova >= offset ? op.iova - offset : op.iova;
        out.push({ ...op, uptr: op.uptr - offset, length: op.length + offset, iova });
      }
      if (!op.read || !op.write) out.push({ ...op, read: true, write: true });
      return out;
    }
    case 'ioas_copy':
      return !op.read || !op.write ? [{ ...op, read: true, write: true }] : [];
    case 'domain_attach': {
      const out: TraceOp[] = [];
      if (op.kind !== 'mock') out.push({ ...op, kind: 'mock', pgsizes: null });
      if (op.pgsizes !== null) out.push({ ...op, pgsizes: null });
      if (op.aperture !== null) out.push({ ...op, aperture: null });
      return out;
    }
    case 'access_create':
      return op.needs_pin_pages ? [] : [{ ...op, needs_pin_pages: true }];
    case 'access_pin':
      return op.write ? [] : [{ ...op, write: true }];
    case 'access_rw':
      return op.kthread === (op.pid === KTHREAD) ? [] : [{ ...op, kthread: op.pid === KTHREAD }];
    default:
      return [];
  }
}

// ---- the shrinker ----------------------------------------------------------------------------------------

class Budget extends Error {}

class Shrinker {
  tests = 0;
  private lookups = 0;
  private readonly cache = new Map<string, Failure | null>();

  constructor(
    private readonly header: TraceHeader,
    private readonly options: ShrinkOptions,
    private readonly maxTests: number,
  ) {}

  /**
   * The kept failure if `ops` is a valid trace that shows it; throws Budget when the budget is spent
   * (`first`: the input trace itself, which is replayed whatever the budget).
   */
  check(ops: readonly TraceOp[], first = false): Failure | null {
    // Cached answers cost no replay, but are bounded too: an edit that undid another would loop forever.
    if (++this.lookups > this.maxTests * 10 && !first) throw new Budget();
    const text = serializeTrace({ header: this.header, ops });
    const cached = this.cache.get(text);
    if (cached !== undefined) return cached;
    if (!first && (this.tests >= this.maxTests || this.options.shouldStop?.() === true)) throw new Budget();
    let result: Failure | null = null;
    let parsed: ReturnType<typeof parseTraceText> | null = null;
    try {
      parsed = parseTraceText(text);
    } catch {
      parsed = null;
    }
    if (parsed !== null) {
      this.tests += 1;
      result = failureIn(parsed, this.options);
    }
    this.cache.set(text, result);
    return result;
  }

  /** The cached answer for `ops` (no replay, no budget). */
  cached(ops: readonly TraceOp[]): Failure | null {
    return this.cache.get(serializeTrace({ header: this.header, ops })) ?? null;
  }

  /** Pass 0: nothing after the op where the failure first shows matters (teardown aside). */
  cutAfter(ops: TraceOp[], failure: Failure): TraceOp[] {
    if (failure.op < 1 || failure.op >= ops.length) return ops;
    const rest = new Set<number>();
    for (let i = failure.op; i < ops.length; i++) rest.add(i);
    const cand = withoutOps(ops, rest);
    return this.check(cand) !== null ? cand : ops;
  }

  /** Pass 1: ddmin over ops (complements), chunk sizes halving down to one op. */
  ddmin(ops: TraceOp[]): TraceOp[] {
    let cur = ops;
    let n = 2;
    while (cur.length >= 1) {
      const chunk = Math.max(1, Math.ceil(cur.length / n));
      let reduced = false;
      // Later chunks first: teardown-like tails are the cheapest to drop and shorten every later replay.
      for (let end = cur.length; end > 0; end -= chunk) {
        const remove = new Set<number>();
        for (let i = Math.max(0, end - chunk); i < end; i++) remove.add(i);
        const cand = withoutOps(cur, remove);
        if (cand.length === cur.length) continue;
        if (this.check(cand) !== null) {
          cur = cand;
          n = Math.max(n - 1, 2);
          reduced = true;
          break;
        }
      }
      if (!reduced) {
        if (chunk === 1) break;
        n = Math.min(cur.length, n * 2);
      }
    }
    return cur;
  }

  /** Passes 2 and 3: for each op, take the first edit that keeps the failure, until none does. */
  edit(ops: TraceOp[], edits: (op: TraceOp) => TraceOp[]): TraceOp[] {
    const cur = [...ops];
    for (let i = 0; i < cur.length; i++) {
      let progress = true;
      while (progress) {
        progress = false;
        for (const candidate of edits(cur[i] as TraceOp)) {
          const trial = [...cur];
          trial[i] = candidate;
          if (this.check(trial) !== null) {
            cur[i] = candidate;
            progress = true;
            break;
          }
        }
      }
    }
    return cur;
  }
}

/**
 * Shrink `ops` while the replay on the variant keeps showing `options.target`. Returns null when the trace
 * does not show it to begin with.
 */
export function shrinkTrace(header: TraceHeader, ops: readonly TraceOp[], options: ShrinkOptions): ShrinkResult | null {
  const shrinker = new Shrinker(header, options, options.maxTests ?? 3000);
  const first = shrinker.check(ops, true);
  if (first === null) return null;
  let cur = [...ops];
  let exhausted = false;
  try {
    cur = shrinker.cutAfter(cur, first);
    for (;;) {
      const before = serializeTrace({ header, ops: cur });
      cur = shrinker.ddmin(cur);
      cur = shrinker.edit(cur, sizeEdits);
      cur = shrinker.edit(cur, layoutEdits);
      if (serializeTrace({ header, ops: cur }) === before) break;
    }
  } catch (error) {
    if (!(error instanceof Budget)) throw error;
    exhausted = true;
  }
  // Every accepted candidate was checked, so the cache holds its failure.
  const failure = shrinker.cached(cur) ?? first;
  return { header, ops: cur, failure, before: ops.length, after: cur.length, tests: shrinker.tests, exhausted };
}
