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

/** The live state plus the log position; the kernel model holds one and calls emit. */
export class Emitter {
  /** Set by the test setup only; production code leaves it null. */
  static tap: EmitterTap | null = null;
  seq = 0;
  op = 0;
  constructor(
    readonly state: State,
    private readonly sink: EventSink,
  ) {
    Emitter.tap?.created(this);
  }

  emit(event: Event): void {
    reduce(this.state, event);
    this.seq += 1;
    Emitter.tap?.emitted(this, event);
    this.sink.accept(event, this.seq, this.op);
  }
}
