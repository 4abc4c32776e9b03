// SPDX-License-Identifier: GPL-2.0-only
/**
 * Run bisect over the store: two runs of one trace (other variants, fix sets or fault plans), aligned by
 * op index, compared op by op on their neutral digests, errnos and results (scan.ts), and at the first op
 * where they differ, the states just after it on both sides, diffed structurally, with the op's events
 * side by side (divergence.ts).
 *
 * Cost, for runs of millions of events: a join of the two runs' op rows inside the database (ops are far fewer
 * than events: every op has at least two), which returns one row per stretch of differing ops; the rows of
 * those stretches only (idx and digests), to tell a kernel-state difference from a neutralised one; the
 * events that set neutralised fields within those stretches (the rare alignment events from the start; the
 * allocations from a state taken just before a stretch, see RunNeutralizer); then per side one snapshot
 * load plus at most the snapshot spacing of events (stateAt), and the divergent op's own events. No pass
 * over the events of either run outside the stretches where they differ.
 *
 * Runs of different traces are refused unless aligned by prefix: then the traces are parsed from the store,
 * and setup plus the ops both traces share from their start are compared (the teardown only when the two
 * traces hold the same ops: it closes whatever each whole trace left open).
 */
import type { Event } from '../events/events.js';
import type { TraceOp } from '../events/trace.js';
import { encodeJson } from '../lib/codec.js';
import { BadInputError, InternalError, NotFoundError } from '../lib/errors.js';
import { parseTraceText } from '../replay/parse.js';
import type { ParsedTrace } from '../replay/parse.js';
import { recordReplay } from '../replay/record.js';
import { decodeEvent } from '../state/snapshot.js';
import { differingStretchesQuery, opPairsQuery, typedEventsQuery } from '../store/index.js';
import type { OpRow, RunRow, Store, StoredEvent, TypedEventRow } from '../store/index.js';
import { stateAt } from '../timetravel/state-at.js';
import { StoreSource } from '../timetravel/store-source.js';
import type { Divergence } from './divergence.js';
import { describeDivergence } from './divergence.js';
import { DERIVED_EVENT_TYPES, DigestNeutralizer, PROVENANCE_EVENT_TYPES, neutralOptions } from './neutral.js';
import type { OpPair, ScanResult } from './scan.js';
import { opDifferences } from './scan.js';
import type { NamedVariant } from '../kernel/variant-spec.js';

export type Align = 'same' | 'prefix';

export interface BisectRunsOptions {
  /** 'same' (default): the runs must replay the same trace. 'prefix': compare the ops the traces share. */
  align?: Align;
  /** Count differences in derived fields (the IOVA alignment) and provenance (heap fn, tag) too; see neutral.ts. */
  strict?: boolean;
}

export interface RunSide {
  run: number;
  tracePath: string;
  traceSha256: string;
  variant: string;
  flags: string[];
  faultPlan: unknown;
  status: string;
  ops: number;
}

export interface BisectReport {
  a: RunSide;
  b: RunSide;
  align: Align;
  strict: boolean;
  /** Ops compared: indexes 0..compared-1. */
  compared: number;
  /** With --align prefix: how many trace ops the two traces share from their start. */
  commonTraceOps: number | null;
  /** The first op after which the runs differ; null when every compared op agrees. */
  divergence: Divergence | null;
  /** Every stretch of differing ops, [first, last] inclusive (digests can re-converge). */
  ranges: [number, number][];
  differingOps: number;
  /** Things the reader must know to trust the answer (incomplete runs, a shorter run). */
  notes: string[];
}

/** Rows read per query where rows must be read one by one. */
const ROW_CHUNK = 8192;

function sideOf(row: RunRow): RunSide {
  return {
    run: row.id,
    tracePath: row.tracePath,
    traceSha256: row.traceSha256,
    variant: row.variant,
    flags: row.flags,
    faultPlan: row.faultPlan,
    status: row.status,
    ops: row.opCount,
  };
}

