// SPDX-License-Identifier: GPL-2.0-only
/**
 * The simulated machine's context: what every machine and kernel function receives as its first argument.
 *
 * It gives read access to the live State, the single write path (emit), the variant's fix flags, the
 * calling task, numbered fault points for fail-nth, and WARN / violation reporting. Nothing here is
 * State: the calling task and the fault counter live for one operation only.
 */
import { hex } from '../lib/format.js';
import type { Event, FaultSite, ViolationKind } from '../events/events.js';
import type { Emitter } from '../state/emit.js';
import type { State } from '../state/state.js';

/** The task that issues the current call: a process (its mm) or a kernel thread (no mm). */
export interface Task {
  pid: string | null;
  mm: number | null;
}

export const KTHREAD: Task = { pid: null, mm: null };

export type FindingObjects = Record<string, string | number | bigint | boolean | null>;

/** One mm's rwsem (mmap-lock.ts): the reader count (negative when corrupt) and the writing task, if any. */
export interface MmapLockState {
  readers: number;
  writer: string | null;
}

export class Sim {
  /** The caller of the current operation. */
  current: Task = KTHREAD;
  /** Fault points reached during the current operation (fail-nth counts them). */
  faultPointsReached = 0;
  /** The replay-wide fail-nth plan (`replay --fail-nth N`): the Nth fault point of the whole run fails. */
  runFailNth: number | null = null;
  runFaultPointsReached = 0;
  /**
   * Version 2 traces: contexts and access files live as long as their descriptors (files.ts); version 1
   * keeps a context until the end of the trace. Set once, before the first op.
   */
  fileLifetime = false;
  /**
   * Version 3 traces: finding texts give PFNs in hex, as all output does. Earlier versions keep the decimal
   * PFNs their findings were stored with, so their digests and heads stay what they were. Set once.
   */
  findingsInHex = false;
  /**
   * Version 4 traces: the most PFN runs one allocation or mapping event carries (MAX_EVENT_RUNS; tests set
   * less). null: one FramesAllocated per block and one VmaMapped per mapping, as versions 1 to 3 stored
   * them. Set once.
   */
  runsPerEvent: number | null = null;
  /**
   * Version 5 traces: one pages_to_xarray or clear_xarray call reports its runs in XaStoredRuns /
   * XaErasedRuns lists (of at most runsPerEvent runs) instead of one XaStored / XaErased per run. Set once.
   */
  xaRunLists = false;
  /** Version 5 traces: an iommupt mock domain keeps its interior tables as a digested set. Set once. */
  ioPageTableSets = false;
  /** Each mm's mmap lock (mmap-lock.ts); free between operations unless a task hung on it. */
  readonly mmapLocks = new Map<number, MmapLockState>();
  private idCursor = 0;

  constructor(
    readonly emitter: Emitter,
    readonly fixes: ReadonlySet<string>,
    /** True when every pre-merge fix is on: the [merged] text of the spec that names no flag applies. */
    readonly merged: boolean,
  ) {}

  get state(): State {
    return this.emitter.state;
  }

  get pageSize(): number {
    return this.emitter.state.config.pageSize;
  }

  get testBuild(): boolean {
    return this.emitter.state.config.testBuild;
  }

  /** True when the variant has the named upstream fix. */
  has(flag: string): boolean {
    return this.fixes.has(flag);
  }

  /**
   * A list event being gathered that waits here (a RunList made with `waits`: version 4's IommuMappedRuns):
   * reported before any other event, so that the log keeps the order the single events would have had.
   */
  pendingList: { flush(): void } | null = null;

  emit(event: Event): void {
    this.flushPending();
    this.emitter.emit(event);
  }

  /** Report the list event being gathered, if any (before anything reads the state it will change). */
  flushPending(): void {
    const pending = this.pendingList;
    if (pending === null) return;
    this.pendingList = null;
    pending.flush();
  }

  /** A fresh object id. Ids are unique within a run and deterministic. */
  newId(): number {
    const id = Math.max(this.idCursor, this.state.nextId);
    this.idCursor = id + 1;
    return id;
  }

  /** WARN_ON: report and carry on. Returns true so callers can write `if (cond && sim.warn(...))`. */
  warn(fn: string, condition: string, objects: FindingObjects = {}): true {
    this.emit({ type: 'Warned', v: 1, fn, condition, objects });
    return true;
  }

  /** A WARN that exists only in kernels built with the iommufd selftest option. */
  testWarn(fn: string, condition: string, objects: FindingObjects = {}): boolean {
    if (!this.testBuild) return false;
    return this.warn(fn, condition, objects);
  }

