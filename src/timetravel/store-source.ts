// SPDX-License-Identifier: GPL-2.0-only
/**
 * A run of the store as an EventSource. Counts and the snapshot list are read once, when the source is
 * opened (StoreSource.open): a run that is still being written is seen as it was then.
 */
import type { Event, EventType } from '../events/events.js';
import { InternalError, NotFoundError } from '../lib/errors.js';
import { decodeEvent } from '../state/snapshot.js';
import type { Store } from '../store/index.js';
import type { EventSource, OpSpan, SnapshotBlob, SourcedEvent } from './source.js';

export class StoreSource implements EventSource {
  private constructor(
    private readonly store: Store,
    readonly run: number,
    private readonly count: number,
    private readonly nOps: number,
    private readonly snapshotList: readonly number[],
  ) {}

  /** The source of run `run`; throws NotFoundError when the store has no such run. */
  static async open(store: Store, run: number): Promise<StoreSource> {
    const row = await store.run(run);
    if (row === undefined) throw new NotFoundError(`no run ${run} in ${store.path}`, 'run', run);
    const count = await store.eventCount(run);
    const snapshots = (await store.snapshots(run)).filter((seq) => seq <= count);
    return new StoreSource(store, run, count, row.opCount, snapshots);
  }

  eventCount(): number {
    return this.count;
  }

  async *events(first: number, last: number, types?: readonly EventType[]): AsyncGenerator<SourcedEvent> {
    const to = Math.min(last, this.count);
    if (first > to) return;
    if (types === undefined) {
      for await (const chunk of this.eventChunks(first, to)) yield* chunk;
      return;
    }
    for await (const row of this.store.events(this.run, { fromSeq: first, toSeq: to, types })) {
      yield { seq: row.seq, op: row.op, event: decodeEvent(row.payload) };
    }
  }

  async *eventChunks(first: number, last: number): AsyncGenerator<readonly SourcedEvent[]> {
    for await (const rows of this.store.replayRows(this.run, first, Math.min(last, this.count))) {
      yield rows.map((row) => ({ seq: row.seq, op: row.op, event: decodeEvent(row.payload) }));
    }
  }

  /** The events alone, from the store's bare payloads (no seq, op or row object per event). */
  async *replayChunks(first: number, last: number): AsyncGenerator<readonly Event[]> {
    const from = Math.max(1, first);
    const to = Math.min(last, this.count);
    if (from > to) return;
    let next = from;
    for await (const payloads of this.store.replayPayloads(this.run, from, to)) {
      const events = new Array<Event>(payloads.length);
      for (let i = 0; i < payloads.length; i++) events[i] = decodeEvent(payloads[i] as string);
      next += payloads.length;
      yield events;
    }
    // The count was read when the source was opened: every seq up to it is committed.
    if (next !== to + 1) throw new InternalError(`run ${this.run}: events ${from}..${to} read back as ${next - from}`);
  }

  snapshotAtOrBefore(seq: number): Promise<SnapshotBlob | undefined> {
    return this.store.snapshotAtOrBefore(this.run, seq);
  }

  snapshotSeqs(): readonly number[] {
    return this.snapshotList;
  }

  opCount(): number {
    return this.nOps;
  }

  async ops(first: number, last: number): Promise<readonly OpSpan[]> {
    if (last < first) return [];
    const ops = await this.store.ops(this.run, Math.max(0, first), last);
    return ops.map((op) => ({
      index: op.index,
      firstSeq: op.firstSeq,
      lastSeq: op.lastSeq,
      digest: op.digest,
      name: op.op,
    }));
  }
}