async function requireRun(store: Store, run: number): Promise<RunRow> {
  const row = await store.run(run);
  if (row === undefined)
    throw new NotFoundError(`no run ${run} in ${store.path} (ioptrace runs lists them)`, 'run', run);
  return row;
}

/** Neutralising events read per query while a stretch is followed. */
const EVENT_CHUNK = 4096;

/**
 * Ops between the last op followed and the start of the next stretch above which the allocations are taken
 * from the state there (a snapshot plus at most its spacing of events) instead of read through the gap.
 */
const RESEED_GAP_OPS = 2048;

/** One run's events of some types from a seq on, EVENT_CHUNK at a time, applied op by op. */
class TypedEventCursor {
  private rows: TypedEventRow[] = [];
  private next = 0;
  private done = false;

  constructor(
    private readonly store: Store,
    private readonly run: number,
    private readonly types: readonly string[],
    private fromSeq: number,
  ) {}

  /**
   * What applyThrough does with the rows already read: true when that was all of it (the next row is of a
   * later op, or the run has no more), false when more rows must be read first. Most ops of a stretch are
   * done here, without a promise per op.
   */
  applyBuffered(op: number, accept: (event: Event) => void): boolean {
    const rows = this.rows;
    let next = this.next;
    while (next < rows.length) {
      const row = rows[next] as TypedEventRow;
      if (row.op > op) break;
      accept(decodeEvent(row.payload));
      next += 1;
    }
    this.next = next;
    return next < rows.length || this.done;
  }

  /** Hand every event of ops up to `op` not handed yet to `accept` (ascending calls only). */
  async applyThrough(op: number, accept: (event: Event) => void): Promise<void> {
    for (;;) {
      if (this.next === this.rows.length) {
        if (this.done) return;
        this.rows = await this.store.query(
          typedEventsQuery(this.run, this.fromSeq, Number.MAX_SAFE_INTEGER, this.types, EVENT_CHUNK),
        );
        this.next = 0;
        const last = this.rows[this.rows.length - 1];
        if (this.rows.length < EVENT_CHUNK || last === undefined) this.done = true;
        else this.fromSeq = last.seq + 1;
        continue;
      }
      const row = this.rows[this.next];
      if (row === undefined || row.op > op) return;
      accept(decodeEvent(row.payload));
      this.next += 1;
    }
  }
}

/**
 * One run's neutraliser, moved forward op by op through the events that set neutralised fields, read as the
 * scan reaches their ops. The alignment events are rare and followed from the run's start (the correction
 * keeps the last alignment of every IOAS the run allocated, so it depends on their whole history). The
 * allocation events are in nearly every op; the correction they make is the live heap's provenance, a
 * function of the state, so a stretch far from the last op followed starts from the state just before it
 * (seedProvenance) and reads only its own ops' events: a bisect costs the differing stretches, not the run.
 */
class RunNeutralizer {
  readonly neutralizer: DigestNeutralizer;
  private readonly alignments: AsyncIterator<StoredEvent> | null;
  private waitingAlignment: { op: number; event: Event } | null = null;
  private alignmentsDone = false;
  private heap: TypedEventCursor | null = null;
  /** The last op whose allocation events are applied (-1: none, the empty heap of a run's start). */
  private heapOp = -1;

  constructor(
    private readonly store: Store,
    private readonly run: number,
    strict: boolean,
  ) {
    this.neutralizer = new DigestNeutralizer(neutralOptions(strict));
    this.alignments = this.neutralizer.followsDerived
      ? store.events(run, { types: DERIVED_EVENT_TYPES })[Symbol.asyncIterator]()
      : null;
    if (this.neutralizer.followsProvenance) this.heap = new TypedEventCursor(store, run, PROVENANCE_EVENT_TYPES, 1);
  }

