// SPDX-License-Identifier: GPL-2.0-only
/**
 * Where time travel reads a run from: the events in seq order, the snapshots, and the op spans. The store
 * implements it (store-source.ts); MemorySource keeps a run in memory (tests, fuzzing, the model-only path).
 * Reads are asynchronous, as the store's are (a server database answers over a socket); the counts and the
 * snapshot list are read once, when a source is made.
 *
 * Vocabulary (as in the store): `seq` counts the events of a run from 1, seq 0 is the state before the
 * first event; `op` counts trace operations from 0; ranges first..last are inclusive.
 */
import type { Event, EventType } from '../events/events.js';
import type { EventSink } from '../state/emit.js';
import type { State } from '../state/state.js';
import { reduce } from '../state/reduce.js';
import { initialState } from '../state/state.js';
import { digestHex } from '../lib/digest.js';
import { SNAPSHOT_FORMAT, SnapshotEncoder } from '../state/snapshot.js';
import type { SnapshotSpacing } from '../state/snapshot-spacing.js';

/** One event of the run with its position. */
export interface SourcedEvent {
  seq: number;
  op: number;
  event: Event;
}

/** A stored snapshot: the state after event `seq`, encoded by serializeState. */
export interface SnapshotBlob {
  seq: number;
  op: number;
  /** State digest, 16 hex digits. */
  digest: string;
  format: number;
  state: Uint8Array;
}

/** One trace operation: its events are firstSeq..lastSeq (lastSeq = firstSeq - 1 when it has none). */
export interface OpSpan {
  index: number;
  firstSeq: number;
  lastSeq: number;
  /** State digest after the op, 16 hex digits (null when the source did not record it). */
  digest: string | null;
  /** The op's name in the trace ('map', 'unmap', ...); null when unknown. */
  name: string | null;
}

export interface EventSource {
  /** The highest seq of the run (fixed when the source is made). */
  eventCount(): number;
  /**
   * Events first..last in seq order, streamed: never the whole range in memory. With `types`, only events
   * of those types, filtered before they are decoded (a store filters in SQL).
   */
  events(first: number, last: number, types?: readonly EventType[]): AsyncIterable<SourcedEvent>;
  /**
   * Events first..last in seq order as arrays (a few thousand events at most each): what a replay reads,
   * one await per chunk instead of one per event.
   */
  eventChunks(first: number, last: number): AsyncIterable<readonly SourcedEvent[]>;
  /**
   * Events first..last in seq order as arrays, without their seq and op: what a replay that only applies
   * them reads (replayInto, rebuildFinal).
   */
  replayChunks(first: number, last: number): AsyncIterable<readonly Event[]>;
  /** The latest snapshot at or before `seq`. */
  snapshotAtOrBefore(seq: number): Promise<SnapshotBlob | undefined>;
  /** The seqs of the snapshots, ascending (one per snapshot spacing: few, so known when the source is made). */
  snapshotSeqs(): readonly number[];
  opCount(): number;
  /** Ops first..last by index (clipped to the run). */
  ops(first: number, last: number): Promise<readonly OpSpan[]>;
}

