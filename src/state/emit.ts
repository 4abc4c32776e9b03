// SPDX-License-Identifier: GPL-2.0-only
/**
 * emit(): apply an event's reducer to the live state, then hand the event to a sink. This is the single
 * path from the model to the state; the store is one sink, the in-memory log another.
 */
import type { Event } from '../events/events.js';
import { reduce } from './reduce.js';
import type { State } from './state.js';

/** Receives every event after its reducer ran; `seq` is the event's 1-based position in the run. */
export interface EventSink {
  accept(event: Event, seq: number, op: number): void;
}

/** Keeps every event in memory (tests, the model-only benchmark, fuzzing). */
export class MemorySink implements EventSink {
  readonly events: Event[] = [];
  readonly ops: number[] = [];
  accept(event: Event, _seq: number, op: number): void {
    this.events.push(event);
    this.ops.push(op);
  }
}

/** Discards events (the model-only benchmark without memory growth). */
export class NullSink implements EventSink {
  count = 0;
  accept(): void {
    this.count += 1;
  }
}

/** Observes every emitter and every event it applies (the test suite's rebuild-equals-live check). */
export interface EmitterTap {
  created(emitter: Emitter): void;
  emitted(emitter: Emitter, event: Event): void;
}

/**
 * Thrown by emit when a run would exceed its event budget. The event that would exceed it is neither applied
 * nor passed on, so the state and the log still agree.
 */
export class EventBudgetExhausted extends Error {
  override readonly name = 'EventBudgetExhausted';
  constructor(readonly maxEvents: number) {
    super(`the run reached its budget of ${maxEvents} events`);
  }
}

/** How often (in events) `onTick` is called: a power of two, so the check is one mask. */
export const TICK_EVERY = 1 << 16;

/** The live state plus the log position; the kernel model holds one and calls emit. */
export class Emitter {
  /** Set by the test setup only; production code leaves it null. */
  static tap: EmitterTap | null = null;
  seq = 0;
  op = 0;
  /** The most events this run may emit; 0 for no limit. */
  maxEvents = 0;
  /** Called every TICK_EVERY events, for progress inside one long op. */
  onTick: (() => void) | null = null;
  constructor(
    readonly state: State,
    private readonly sink: EventSink,
  ) {
    Emitter.tap?.created(this);
  }

  emit(event: Event): void {
    if (this.maxEvents > 0 && this.seq >= this.maxEvents) throw new EventBudgetExhausted(this.maxEvents);
    reduce(this.state, event);
    this.seq += 1;
    Emitter.tap?.emitted(this, event);
    this.sink.accept(event, this.seq, this.op);
    if ((this.seq & (TICK_EVERY - 1)) === 0) this.onTick?.();
  }
}