  /** Get ready for a stretch that starts at op `first` (ascending, after every op asked for so far). */
  async startStretch(first: number): Promise<void> {
    if (this.heap === null || first - 1 - this.heapOp <= RESEED_GAP_OPS) return;
    const before = (await this.store.ops(this.run, first - 1, first - 1))[0];
    if (before === undefined) throw new InternalError(`run ${this.run} has no op ${first - 1}`);
    const state = await stateAt(await StoreSource.open(this.store, this.run), before.lastSeq);
    this.neutralizer.seedProvenance(Object.values(state.heap));
    this.heap = new TypedEventCursor(this.store, this.run, PROVENANCE_EVENT_TYPES, before.lastSeq + 1);
    this.heapOp = first - 1;
  }

  /**
   * at(op) when it needs no read: the neutraliser for the state after `op`, or null when events must be read
   * first (then call at). The scan asks for every op of a stretch; a promise per op cost more than the ops.
   */
  atBuffered(op: number): DigestNeutralizer | null {
    if (this.alignments !== null && !this.alignmentsDone) {
      // Only an alignment already read and of a later op shows that none is due up to `op`.
      if (this.waitingAlignment === null || this.waitingAlignment.op <= op) return null;
    }
    if (this.heap !== null && op > this.heapOp) {
      if (!this.heap.applyBuffered(op, (e) => this.neutralizer.accept(e))) return null;
      this.heapOp = op;
    }
    return this.neutralizer;
  }

  /** Apply the events of ops up to `op` (ascending calls only); returns the neutraliser for the state after `op`. */
  async at(op: number): Promise<DigestNeutralizer> {
    await this.alignmentsThrough(op);
    if (this.heap !== null && op > this.heapOp) {
      await this.heap.applyThrough(op, (e) => this.neutralizer.accept(e));
      this.heapOp = op;
    }
    return this.neutralizer;
  }

  private async alignmentsThrough(op: number): Promise<void> {
    if (this.alignments === null) return;
    for (;;) {
      if (this.waitingAlignment === null) {
        if (this.alignmentsDone) return;
        const next = await this.alignments.next();
        if (next.done === true) {
          this.alignmentsDone = true;
          return;
        }
        this.waitingAlignment = { op: next.value.op, event: decodeEvent(next.value.payload) };
      }
      if (this.waitingAlignment.op > op) return;
      this.neutralizer.accept(this.waitingAlignment.event);
      this.waitingAlignment = null;
    }
  }

  /** Stop reading (the scan ended before the run did). */
  async close(): Promise<void> {
    if (this.alignments !== null && !this.alignmentsDone) await this.alignments.return?.();
    this.alignmentsDone = true;
  }
}

/**
 * Of the ops in [from, to) (a stretch whose stored rows differ), the stretches whose neutral keys differ
 * too: the rows are read (idx, both digests, and whether errno or result differ), ROW_CHUNK at a time, and
 * each digest is neutralised with its run's correction after that op.
 */
async function neutralStretches(
  store: Store,
  runA: number,
  runB: number,
  from: number,
  to: number,
  ra: RunNeutralizer,
  rb: RunNeutralizer,
  onFirst: (idx: number, neutralA: string, neutralB: string) => Promise<void>,
): Promise<[number, number][]> {
  const out: [number, number][] = [];
  for (let at = from; at < to;) {
    const rows = await store.query(opPairsQuery(runA, runB, at, to, ROW_CHUNK));
    for (const r of rows) {
      const ka = ra.atBuffered(r.idx) ?? (await ra.at(r.idx));
      const kb = rb.atBuffered(r.idx) ?? (await rb.at(r.idx));
      if (!r.otherDiffers && ka.sameNeutral(r.digestA, kb, r.digestB)) continue;
      if (out.length === 0) await onFirst(r.idx, ka.neutral(r.digestA), kb.neutral(r.digestB));
      const last = out[out.length - 1];
      if (last !== undefined && last[1] === r.idx - 1) last[1] = r.idx;
      else out.push([r.idx, r.idx]);
    }
    const last = rows[rows.length - 1];
    if (rows.length < ROW_CHUNK || last === undefined) break;
    at = last.idx + 1;
  }
  return out;
}