  /** A PFN inside a finding's text, in the form the trace's version stores. */
  pfnText(pfn: number): string {
    return this.findingsInHex ? hex(pfn) : String(pfn);
  }

  /** Something KASAN, kmemleak, a refcount check or an invariant check would catch. */
  violation(kind: ViolationKind, fn: string, detail: string, objects: FindingObjects = {}): void {
    this.emit({ type: 'ViolationDetected', v: 1, kind, fn, detail, objects });
  }

  /**
   * A numbered fault point (failslab, iommufd_should_fail, ...). Returns true when the armed fail-nth plan
   * says this one fails: the nth point reached during the operation (of `site` when the plan names one).
   */
  faultPoint(site: FaultSite, fn: string): boolean {
    if (this.runFailNth !== null) {
      this.runFaultPointsReached += 1;
      if (this.runFaultPointsReached === this.runFailNth) {
        this.emit({ type: 'FaultInjected', v: 1, site, fn, nth: this.runFailNth });
        return true;
      }
    }
    const plan = this.state.fault;
    if (plan === null) return false;
    if (plan.site !== null && plan.site !== site) return false;
    this.faultPointsReached += 1;
    if (this.faultPointsReached !== plan.nth) return false;
    this.emit({ type: 'FaultInjected', v: 1, site, fn, nth: plan.nth });
    return true;
  }

  /** The process that owns an mm, or null once it is gone. */
  processOfMm(mm: number): State['processes'][string] | null {
    const m = this.state.mms[mm];
    return m ? (this.state.processes[m.pid] ?? null) : null;
  }
}

/** How a RunList joins its runs, measures them, and waits for other events. */
export interface RunListOptions<R, K extends number | bigint> {
  /**
   * Grow `last` by `next` when they join (adjacent PFNs); returns whether it did. Without it every run
   * stays its own entry, and a full list is reported as soon as it fills.
   */
  join?: (last: R, next: R) => boolean;
  /** The span [start, end) a run covers, for overlaps(). */
  span?: { start(run: R): K; end(run: R): K };
  /** Wait in sim.pendingList while not empty: any other event reports the list first. */
  waits?: boolean;
}

/**
 * The runs one call has done but not yet reported, gathered into list events of at most `perEvent` runs
 * (version 4's PagesPinnedRuns, PagesUnpinnedRuns, FrameRunsAllocated, IommuMappedRuns and batch_unpin's
 * NpinnedChanged; version 5's XaStoredRuns and XaErasedRuns). A full list is reported once its last run can no longer grow: at once without `join`,
 * else when a run that does not join it comes. Versions 1 to 3 use a list of one run whose `report` emits
 * the single event, so both eras share one walk. The caller reports the rest with flush().
 */
export class RunList<R, K extends number | bigint = number> {
  private runs: R[] = [];
  private lo: K | null = null;
  private hi: K | null = null;

  constructor(
    private readonly sim: Sim,
    private readonly perEvent: number,
    private readonly report: (runs: R[]) => void,
    private readonly options: RunListOptions<R, K> = {},
  ) {}

  /** The runs gathered and not yet reported, oldest first. */
  get pending(): readonly R[] {
    return this.runs;
  }

  add(run: R): void {
    const options = this.options;
    const last = this.runs[this.runs.length - 1];
    if (last !== undefined && options.join !== undefined && options.join(last, run)) {
      this.widen(last);
      return;
    }
    if (this.runs.length >= this.perEvent) this.flush();
    this.runs.push(run);
    this.widen(run);
    if (options.join === undefined && this.runs.length >= this.perEvent) this.flush();
    else if (options.waits === true) this.sim.pendingList = this;
  }

  /** Whether the span of the unreported runs (an over-approximation: their hull) meets [start, end). */
  overlaps(start: K, end: K): boolean {
    return this.lo !== null && this.hi !== null && this.lo < end && start < this.hi;
  }

  flush(): void {
    if (this.sim.pendingList === this) this.sim.pendingList = null;
    const runs = this.runs;
    if (runs.length === 0) return;
    this.runs = [];
    this.lo = null;
    this.hi = null;
    this.report(runs);
  }

  private widen(run: R): void {
    const span = this.options.span;
    if (span === undefined) return;
    const start = span.start(run);
    const end = span.end(run);
    if (this.lo === null || start < this.lo) this.lo = start;
    if (this.hi === null || end > this.hi) this.hi = end;
  }
}
