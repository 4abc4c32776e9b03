// SPDX-License-Identifier: GPL-2.0-only
/**
 * The replayer: runs a parsed trace through the kernel model on a variant, op by op.
 *
 * Operation numbering: op 0 is the run's setup (RunConfigured), ops 1..N are the trace's ops in order,
 * op N+1 is the teardown that closing the iommufd file would do (every access destroyed, every IOAS
 * unmapped, every domain detached), followed by the leak checks. After every op the global invariants are
 * checked; violations found there belong to that op. An op whose task blocks for good (a lock that can never
 * be granted, mmap-lock.ts) ends with OpHung, a 'task_hung' violation and errno 'HUNG'; nothing runs after
 * it, not even the teardown.
 *
 * Deterministic: the same trace, variant and fault plan give the same events, byte for byte.
 */
import type { Event } from '../events/events.js';
import { MAX_EVENT_RUNS } from '../events/events.js';
import type { Expectation, TraceHeader, TraceOp } from '../events/trace.js';
import { lastTraceOpLine, traceOpCount } from './parse.js';
import type { TraceInput } from './parse.js';
import type { OpRow } from '../store/index.js';
import { encodeJson } from '../lib/codec.js';
import { Emitter, EventBudgetExhausted } from '../state/emit.js';
import { pushAll } from '../lib/arrays.js';
import type { EventSink } from '../state/emit.js';
import { initialState } from '../state/state.js';
import type { State } from '../state/state.js';
import { digestHex } from '../lib/digest.js';
import { Sim } from '../machine/sim.js';
import { errnoName } from '../machine/errno.js';
import { isMerged } from '../kernel/variants.js';
import { checkTeardown } from '../kernel/invariants/index.js';
import { CHECK_MODES, DEFAULT_CHECK_MODE, createChecker } from '../kernel/invariants/checker.js';
import type { CheckMode, InvariantChecker } from '../kernel/invariants/checker.js';
import { BadInputError } from '../lib/errors.js';
import { TaskHung } from '../machine/mmap-lock.js';
import type { HungTask } from '../machine/mmap-lock.js';
import { dispatch, implicitCaller } from './dispatch.js';
import { closeEverything, closeEverythingV2 } from './teardown.js';
import { EventBudgetError } from './errors.js';
import { byteSize, hex } from '../lib/format.js';

/**
 * The events one run may emit unless told otherwise (`--max-events`): far above what the shipped and
 * fuzzed traces need (thousands) or a 50,000-op trace (about a million), low enough that an accidental
 * giant op (an mmap of 1 TiB of 4K pages) stops within minutes instead of filling the disk for hours.
 */
export const DEFAULT_MAX_EVENTS = 20_000_000;

/** Where a replay is, reported from inside long ops (every TICK_EVERY events). */
export interface ReplayProgress {
  /** The op running (1..N for the trace's ops, 0 setup, N+1 teardown) and how many ops there are (0: unknown). */
  op: number;
  ops: number;
  line: number;
  name: string;
  /** Events emitted so far by this op, and by the whole run. */
  opEvents: number;
  events: number;
}

export interface ReplayOptions {
  variant: string;
  /** The resolved fix flags (see resolveVariant). */
  fixes: readonly string[];
  /** Fail the Nth fault point of the whole run (the fail-nth sweep). */
  failNth?: number | null;
  /** Where events go after their reducer ran (the store, or memory). */
  sink?: EventSink;
  /** Called after each op with its record and the live state (progress, per-op digests, snapshots). */
  onOp?: (record: OpRecord, state: State) => void;
  /** The most events the run may emit (default DEFAULT_MAX_EVENTS; 0 for no limit). */
  maxEvents?: number;
  /** Called every TICK_EVERY events, so a long single op can show that it is moving. */
  onProgress?: (progress: ReplayProgress) => void;
  /**
   * How the invariants are checked after every op (default: IOPTRACE_CHECK, else 'incremental'): the same
   * findings at the same ops either way; 'differential' runs both checkers and throws CheckerDivergence
   * where they disagree.
   */
  check?: CheckMode;
  /**
   * Keep every op's record in `ReplayResult.ops` (default true). A long run passes false and takes the
   * records from `onOp` as they come, so its memory does not grow with the number of ops; `opCount` counts
   * them either way.
   */
  keepOps?: boolean;
}