/** The key of one stored op, with its neutral digest. */
async function storedKey(store: Store, run: number, index: number, neutralDigest: string): Promise<OpRow> {
  const row = (await store.ops(run, index, index))[0];
  if (row === undefined) throw new InternalError(`run ${run} has no op ${index}`);
  // A StoredOp is an OpRow with its run and chain hash; the comparison needs neither.
  const { run: _run, hash: _hash, ...fields } = row;
  return { ...fields, digest: neutralDigest };
}

/**
 * Compare the first `compared` ops of two stored runs on their neutral keys (see scan.ts).
 *
 * The neutral correction of a state is a function of the state, so two ops whose raw digests are equal have
 * equal neutral digests as well: the ops whose neutral keys differ are among those whose stored rows
 * differ. The database finds those stretches alone (one row per stretch); only their rows are read and
 * neutralised, in op order, each run's correction moved forward through its neutralising events.
 */
async function scanStored(
  store: Store,
  runA: number,
  runB: number,
  compared: number,
  strict: boolean,
): Promise<ScanResult> {
  const stretches: [number, number][] = [];
  let first: OpPair | null = null;
  const raw = await store.query(differingStretchesQuery(runA, runB, 0, compared));
  if (raw.length > 0) {
    const ra = new RunNeutralizer(store, runA, strict);
    const rb = new RunNeutralizer(store, runB, strict);
    try {
      for (const [from, last] of raw) {
        await ra.startStretch(from);
        await rb.startStretch(from);
        const found = await neutralStretches(store, runA, runB, from, last + 1, ra, rb, async (idx, na, nb) => {
          if (first !== null) return;
          const a = await storedKey(store, runA, idx, na);
          const b = await storedKey(store, runB, idx, nb);
          first = { index: idx, a, b, differs: opDifferences(a, b) };
        });
        for (const [f, l] of found) {
          const prev = stretches[stretches.length - 1];
          if (prev !== undefined && prev[1] === f - 1) prev[1] = l;
          else stretches.push([f, l]);
        }
      }
    } finally {
      await ra.close();
      await rb.close();
    }
  }
  return {
    compared,
    first,
    ranges: stretches,
    differingOps: stretches.reduce((n, [f, l]) => n + l - f + 1, 0),
  };
}

/** An op as the kernel model sees it: its `expect` only judges the result, so it does not take part. */
function opText(op: TraceOp | undefined): string {
  if (op === undefined) return '';
  const { expect: _expect, ...rest } = op;
  return encodeJson(rest);
}

/**
 * How many leading trace ops two stored traces share (same op and fields; comments, lines, expect aside),
 * and whether that is all of both (then their teardowns align too).
 */
async function commonPrefix(store: Store, a: RunRow, b: RunRow): Promise<{ ops: number; whole: boolean }> {
  const text = async (row: RunRow): Promise<string> => {
    const t = await store.traceText(row.id);
    if (t === undefined) throw new NotFoundError(`run ${row.id} has no stored trace`, 'trace', row.id);
    return t;
  };
  const ta = parseTraceText(await text(a), a.tracePath);
  const tb = parseTraceText(await text(b), b.tracePath);
  if (encodeJson(ta.header) !== encodeJson(tb.header)) return { ops: 0, whole: false };
  const n = Math.min(ta.entries.length, tb.entries.length);
  let k = 0;
  while (k < n && opText(ta.entries[k]?.op) === opText(tb.entries[k]?.op)) k++;
  return { ops: k, whole: k === ta.entries.length && k === tb.entries.length };
}

async function eventsOfOp(store: Store, run: number, op: number): Promise<Event[]> {
  const out: Event[] = [];
  for await (const row of store.events(run, { op })) out.push(decodeEvent(row.payload));
  return out;
}

/**
 * Find where two stored runs stop agreeing and what differs there.
 *
 * @example (await bisectRuns(store, 1, 2)).divergence?.line  // 33 for bad-free.jsonl on v3 and merged
 */
