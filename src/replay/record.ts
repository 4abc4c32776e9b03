// SPDX-License-Identifier: GPL-2.0-only
/**
 * Replay into the store: every event appended as it is emitted (the store batches transactions), one op row
 * per operation with the digest after it, and snapshots of the state spaced so that any event is at most
 * `snapshotEvery` events of replay away from one.
 *
 * If the replay throws part way (the store cannot write: disk full; a value too large to encode; a bug),
 * the run is finished as 'failed' with what was committed, the reason and the op and trace line where it
 * stopped, and a StoreError 'run-failed' naming that cause is thrown (its `cause` is the original error).
 * Should even marking the run failed be impossible (the disk still full), the error says so too, and the
 * run stays 'running', which readers show as incomplete.
 */
import type { Event } from '../events/events.js';
import { encodeEvent } from '../events/encode.js';
import type { EventSink } from '../state/emit.js';
import type { State } from '../state/state.js';
import { digestHex } from '../lib/digest.js';
import { SNAPSHOT_FORMAT, SnapshotEncoder } from '../state/snapshot.js';
import { StoreError, failedBatchAt } from '../store/index.js';
import type { RunWriter, Store } from '../store/index.js';
import { SnapshotSpacing } from '../state/snapshot-spacing.js';
import type { SpacingOptions } from '../state/snapshot-spacing.js';
import { lastTraceOpLine, traceOpCount } from './parse.js';
import type { StreamedTrace, TraceEntry, TraceInput } from './parse.js';
import { opRowOf, replayPausing } from './replayer.js';
import { EventBudgetError } from './errors.js';
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
  // The run's snapshots are of one live state: what did not change since the last is not encoded again.
  private readonly encoder = new SnapshotEncoder();
  constructor(
    private readonly writer: RunWriter,
    private readonly spacing: SnapshotSpacing,
  ) {}

  accept(event: Event, seq: number, op: number): void {
    this.writer.append({ seq, op, type: event.type, v: event.v, payload: encodeEvent(event) });
    if (this.state !== null && this.spacing.due(seq)) {
      const blob = this.encoder.encode(this.state);
      this.writer.putSnapshot(seq, op, digestHex(this.state.digest), blob, SNAPSHOT_FORMAT);
      this.spacing.taken(seq, blob.byteLength);
    }
  }
}

/**
 * The trace as the replay reads it, remembering the lines of the op handed out last and of the one after it
 * (read one ahead): where a failure is reported, without looking back into a trace that is streamed and so
 * keeps no array of its ops.
 */
class TracedLines {
  private readonly lines = new Map<number, number>();
  readonly input: StreamedTrace;

  constructor(private readonly trace: TraceInput) {
    this.input = {
      header: trace.header,
      sha256: trace.sha256,
      opCount: traceOpCount(trace),
      lastOpLine: lastTraceOpLine(trace),
      entries: { [Symbol.iterator]: () => this.read() },
    };
  }

  private *read(): Generator<TraceEntry, void, undefined> {
    const it = this.trace.entries[Symbol.iterator]();
    let index = 0;
    for (let next = it.next(); next.done !== true;) {
      const entry = next.value;
      next = it.next();
      index += 1;
      this.lines.clear();
      this.lines.set(index, entry.line);
      if (next.done !== true) this.lines.set(index + 1, next.value.line);
      yield entry;
    }
  }

  /** The trace line of op `index`: 0 for the setup, one past the last op for the teardown. */
  lineOf(index: number): number {
    if (index === 0) return 0;
    const line = this.lines.get(index);
    if (line !== undefined) return line;
    return this.input.opCount > 0 ? this.input.lastOpLine + 1 : 1;
  }
}

export async function recordReplay(store: Store, trace: TraceInput, options: RecordOptions): Promise<RecordedRun> {
  const writer = await store.beginRun({
    tracePath: options.tracePath,
    traceSha256: trace.sha256,
    traceText: options.traceText,
    variant: options.variant,
    flags: [...options.fixes],
    faultPlan: options.failNth ? { failNth: options.failNth } : null,
    header: trace.header,
  });
  const sink = new StoreSink(writer, new SnapshotSpacing(options.spacing));
  const traced = new TracedLines(trace);
  // The op being replayed: the one after the last that ended (op 0 is the setup, the last the teardown).
  let opIndex = 0;
  let result: ReplayResult;
  try {
    // A server store cannot commit inside append: after each op that cut a batch, wait for its commit.
    result = await replayPausing(
      traced.input,
      {
        variant: options.variant,
        fixes: options.fixes,
        failNth: options.failNth ?? null,
        ...(options.maxEvents !== undefined ? { maxEvents: options.maxEvents } : {}),
        ...(options.onProgress !== undefined ? { onProgress: options.onProgress } : {}),
        ...(options.keepOps !== undefined ? { keepOps: options.keepOps } : {}),
        sink,
        onOp: (record, state) => {
          sink.state = state;
          writer.endOp(opRowOf(record));
          opIndex = record.index + 1;
          options.onOp?.(record);
        },
      },
      () => (writer.unsettled ? writer.settle() : undefined),
    );
    await writer.finish('complete', { finalDigest: result.digest });
  } catch (err) {
    // A batch that failed to commit names the op where it was cut, however many ops later that was noticed
    // (a writer thread commits while the next ops run); an op past the teardown: the last commit failed.
    const cut = failedBatchAt(err);
    const op = cut?.op ?? opIndex;
    const failure = await failRun(writer, traced, op > traced.input.opCount + 1 ? null : op, cut?.line ?? null, err);
    // A trace too big for its event budget is the user's to fix (exit 2); the run is marked failed all the same.
    throw err instanceof EventBudgetError ? err : failure;
  }
  return { run: writer.run, head: writer.head, result };
}

function causeText(err: unknown): string {
  if (err instanceof StoreError || err instanceof EventBudgetError) return err.message;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** Records the run as failed where it stopped (op null: at its last commit) and returns the error naming the cause. */
async function failRun(
  writer: RunWriter,
  traced: TracedLines,
  opIndex: number | null,
  knownLine: number | null,
  err: unknown,
): Promise<StoreError> {
  const line = opIndex === null ? null : (knownLine ?? traced.lineOf(opIndex));
  // The writer's own errors already start with the run; say it once.
  const reason = causeText(err).replace(`run ${writer.run}: `, '');
  const where = `run ${writer.run} failed ${opIndex === null ? 'at its last commit' : `at op ${opIndex} (trace line ${line})`}`;
  try {
    await writer.finish('failed', {
      error: reason,
      ...(opIndex === null || line === null ? {} : { errorOp: opIndex, errorLine: line }),
    });
  } catch (finishErr) {
    return new StoreError(
      'run-failed',
      `${where}: ${reason}; it could not be marked failed either (${causeText(finishErr)}), so it shows as incomplete`,
      { run: writer.run, op: opIndex, line, marked: false },
      { cause: err },
    );
  }
  return new StoreError(
    'run-failed',
    `${where}: ${reason}; the run is marked failed with the events committed before`,
    { run: writer.run, op: opIndex, line, marked: true },
    { cause: err },
  );
}
