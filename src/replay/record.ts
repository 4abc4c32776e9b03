// SPDX-License-Identifier: GPL-2.0-only
/**
 * Replay into the store: every event appended as it is emitted (the store batches transactions), one op row
 * per operation with the digest after it, and snapshots of the state spaced so that any event is at most
 * `snapshotEvery` events of replay away from one. If the replay throws (a bug), the run is finished as
 * 'failed' with what was committed, and the error is rethrown: the database stays consistent.
 */
import type { Event } from '../events/events.js';
import { encodeJson } from '../lib/codec.js';
import type { EventSink } from '../state/emit.js';
import { initialState } from '../state/state.js';
import type { State } from '../state/state.js';
import { digestHex } from '../lib/digest.js';
import { SNAPSHOT_FORMAT, serializeState } from '../state/snapshot.js';
import type { RunWriter, Store } from '../store/index.js';
import { SnapshotSpacing } from '../timetravel/spacing.js';
import type { SpacingOptions } from '../timetravel/spacing.js';
import type { ParsedTrace } from './parse.js';
import { replay } from './replayer.js';
import type { OpRecord, ReplayOptions, ReplayResult } from './replayer.js';

export interface RecordOptions extends Omit<ReplayOptions, 'sink' | 'onOp'> {
  tracePath: string;
  traceText: string;
  /** Where snapshots are taken (default: spaced by what a seek costs, see SnapshotSpacing). */
  spacing?: SpacingOptions;
  onOp?: (record: OpRecord) => void;
}

export interface RecordedRun {
  run: number;
  head: string;
  result: ReplayResult;
}

class StoreSink implements EventSink {
  state: State | null = null;
  constructor(
    private readonly writer: RunWriter,
    private readonly spacing: SnapshotSpacing,
  ) {}

  accept(event: Event, seq: number, op: number): void {
    this.writer.append({ seq, op, type: event.type, v: event.v, payload: encodeJson(event) });
    if (this.state !== null && this.spacing.due(seq)) {
      const blob = serializeState(this.state);
      this.writer.putSnapshot(seq, op, digestHex(this.state.digest), blob, SNAPSHOT_FORMAT);
      this.spacing.taken(seq, blob.byteLength);
    }
  }
}

export function recordReplay(store: Store, trace: ParsedTrace, options: RecordOptions): RecordedRun {
  const writer = store.beginRun({
    tracePath: options.tracePath,
    traceSha256: trace.sha256,
    traceText: options.traceText,
    variant: options.variant,
    flags: [...options.fixes],
    faultPlan: options.failNth ? { failNth: options.failNth } : null,
    header: trace.header,
  });
  const sink = new StoreSink(writer, new SnapshotSpacing(options.spacing));
  let result: ReplayResult;
  try {
    result = replay(trace, {
      variant: options.variant,
      fixes: options.fixes,
      failNth: options.failNth ?? null,
      ...(options.maxEvents !== undefined ? { maxEvents: options.maxEvents } : {}),
      ...(options.onProgress !== undefined ? { onProgress: options.onProgress } : {}),
      sink,
      onOp: (record, state) => {
        sink.state = state;
        writer.endOp({
          index: record.index,
          line: record.line,
          op: record.op,
          errno: record.errno,
          result: encodeJson(record.outputs),
          firstSeq: record.firstSeq,
          lastSeq: record.lastSeq,
          digest: record.digest,
        });
        options.onOp?.(record);
      },
    });
  } catch (err) {
    // The digest of the state the run stopped in (the live state, as far as events were applied).
    const finalDigest = digestHex((sink.state ?? initialState()).digest);
    writer.finish('failed', { error: (err as Error).message, finalDigest });
    throw err;
  }
  writer.finish('complete', { finalDigest: result.digest });
  return { run: writer.run, head: writer.head, result };
}
