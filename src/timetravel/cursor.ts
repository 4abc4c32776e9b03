// SPDX-License-Identifier: GPL-2.0-only
/**
 * Interactive stepping through a run by operation. A step forward runs the reducers over all events of the
 * next op inside one immer produceWithPatches; its patches are the change, its inverse patches undo it. A
 * step back applies the inverse patches of that op: no replay. Steps are kept by op, so walking back and
 * forth over the same ops re-applies patches instead of running reducers again.
 *
 * Position: the cursor sits after op `op` (state = after event ops[op].lastSeq); op -1 is before the first
 * op (seq 0, the initial state). The first step back past the ops the cursor has stepped over seeks to the
 * state before that op (nearest snapshot + tail) and produces the op's patches from there once.
 *
 * The cursor's states share structure with each other (immer's structural sharing): treat `state` as
 * read-only, or copy it (stateAt gives a private one).
 */
import { Immer, enablePatches } from 'immer';
import type { Patch } from 'immer';
import type { Event } from '../events/events.js';
import { digestHex } from '../lib/digest.js';
import { BadRangeError, InternalError } from '../lib/errors.js';
import type { StateDiff } from '../state/diff.js';
import { diffStates, renderDiff } from '../state/diff.js';
import { reduce } from '../state/reduce.js';
import type { State } from '../state/state.js';
import type { EventSource, OpSpan } from './source.js';
import { stateAt } from './state-at.js';

enablePatches();

// A private instance: no auto-freeze (a state produced here may later be reduced in place by bulk code),
// and no change to immer's global settings for other users of the library.
const immer = new Immer({ autoFreeze: false });

export interface Step {
  direction: 'forward' | 'back';
  /** The op applied (forward) or undone (back). */
  op: number;
  /** Its events: firstSeq..lastSeq. */
  firstSeq: number;
  lastSeq: number;
  /** What this step did to the state (for a step back, the op's inverse patches). */
  patches: Patch[];
  /** What undoes this step. */
  inversePatches: Patch[];
  /** The state before and after this step, compared. */
  diff: StateDiff;
  /** renderDiff of `diff`: the readable summary. */
  summary: string[];
}

interface OpPatches {
  patches: Patch[];
  inverse: Patch[];
}

function opOutsideRun(op: number, opCount: number): BadRangeError {
  return new BadRangeError(`op ${op} is outside the run (-1..${opCount - 1})`, 'op', op, -1, opCount - 1);
}

/** Steps kept for re-use; past this many, the oldest are dropped (a step back then seeks once more). */
const MAX_KEPT_STEPS = 4096;

async function spanOf(source: EventSource, op: number): Promise<OpSpan> {
  const span = (await source.ops(op, op))[0];
  if (span === undefined) throw opOutsideRun(op, source.opCount());
  return span;
}

export class Cursor {
  private readonly kept = new Map<number, OpPatches>();

  private constructor(
    private readonly source: EventSource,
    private at: number,
    /** The span of op `at`; null before the first op. */
    private atSpan: OpSpan | null,
    private current: State,
  ) {}

  /**
   * A cursor after op `op` (-1: before the first op).
   *
   * @example const c = await Cursor.open(source, 3); (await c.forward())?.summary
   */
  static async open(source: EventSource, op: number): Promise<Cursor> {
    if (!Number.isSafeInteger(op) || op < -1 || op >= source.opCount()) {
      throw opOutsideRun(op, source.opCount());
    }
    const span = op < 0 ? null : await spanOf(source, op);
    return new Cursor(source, op, span, await stateAt(source, span?.lastSeq ?? 0));
  }

  /** The last op applied; -1 before the first. */
  get op(): number {
    return this.at;
  }

  /** The last event applied; 0 before the first. */
  get seq(): number {
    return this.atSpan?.lastSeq ?? 0;
  }

  /** The state at the cursor (shared with the cursor's history: do not mutate). */
  get state(): State {
    return this.current;
  }

  /** Apply the next op; null at the end of the run. */
  async forward(): Promise<Step | null> {
    const op = this.at + 1;
    if (op >= this.source.opCount()) return null;
    const span = await spanOf(this.source, op);
    const before = this.current;
    let kept = this.kept.get(op);
    let after: State;
    if (kept !== undefined) {
      after = immer.applyPatches(before, kept.patches);
    } else {
      const events = await this.eventsOf(span);
      const [next, patches, inverse] = immer.produceWithPatches(before, (draft) => {
        for (const event of events) reduce(draft, event);
      });
      after = next;
      kept = { patches, inverse };
      this.keep(op, kept);
    }
    this.checkDigest(after, span);
    this.current = after;
    this.at = op;
    this.atSpan = span;
    return this.step('forward', span, before, after, kept.patches, kept.inverse);
  }

  /** Undo the current op by its inverse patches; null before the first op. */
  async back(): Promise<Step | null> {
    const op = this.at;
    const span = this.atSpan;
    if (op < 0 || span === null) return null;
    const before = this.current;
    let kept = this.kept.get(op);
    let after: State;
    if (kept !== undefined) {
      after = immer.applyPatches(before, kept.inverse);
    } else {
      // Stepping back past the cursor's history: produce this op once from the state before it.
      after = await stateAt(this.source, span.firstSeq - 1);
      const events = await this.eventsOf(span);
      const [, patches, inverse] = immer.produceWithPatches(after, (draft) => {
        for (const event of events) reduce(draft, event);
      });
      kept = { patches, inverse };
      this.keep(op, kept);
    }
    this.current = after;
    this.at = op - 1;
    this.atSpan = op - 1 < 0 ? null : await spanOf(this.source, op - 1);
    return this.step('back', span, before, after, kept.inverse, kept.patches);
  }

  /** Move to after op `op` (-1: before the first) by a seek; history is kept. */
  async seek(op: number): Promise<void> {
    if (!Number.isSafeInteger(op) || op < -1 || op >= this.source.opCount()) {
      throw opOutsideRun(op, this.source.opCount());
    }
    const span = op < 0 ? null : await spanOf(this.source, op);
    this.current = await stateAt(this.source, span?.lastSeq ?? 0);
    this.at = op;
    this.atSpan = span;
  }

  /**
   * The events of one op, gathered before immer's recipe runs (the recipe is synchronous): one op's
   * events, never the run's.
   */
  private async eventsOf(span: OpSpan): Promise<Event[]> {
    const events: Event[] = [];
    for await (const { event } of this.source.events(span.firstSeq, span.lastSeq)) events.push(event);
    return events;
  }

  private keep(op: number, patches: OpPatches): void {
    if (this.kept.size >= MAX_KEPT_STEPS) {
      const oldest = this.kept.keys().next();
      if (oldest.done !== true) this.kept.delete(oldest.value);
    }
    this.kept.set(op, patches);
  }

  private checkDigest(state: State, span: OpSpan): void {
    if (span.digest === null) return;
    const digest = digestHex(state.digest);
    if (digest !== span.digest) {
      throw new InternalError(`op ${span.index}: stepping gives digest ${digest}, the run recorded ${span.digest}`);
    }
  }

  private step(
    direction: Step['direction'],
    span: OpSpan,
    before: State,
    after: State,
    patches: Patch[],
    inverse: Patch[],
  ): Step {
    const diff = diffStates(before, after);
    return {
      direction,
      op: span.index,
      firstSeq: span.firstSeq,
      lastSeq: span.lastSeq,
      patches,
      inversePatches: inverse,
      diff,
      summary: renderDiff(diff),
    };
  }
}
