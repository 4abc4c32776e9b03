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
import type { State } from '../state/state.js';
import { digestHex } from '../lib/digest.js';
import { SNAPSHOT_FORMAT, serializeState } from '../state/snapshot.js';
import type { RunWriter, Store } from '../store/index.js';
import type { ParsedTrace } from './parse.js';
import { replay } from './replayer.js';
import type { OpRecord, ReplayOptions, ReplayResult } from './replayer.js';

/** Events between snapshots: a seek replays at most this many events after loading one. */
export const DEFAULT_SNAPSHOT_EVERY = 8192;

export interface RecordOptions extends Omit<ReplayOptions, 'sink' | 'onOp'> {
  tracePath: string;
  traceText: string;
  snapshotEvery?: number;
  onOp?: (record: OpRecord) => void;
}

export interface RecordedRun {
  run: number;
  head: string;
  result: ReplayResult;
}

class StoreSink implements EventSink {
  private lastSnapshot = 0;
  state: State | null = null;
  constructor(
    private readonly writer: RunWriter,
    private readonly every: number,
  ) {}

  accept(event: Event, seq: number, op: number): void {
    this.writer.append({ seq, op, type: event.type, v: event.v, payload: encodeJson(event) });
    if (this.state !== null && seq - this.lastSnapshot >= this.every) this.snapshot(seq, op, this.state);
  }

  snapshot(seq: number, op: number, state: State): void {
    this.writer.putSnapshot(seq, op, digestHex(state.digest), serializeState(state), SNAPSHOT_FORMAT);
    this.lastSnapshot = seq;
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
  const sink = new StoreSink(writer, options.snapshotEvery ?? DEFAULT_SNAPSHOT_EVERY);
  let result: ReplayResult;
  try {
    result = replay(trace, {
      variant: options.variant,
      fixes: options.fixes,
      failNth: options.failNth ?? null,
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
    writer.finish('failed', { error: (err as Error).message, finalDigest: '' });
    throw err;
  }
  writer.finish('complete', { finalDigest: result.digest });
  return { run: writer.run, head: writer.head, result };
}
