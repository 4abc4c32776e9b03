// SPDX-License-Identifier: GPL-2.0-only
/**
 * A run of the store as an EventSource. Counts are read once, when the source is made: a run that is still
 * being written is seen as it was then.
 */
import type { EventType } from '../events/events.js';
import { NotFoundError } from '../lib/errors.js';
import { decodeEvent } from '../state/snapshot.js';
import type { Store } from '../store/index.js';
import type { EventSource, OpSpan, SnapshotBlob, SourcedEvent } from './source.js';

export class StoreSource implements EventSource {
  private readonly count: number;
  private readonly nOps: number;
  private snapshotList: readonly number[] | null = null;

  constructor(
    private readonly store: Store,
    readonly run: number,
  ) {
    const row = store.run(run);
    if (row === undefined) throw new NotFoundError(`no run ${run} in ${store.path}`, 'run', run);
    this.count = store.eventCount(run);
    this.nOps = row.opCount;
  }

  eventCount(): number {
    return this.count;
  }

  *events(first: number, last: number, types?: readonly EventType[]): Iterable<SourcedEvent> {
    const to = Math.min(last, this.count);
    if (first > to) return;
    const filter = types === undefined ? { fromSeq: first, toSeq: to } : { fromSeq: first, toSeq: to, types };
    for (const row of this.store.events(this.run, filter)) {
      yield { seq: row.seq, op: row.op, event: decodeEvent(row.payload) };
    }
  }

  snapshotAtOrBefore(seq: number): SnapshotBlob | undefined {
    return this.store.snapshotAtOrBefore(this.run, seq);
  }

  snapshotSeqs(): readonly number[] {
    this.snapshotList ??= this.store.snapshots(this.run).filter((seq) => seq <= this.count);
    return this.snapshotList;
  }

  opCount(): number {
    return this.nOps;
  }

  ops(first: number, last: number): readonly OpSpan[] {
    if (last < first) return [];
    return this.store.ops(this.run, Math.max(0, first), last).map((op) => ({
      index: op.index,
      firstSeq: op.firstSeq,
      lastSeq: op.lastSeq,
      digest: op.digest,
      name: op.op,
    }));
  }
}
