// SPDX-License-Identifier: GPL-2.0-only
/**
 * The replayer: runs a parsed trace through the kernel model on a variant, op by op.
 *
 * Operation numbering: op 0 is the run's setup (RunConfigured), ops 1..N are the trace's ops in order,
 * op N+1 is the teardown that closing the iommufd file would do (every access destroyed, every IOAS
 * unmapped, every domain detached), followed by the leak checks. After every op the global invariants are
 * checked; violations found there belong to that op.
 *
 * Deterministic: the same trace, variant and fault plan give the same events, byte for byte.
 */
import type { Event } from '../events/events.js';
import type { Expectation, TraceOp } from '../events/trace.js';
import type { ParsedTrace } from './parse.js';
import { Emitter, EventBudgetExhausted } from '../state/emit.js';
import type { EventSink } from '../state/emit.js';
import { initialState } from '../state/state.js';
import type { State } from '../state/state.js';
import { digestHex } from '../lib/digest.js';
import { Sim } from '../machine/sim.js';
import { errnoName } from '../machine/errno.js';
import { isMerged } from '../kernel/variants.js';
import { checkInvariants, checkTeardown } from '../kernel/invariants.js';
import { dispatch, implicitCaller } from './dispatch.js';
import { closeEverything } from './teardown.js';
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
  /** The op running (1..N for the trace's ops, 0 setup, N+1 teardown) and how many ops there are. */
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

export interface ReplayResult {
  variant: string;
  fixes: string[];
  ops: OpRecord[];
  violations: Finding[];
  warns: Finding[];
  mismatches: Mismatch[];
  events: number;
  digest: string;
  /** True when a fail-nth plan (run-wide or a `fault` op) made a fault point fail. */
  faultFired: boolean;
  state: State;
}

/** Collects findings as events pass, then forwards them. */
class FindingSink implements EventSink {
  readonly violations: Finding[] = [];
  readonly warns: Finding[] = [];
  faultFired = false;
  line = 0;
  constructor(private readonly next: EventSink | undefined) {}
  accept(event: Event, seq: number, op: number): void {
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

function compareExpectation(
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

/** Replay a parsed trace; never throws for kernel-level outcomes (those are findings). */
export function replay(trace: ParsedTrace, options: ReplayOptions): ReplayResult {
  const findings = new FindingSink(options.sink);
  const state = initialState();
  const emitter = new Emitter(state, findings);
  const maxEvents = options.maxEvents ?? DEFAULT_MAX_EVENTS;
  emitter.maxEvents = maxEvents;
  const opCount = trace.entries.length + 2;
  let current = { index: 0, line: 0, name: 'setup', op: null as TraceOp | null, firstSeq: 1 };
  const onProgress = options.onProgress;
  if (onProgress !== undefined) {
    emitter.onTick = () =>
      onProgress({
        op: current.index,
        ops: opCount,
        line: current.line,
        name: current.name,
        opEvents: emitter.seq - current.firstSeq + 1,
        events: emitter.seq,
      });
  }
  const fixes = new Set(options.fixes);
  const sim = new Sim(emitter, fixes, isMerged(fixes));
  sim.runFailNth = options.failNth ?? null;
  const ops: OpRecord[] = [];
  const mismatches: Mismatch[] = [];

  const runOp = (
    index: number,
    line: number,
    name: string,
    body: () => { errno: string | null; outputs: Record<string, unknown> },
    op: TraceOp | null = null,
  ): void => {
    emitter.op = index;
    findings.line = line;
    const firstSeq = emitter.seq + 1;
    current = { index, line, name, op, firstSeq };
    sim.faultPointsReached = 0;
    sim.emit({ type: 'OpStarted', v: 1, op: index, line, name, caller: sim.current.pid });
    const armed = state.fault !== null && name !== 'fault';
    const { errno, outputs } = body();
    checkInvariants(sim);
    if (armed)
      sim.emit({ type: 'FaultDisarmed', v: 1, fired: sim.faultPointsReached >= (state.fault?.nth ?? Infinity) });
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
    ops.push(record);
    options.onOp?.(record, state);
  };

  const h = trace.header;
  try {
    runOp(0, 0, 'setup', () => {
      sim.emit({
        type: 'RunConfigured',
        v: 1,
        pageSize: h.page_size,
        testBuild: h.test_build,
        tempMemoryLimit: Number(h.temp_memory_limit),
        gupZeroOnOverflow: h.gup_zero_on_overflow,
        variant: options.variant,
        fixes: [...options.fixes],
      });
      return { errno: null, outputs: {} };
    });

    trace.entries.forEach((entry, i) => {
      const op: TraceOp = entry.op;
      sim.current = implicitCaller(state, op);
      runOp(
        i + 1,
        entry.line,
        op.op,
        () => {
          const outcome = dispatch(sim, op);
          const errno = errnoName(outcome.rc);
          if (op.expect) mismatches.push(...compareExpectation(op.expect, errno, outcome.outputs, entry.line, i + 1));
          for (const f of outcome.checkFailures ?? []) {
            mismatches.push({
              line: entry.line,
              op: i + 1,
              field: `${op.op} ${f.what} @${hex(f.at)}`,
              expected: f.expected,
              actual: f.actual,
              ...(f.more !== undefined ? { more: f.more } : {}),
            });
          }
          return { errno, outputs: outcome.outputs };
        },
        op,
      );
    });

    const lastLine = trace.entries.length ? (trace.entries[trace.entries.length - 1]?.line ?? 0) + 1 : 1;
    runOp(trace.entries.length + 1, lastLine, 'teardown', () => {
      closeEverything(sim);
      checkTeardown(sim);
      return { errno: null, outputs: {} };
    });
  } catch (error) {
    if (!(error instanceof EventBudgetExhausted)) throw error;
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

  return {
    variant: options.variant,
    fixes: [...options.fixes],
    ops,
    violations: findings.violations,
    warns: findings.warns,
    mismatches,
    events: emitter.seq,
    digest: digestHex(state.digest),
    faultFired: findings.faultFired,
    state,
  };
}
