// SPDX-License-Identifier: GPL-2.0-only
/**
 * stateAt: the state after any event of a run = the nearest snapshot at or before it, then the reducers
 * over the events after the snapshot. The tail is replayed with plain `reduce` on the freshly decoded
 * state (never immer: this is the bulk path), so a seek costs one snapshot decode plus at most the
 * snapshot spacing in events.
 */
import { digestHex } from '../lib/digest.js';
import { BadRangeError, InternalError } from '../lib/errors.js';
import { reduce } from '../state/reduce.js';
import { deserializeState } from '../state/snapshot.js';
import type { Event } from '../events/events.js';
import { withoutStateDigest } from '../state/records.js';
import type { State } from '../state/state.js';
import { digestedTables, initialState, recomputeDigest } from '../state/state.js';
import { lastAtOrBefore } from './source.js';
import type { EventSource, SnapshotBlob, SourcedEvent } from './source.js';

/** Throws a BadRangeError unless 0 <= seq <= the run's last seq. */
export function checkSeq(source: EventSource, seq: number): void {
  const count = source.eventCount();
  if (!Number.isSafeInteger(seq) || seq < 0 || seq > count) {
    throw new BadRangeError(`seq ${seq} is outside the run (0..${count})`, 'seq', seq, 0, count);
  }
}

/** Decode a snapshot and check it against its recorded digest. */
export function loadSnapshot(blob: SnapshotBlob): State {
  const state = deserializeState(blob.state, blob.format);
  const digest = digestHex(state.digest);
  if (digest !== blob.digest) {
    throw new InternalError(`snapshot at seq ${blob.seq} decodes to digest ${digest}, recorded ${blob.digest}`);
  }
  return state;
}

/**
 * Events of a tail per record of the state from which the tail is replayed without keeping the digest and the
 * digest is recomputed at the end instead: hashing a written record costs an event about half a microsecond
 * (B2's profile), recomputing costs each record about as much as two such writes.
 */
const RECOMPUTE_EVENTS_PER_RECORD = 4;

function recordCount(state: State): number {
  let n = 0;
  for (const table of Object.values(digestedTables(state).records)) n += Object.keys(table).length;
  return n;
}

/**
 * Apply events first..last of the source to `state` in place, with the plain reducers. A tail long against
 * the state's records (a rebuild from the initial state, a seek far from a small snapshot) is reduced with
 * the state digest not kept (records.ts withoutStateDigest), then the digest is recomputed from scratch once:
 * the same digest, for less than keeping it event by event.
 */
export async function replayInto(state: State, source: EventSource, first: number, last: number): Promise<void> {
  if (first > last) return;
  const recompute = last - first + 1 >= RECOMPUTE_EVENTS_PER_RECORD * recordCount(state);
  for await (const chunk of source.replayChunks(first, last)) {
    // Off only while this chunk is reduced: nothing else runs in between (synchronous).
    if (recompute) withoutStateDigest(() => reduceAll(state, chunk));
    else reduceAll(state, chunk);
  }
  if (recompute) state.digest = recomputeDigest(state);
}

function reduceAll(state: State, events: readonly Event[]): void {
  for (const event of events) reduce(state, event);
}

/**
 * The state after event `seq` (seq 0: the initial state), as a fresh mutable state owned by the caller.
 *
 * @example const s = await stateAt(source, 4096); s.pages[7]?.npinned
 */
export async function stateAt(source: EventSource, seq: number): Promise<State> {
  checkSeq(source, seq);
  const blob = seq > 0 ? await source.snapshotAtOrBefore(seq) : undefined;
  const state = blob === undefined ? initialState() : loadSnapshot(blob);
  await replayInto(state, source, (blob?.seq ?? 0) + 1, seq);
  return state;
}

/**
 * A plain state that moves forward through a run, jumping to a snapshot whenever that replays less than
 * continuing. Used by scans (watch) that visit many seqs in ascending order: consecutive seeks read the
 * events as one stream.
 */
export class ForwardSeeker {
  private current: State | null = null;
  private at = -1;
  private stream: AsyncIterator<SourcedEvent> | null = null;

  constructor(private readonly source: EventSource) {}

  /** The last seq reached, -1 before the first seek. */
  get seq(): number {
    return this.at;
  }

  /** The state after event `seq` (seq must not be before the last one reached). Owned by the seeker. */
  async seek(seq: number): Promise<State> {
    checkSeq(this.source, seq);
    if (this.current !== null && seq < this.at)
      throw new InternalError(`ForwardSeeker: seq ${seq} is behind ${this.at}`);
    // The snapshot list decides whether to jump, so a seek that continues forward loads no snapshot blob: a
    // scan seeking every op of a long run would otherwise read (and drop) one blob per seek.
    const seqs = this.source.snapshotSeqs();
    const snapshot = seq > 0 ? seqs[lastAtOrBefore(seqs, seq)] : undefined;
    if (this.current === null || (snapshot !== undefined && snapshot > this.at)) {
      const blob = snapshot === undefined ? undefined : await this.source.snapshotAtOrBefore(seq);
      this.current = blob === undefined ? initialState() : loadSnapshot(blob);
      this.at = blob?.seq ?? 0;
      await this.stream?.return?.();
      this.stream = null;
    }
    const state = this.current;
    if (seq > this.at) {
      this.stream ??= this.source.events(this.at + 1, this.source.eventCount())[Symbol.asyncIterator]();
      while (this.at < seq) {
        const next = await this.stream.next();
        if (next.done === true) throw new InternalError(`ForwardSeeker: the run ends before seq ${seq}`);
        reduce(state, next.value.event);
        this.at = next.value.seq;
      }
    }
    return state;
  }
}