/** The check mode IOPTRACE_CHECK asks for, or the default when it is unset or empty. */
export function checkModeFromEnv(env: Record<string, string | undefined> = process.env): CheckMode {
  const value = env['IOPTRACE_CHECK'];
  if (value === undefined || value === '') return DEFAULT_CHECK_MODE;
  if ((CHECK_MODES as readonly string[]).includes(value)) return value as CheckMode;
  throw new BadInputError(`IOPTRACE_CHECK is ${JSON.stringify(value)}; expected one of ${CHECK_MODES.join(', ')}`, {
    field: 'IOPTRACE_CHECK',
  });
}

/** What an op is, for a person: its name, and its length when it has one (`mmap of 1 TiB`). */
function opSummary(op: TraceOp | null, name: string): string {
  const length = op !== null ? (op as unknown as Record<string, unknown>)['length'] : undefined;
  return typeof length === 'bigint' ? `${name} of ${byteSize(length)}` : name;
}

export interface OpRecord {
  index: number;
  line: number;
  op: string;
  errno: string | null;
  outputs: Record<string, unknown>;
  firstSeq: number;
  lastSeq: number;
  digest: string;
}

/** The stored record of a replayed op; `digest` replaces the state digest (bisect's neutral digest). */
export function opRowOf(record: OpRecord, digest: string = record.digest): OpRow {
  return {
    index: record.index,
    line: record.line,
    op: record.op,
    errno: record.errno,
    result: encodeJson(record.outputs),
    firstSeq: record.firstSeq,
    lastSeq: record.lastSeq,
    digest,
  };
}

export interface Finding {
  kind: string;
  fn: string;
  detail: string;
  seq: number;
  op: number;
  line: number;
  objects: Record<string, unknown>;
}

export interface Mismatch {
  line: number;
  op: number;
  field: string;
  expected: unknown;
  actual: unknown;
  /** On the last mismatch listed for a check: how many more pages failed it (not listed). */
  more?: number;
}

/** The op whose task blocked for good, and on what: the run ends with it (no later op, no teardown). */
export interface HungOp extends HungTask {
  op: number;
  line: number;
}

export interface ReplayResult {
  variant: string;
  fixes: string[];
  /** Every op's record, in order; empty when the replay ran with `keepOps: false`. */
  ops: OpRecord[];
  /** How many ops ran (setup and teardown included), whether or not their records were kept. */
  opCount: number;
  violations: Finding[];
  warns: Finding[];
  mismatches: Mismatch[];
  events: number;
  digest: string;
  /** True when a fail-nth plan (run-wide or a `fault` op) made a fault point fail. */
  faultFired: boolean;
  /** Set when an op never returned (OpHung): the trace's later ops and the teardown did not run. */
  hung: HungOp | null;
  state: State;
}

/** Collects findings as events pass, then forwards them. */
class FindingSink implements EventSink {
  readonly violations: Finding[] = [];
  readonly warns: Finding[] = [];
  faultFired = false;
  line = 0;
  constructor(
    private readonly next: EventSink | undefined,
    private readonly checker: InvariantChecker,
  ) {}
  accept(event: Event, seq: number, op: number): void {
    this.checker.observe(event);
    if (event.type === 'ViolationDetected') {
      this.violations.push({
        kind: event.kind,
        fn: event.fn,
        detail: event.detail,
        seq,
        op,
        line: this.line,
        objects: event.objects,
      });
    } else if (event.type === 'Warned') {
      this.warns.push({
        kind: 'warn',
        fn: event.fn,
        detail: event.condition,
        seq,
        op,
        line: this.line,
        objects: event.objects,
      });
    } else if (event.type === 'FaultInjected') {
      this.faultFired = true;
    }
    this.next?.accept(event, seq, op);
  }
}

export function compareExpectation(
  expect: Expectation,
  errno: string | null,
  outputs: Record<string, unknown>,
  line: number,
  op: number,
): Mismatch[] {
  const out: Mismatch[] = [];
  const want = expect.errno === 'ok' ? null : expect.errno;
  if (want !== errno) out.push({ line, op, field: 'errno', expected: want ?? 'ok', actual: errno ?? 'ok' });
  for (const field of ['iova', 'unmapped', 'data'] as const) {
    const wanted = expect[field];
    if (wanted === undefined) continue;
    if (outputs[field] !== wanted) out.push({ line, op, field, expected: wanted, actual: outputs[field] ?? null });
  }
  return out;
}

/**
 * A replay fed one op at a time (`ioptrace run` serves a live program with it): the constructor runs op 0
 * (setup), each `step` one trace op, `finish` the teardown. `replay` below is this fed from a parsed trace,
 * so both give the same events for the same ops.
 */