/** Binary search: index of the last element <= x in an ascending array, or -1. */
export function lastAtOrBefore(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Events per chunk of MemorySource.eventChunks. */
const MEMORY_CHUNK = 1024;

/** A run held in memory: events, their ops, op spans and snapshots. */
export class MemorySource implements EventSource {
  private readonly snapshots: SnapshotBlob[];
  private readonly snapshotSeqList: number[];
  private readonly opSpans: OpSpan[];

  constructor(
    readonly eventList: readonly Event[],
    /** The op of each event (same length as eventList). */
    readonly opOfEvent: readonly number[],
    snapshots: readonly SnapshotBlob[] = [],
    ops?: readonly OpSpan[],
  ) {
    this.snapshots = [...snapshots].sort((a, b) => a.seq - b.seq);
    this.snapshotSeqList = this.snapshots.map((s) => s.seq);
    this.opSpans = ops !== undefined ? [...ops] : spansOf(opOfEvent);
  }

  /**
   * Replay a list of events from the initial state, taking a snapshot every `snapshotEvery` events and
   * recording the digest after every op.
   */
  static fromEvents(
    events: readonly Event[],
    opOfEvent: readonly number[],
    options: MemoryRecorderOptions,
  ): MemorySource {
    const recorder = new MemoryRecorder(initialState(), options);
    for (let i = 0; i < events.length; i++) recorder.emit(events[i] as Event, opOfEvent[i] as number);
    return recorder.source();
  }

  eventCount(): number {
    return this.eventList.length;
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- the interface is async; memory answers at once
  async *events(first: number, last: number, types?: readonly EventType[]): AsyncGenerator<SourcedEvent> {
    const wanted = types === undefined ? null : new Set<string>(types);
    const end = Math.min(last, this.eventList.length);
    for (let seq = Math.max(1, first); seq <= end; seq++) {
      const event = this.eventList[seq - 1] as Event;
      if (wanted !== null && !wanted.has(event.type)) continue;
      yield { seq, op: this.opOfEvent[seq - 1] as number, event };
    }
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- as events
  async *eventChunks(first: number, last: number): AsyncGenerator<readonly SourcedEvent[]> {
    const end = Math.min(last, this.eventList.length);
    for (let from = Math.max(1, first); from <= end; from += MEMORY_CHUNK) {
      const chunk: SourcedEvent[] = [];
      for (let seq = from; seq <= Math.min(end, from + MEMORY_CHUNK - 1); seq++)
        chunk.push({ seq, op: this.opOfEvent[seq - 1] as number, event: this.eventList[seq - 1] as Event });
      yield chunk;
    }
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- as events
  async *replayChunks(first: number, last: number): AsyncGenerator<readonly Event[]> {
    const end = Math.min(last, this.eventList.length);
    for (let from = Math.max(1, first); from <= end; from += MEMORY_CHUNK)
      yield this.eventList.slice(from - 1, Math.min(end, from + MEMORY_CHUNK - 1));
  }

  snapshotAtOrBefore(seq: number): Promise<SnapshotBlob | undefined> {
    return Promise.resolve(this.snapshots[lastAtOrBefore(this.snapshotSeqList, seq)]);
  }

  snapshotSeqs(): readonly number[] {
    return this.snapshotSeqList;
  }

  opCount(): number {
    return this.opSpans.length;
  }

  ops(first: number, last: number): Promise<readonly OpSpan[]> {
    return Promise.resolve(this.opSpans.slice(Math.max(0, first), Math.max(0, last + 1)));
  }
}

/** Op spans from the op of each event; ops are numbered 0.. and an op without events gets an empty span. */
function spansOf(opOfEvent: readonly number[]): OpSpan[] {
  const spans: OpSpan[] = [];
  for (let i = 0; i < opOfEvent.length; i++) {
    const op = opOfEvent[i] as number;
    const seq = i + 1;
    while (spans.length <= op)
      spans.push({ index: spans.length, firstSeq: seq, lastSeq: seq - 1, digest: null, name: null });
    (spans[op] as OpSpan).lastSeq = seq;
  }
  return spans;
}

export interface MemoryRecorderOptions {
  /** Take a snapshot after every this many events (0: never). */
  snapshotEvery?: number;
  /** Or space them by cost (see spacing.ts); used when snapshotEvery is not given. */
  spacing?: SnapshotSpacing;
}

/**
 * Applies events to a live state and records the run as a MemorySource: an EventSink for an Emitter (give it
 * the emitter's state) or a driver of its own through `emit`. Records the digest after every event
 * (`digests[seq]`) so tests can compare a rebuilt state with the live one at any point.
 */
export class MemoryRecorder implements EventSink {
  readonly events: Event[] = [];
  readonly opOfEvent: number[] = [];
  readonly snapshots: SnapshotBlob[] = [];
  /** digests[seq]: the state digest after event seq; digests[0] is the initial state's. */
  readonly digests: string[];
  private readonly spans: OpSpan[] = [];
  private readonly encoder = new SnapshotEncoder();

  constructor(
    readonly state: State,
    private readonly options: MemoryRecorderOptions,
  ) {
    this.digests = [digestHex(state.digest)];
  }

  /** Reduce one event into the state, then record it (for runs driven without an Emitter). */
  emit(event: Event, op: number): void {
    reduce(this.state, event);
    this.accept(event, this.events.length + 1, op);
  }

  accept(event: Event, seq: number, op: number): void {
    this.events.push(event);
    this.opOfEvent.push(op);
    const digest = digestHex(this.state.digest);
    this.digests.push(digest);
    while (this.spans.length <= op) {
      this.spans.push({ index: this.spans.length, firstSeq: seq, lastSeq: seq - 1, digest: null, name: null });
    }
    const span = this.spans[op] as OpSpan;
    span.lastSeq = seq;
    span.digest = digest;
    if (event.type === 'OpStarted') span.name = event.name;
    const { snapshotEvery, spacing } = this.options;
    const due =
      snapshotEvery !== undefined
        ? snapshotEvery > 0 && seq % snapshotEvery === 0
        : spacing !== undefined && spacing.due(seq);
    if (due) {
      const state = this.encoder.encode(this.state);
      this.snapshots.push({ seq, op, digest, format: SNAPSHOT_FORMAT, state });
      spacing?.taken(seq, state.length);
    }
  }

  source(): MemorySource {
    const spans = this.spans.map((span) => ({ ...span }));
    return new MemorySource(this.events.slice(), this.opOfEvent.slice(), this.snapshots.slice(), spans);
  }
}