export async function bisectRuns(
  store: Store,
  runA: number,
  runB: number,
  options: BisectRunsOptions = {},
): Promise<BisectReport> {
  const align = options.align ?? 'same';
  const strict = options.strict ?? false;
  const rowA = await requireRun(store, runA);
  const rowB = await requireRun(store, runB);
  const notes: string[] = [];
  let limit = Number.MAX_SAFE_INTEGER;
  let commonTraceOps: number | null = null;
  if (rowA.traceSha256 !== rowB.traceSha256) {
    if (align !== 'prefix') {
      throw new BadInputError(
        `runs ${runA} and ${runB} replay different traces (${rowA.tracePath}, sha256 ${rowA.traceSha256.slice(0, 12)}; ` +
          `${rowB.tracePath}, sha256 ${rowB.traceSha256.slice(0, 12)}): give --align prefix to compare the ops they share`,
      );
    }
    const common = await commonPrefix(store, rowA, rowB);
    commonTraceOps = common.ops;
    // Setup, then the shared trace ops (and the teardown when nothing else differs); a header difference
    // leaves only setup, which then differs.
    limit = common.whole ? common.ops + 2 : common.ops + 1;
    notes.push(
      common.whole
        ? 'different trace files with the same ops: comparing every op'
        : `different traces: comparing setup and the ${commonTraceOps} trace ops they share from the start`,
    );
  }
  for (const row of [rowA, rowB]) {
    if (row.status !== 'complete')
      notes.push(
        `run ${row.id} is ${row.incomplete ? 'incomplete' : row.status}: only its ${row.opCount} stored ops are compared`,
      );
  }
  const compared = Math.min(rowA.opCount, rowB.opCount, limit);
  const scan = await scanStored(store, runA, runB, compared, strict);
  if (scan.first === null && limit === Number.MAX_SAFE_INTEGER && rowA.opCount !== rowB.opCount) {
    notes.push(
      `the runs agree on their first ${scan.compared} ops; run ${rowA.opCount < rowB.opCount ? runA : runB} has no more`,
    );
  }
  let divergence: Divergence | null = null;
  if (scan.first !== null) {
    const pair = scan.first;
    const stateA = await stateAt(await StoreSource.open(store, runA), pair.a.lastSeq);
    const stateB = await stateAt(await StoreSource.open(store, runB), pair.b.lastSeq);
    divergence = describeDivergence(
      pair,
      stateA,
      stateB,
      await eventsOfOp(store, runA, pair.index),
      await eventsOfOp(store, runB, pair.index),
      neutralOptions(strict),
    );
  }
  return {
    a: sideOf(rowA),
    b: sideOf(rowB),
    align,
    strict,
    compared: scan.compared,
    commonTraceOps,
    divergence,
    ranges: scan.ranges,
    differingOps: scan.differingOps,
    notes,
  };
}

export interface VariantRun {
  run: number;
  variant: string;
  fixes: string[];
}

export interface TraceBisectReport extends BisectReport {
  /** The two runs this command recorded, in the order given. */
  recorded: [VariantRun, VariantRun];
}

/**
 * Replay one trace on two variants into the store (recordReplay), then bisect the two runs.
 *
 * @example bisectVariants(store, trace, { tracePath, traceText }, parseVariantSpec('v3'), parseVariantSpec('merged'))
 */
export async function bisectVariants(
  store: Store,
  trace: ParsedTrace,
  source: { tracePath: string; traceText: string },
  a: NamedVariant,
  b: NamedVariant,
  options: Omit<BisectRunsOptions, 'align'> & { failNth?: number | null } = {},
): Promise<TraceBisectReport> {
  const record = async (v: NamedVariant): Promise<VariantRun> => {
    const { run } = await recordReplay(store, trace, {
      ...source,
      variant: v.label,
      fixes: v.fixes,
      failNth: options.failNth ?? null,
    });
    return { run, variant: v.label, fixes: v.fixes };
  };
  const ra = await record(a);
  const rb = await record(b);
  const strict = options.strict ?? false;
  return { ...(await bisectRuns(store, ra.run, rb.run, { strict })), recorded: [ra, rb] };
}