export class LiveReplay {
  private readonly findings: FindingSink;
  private readonly checker: InvariantChecker;
  private readonly state: State;
  private readonly emitter: Emitter;
  private readonly sim: Sim;
  private readonly ops: OpRecord[] = [];
  private opCount = 0;
  private readonly mismatches: Mismatch[] = [];
  private steps = 0;
  private finished = false;
  private hungOp: HungOp | null = null;
  private readonly maxEvents: number;
  private currentOp = { index: 0, line: 0, name: 'setup', op: null as TraceOp | null, firstSeq: 1 };

  /** `opCount`: how many ops the run will have, setup and teardown included (0 when unknown: a live program). */
  constructor(
    header: TraceHeader,
    private readonly options: ReplayOptions,
    opCount = 0,
  ) {
    this.checker = createChecker(options.check ?? checkModeFromEnv());
    this.findings = new FindingSink(options.sink, this.checker);
    this.state = initialState();
    this.emitter = new Emitter(this.state, this.findings);
    this.maxEvents = options.maxEvents ?? DEFAULT_MAX_EVENTS;
    this.emitter.maxEvents = this.maxEvents;
    const onProgress = options.onProgress;
    if (onProgress !== undefined) {
      const emitter = this.emitter;
      emitter.onTick = () =>
        onProgress({
          op: this.currentOp.index,
          ops: opCount,
          line: this.currentOp.line,
          name: this.currentOp.name,
          opEvents: emitter.seq - this.currentOp.firstSeq + 1,
          events: emitter.seq,
        });
    }
    const fixes = new Set(options.fixes);
    this.sim = new Sim(this.emitter, fixes, isMerged(fixes));
    this.sim.runFailNth = options.failNth ?? null;
    this.sim.fileLifetime = header.version >= 2;
    this.sim.findingsInHex = header.version >= 3;
    this.sim.runsPerEvent = header.version >= 4 ? MAX_EVENT_RUNS : null;
    this.sim.xaRunLists = header.version >= 5;
    this.sim.ioPageTableSets = header.version >= 5;
    this.runOp(0, 0, 'setup', null, () => {
      this.sim.emit({
        type: 'RunConfigured',
        v: 1,
        pageSize: header.page_size,
        testBuild: header.test_build,
        tempMemoryLimit: Number(header.temp_memory_limit),
        gupZeroOnOverflow: header.gup_zero_on_overflow,
        ...(header.gup_unshare_read_pins ? { gupUnshareReadPins: true as const } : {}),
        variant: options.variant,
        fixes: [...options.fixes],
      });
      return { errno: null, outputs: {} };
    });
  }

  /** The live model state (read only: every change goes through an op). */
  get current(): Readonly<State> {
    return this.state;
  }

  /** The fault points the last op reached while a `fault` op armed it (what a fail-nth counter counts off). */
  get lastOpFaultPoints(): number {
    return this.sim.faultPointsReached;
  }

  /** Every finding so far, in order. */
  get violations(): readonly Finding[] {
    return this.findings.violations;
  }

  get warns(): readonly Finding[] {
    return this.findings.warns;
  }

  /** The op that never returned, if one did: no further op can run. */
  get hung(): HungOp | null {
    return this.hungOp;
  }

  /** Run one op (the next of the trace, from line `line`); its record, with the errno and outputs. */
  step(op: TraceOp, line: number): OpRecord {
    if (this.finished) throw new Error('LiveReplay.step after finish');
    if (this.hungOp !== null) throw new Error(`LiveReplay.step after op ${this.hungOp.op} hung`);
    const index = ++this.steps;
    const sim = this.sim;
    sim.current = implicitCaller(this.state, op);
    return this.runOp(index, line, op.op, op, () => {
      const outcome = dispatch(sim, op);
      const errno = errnoName(outcome.rc);
      if (op.expect) pushAll(this.mismatches, compareExpectation(op.expect, errno, outcome.outputs, line, index));
      for (const f of outcome.checkFailures ?? []) {
        this.mismatches.push({
          line,
          op: index,
          field: `${op.op} ${f.what} @${hex(f.at)}`,
          expected: f.expected,
          actual: f.actual,
          ...(f.more !== undefined ? { more: f.more } : {}),
        });
      }
      return { errno, outputs: outcome.outputs };
    });
  }

  /** The teardown (numbered after the last op, at `line`) and the result of the whole run. */
  finish(line: number): ReplayResult {
    if (this.finished) throw new Error('LiveReplay.finish twice');
    // Closing the file would wait on the locks the hung task holds: a hung run has no teardown.
    if (this.hungOp === null) {
      this.runOp(this.steps + 1, line, 'teardown', null, () => {
        if (this.sim.fileLifetime) closeEverythingV2(this.sim);
        else closeEverything(this.sim);
        checkTeardown(this.sim);
        return { errno: null, outputs: {} };
      });
    }
    this.finished = true;
    return {
      variant: this.options.variant,
      fixes: [...this.options.fixes],
      ops: this.ops,
      opCount: this.opCount,
      violations: this.findings.violations,
      warns: this.findings.warns,
      mismatches: this.mismatches,
      events: this.emitter.seq,
      digest: digestHex(this.state.digest),
      faultFired: this.findings.faultFired,
      hung: this.hungOp,
      state: this.state,
    };
  }

  private runOp(
    index: number,
    line: number,
    name: string,
    op: TraceOp | null,
    body: () => { errno: string | null; outputs: Record<string, unknown> },
  ): OpRecord {
    try {
      return this.runOpWithin(index, line, name, op, body);
    } catch (error) {
      if (!(error instanceof EventBudgetExhausted)) throw error;
      const { currentOp: current, emitter, maxEvents } = this;
      const where =
        current.op !== null
          ? `op at line ${current.line} (${opSummary(current.op, current.name)})`
          : `the ${current.name} of the run`;
      throw new EventBudgetError(
        `trace needs more than ${maxEvents} events (budget --max-events ${maxEvents}); ${where} had emitted ` +
          `${emitter.seq - current.firstSeq + 1} of them when the budget ran out. ` +
          'Raise --max-events (0 = no limit) if the trace is meant to be this big.',
        maxEvents,
        current.line,
      );
    }
  }

  private runOpWithin(
    index: number,
    line: number,
    name: string,
    op: TraceOp | null,
    body: () => { errno: string | null; outputs: Record<string, unknown> },
  ): OpRecord {
    const { sim, state, emitter } = this;
    emitter.op = index;
    this.findings.line = line;
    const firstSeq = emitter.seq + 1;
    this.currentOp = { index, line, name, op, firstSeq };
    sim.faultPointsReached = 0;
    sim.emit({ type: 'OpStarted', v: 1, op: index, line, name, caller: sim.current.pid });
    const armed = state.fault !== null && name !== 'fault';
    let errno: string | null;
    let outputs: Record<string, unknown>;
    try {
      ({ errno, outputs } = body());
    } catch (err) {
      if (!(err instanceof TaskHung)) throw err;
      // The task sleeps forever mid-op: no unwind, no invariant check of a half-done op, nothing after it.
      this.hungOp = { ...err.hung, op: index, line };
      sim.emit({ type: 'OpHung', v: 1, op: index, ...err.hung });
      sim.violation('task_hung', err.hung.fn, err.message, {
        task: err.hung.task,
        mm: err.hung.mm,
        lock: err.hung.lock,
        mode: err.hung.mode,
        readers: err.hung.readers,
      });
      errno = 'HUNG';
      outputs = {};
    }
    if (this.hungOp === null) {
      this.checker.check(sim, index);
      if (armed)
        sim.emit({ type: 'FaultDisarmed', v: 1, fired: sim.faultPointsReached >= (state.fault?.nth ?? Infinity) });
    }
    sim.emit({ type: 'OpFinished', v: 1, op: index, errno, result: outputs });
    const record: OpRecord = {
      index,
      line,
      op: name,
      errno,
      outputs,
      firstSeq,
      lastSeq: emitter.seq,
      digest: digestHex(state.digest),
    };
    this.opCount += 1;
    if (this.options.keepOps !== false) this.ops.push(record);
    this.options.onOp?.(record, state);
    return record;
  }
}

/** Replay a parsed trace; never throws for kernel-level outcomes (those are findings). */
export function replay(trace: TraceInput, options: ReplayOptions): ReplayResult {
  const live = new LiveReplay(trace.header, options, traceOpCount(trace) + 2);
  for (const entry of trace.entries) {
    if (live.hung !== null) break;
    live.step(entry.op, entry.line);
  }
  return live.finish(lastLineOf(trace));
}

/**
 * replay, pausing after each op while `between` returns a promise (a store committing the batches the op
 * filled): the replay itself stays synchronous, and a caller that returns undefined pays nothing.
 */
export async function replayPausing(
  trace: TraceInput,
  options: ReplayOptions,
  between: () => Promise<void> | undefined,
): Promise<ReplayResult> {
  const live = new LiveReplay(trace.header, options, traceOpCount(trace) + 2);
  for (const entry of trace.entries) {
    if (live.hung !== null) break;
    live.step(entry.op, entry.line);
    const pause = between();
    if (pause !== undefined) await pause;
  }
  return live.finish(lastLineOf(trace));
}

function lastLineOf(trace: TraceInput): number {
  return traceOpCount(trace) > 0 ? lastTraceOpLine(trace) + 1 : 1;
}
