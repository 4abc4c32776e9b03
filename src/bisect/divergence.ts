// SPDX-License-Identifier: GPL-2.0-only
/**
 * What a divergence report holds, whichever way the two runs were obtained (the store, or two in-memory
 * replays): the op, its line, what differs about it (state, errno, result), the structural diff of the two
 * states just after it, the effects only one run had, the objects all of that names, and the op's events
 * side by side.
 *
 * Differences in neutralised fields are listed apart, shown for context and never the reason for a
 * divergence (neutral.ts): `provenance`, the function and label of a live allocation (code refactored
 * between the variants: the same object is held); `uncounted`, the derived IOVA alignment and the cursors.
 */
import type { Event } from '../events/events.js';
import type { Difference } from '../state/diff.js';
import { diffStates, renderDifference } from '../state/diff.js';
import type { State } from '../state/state.js';
import { compareEffects, eventsOnlyIn, namedObjects } from './effects.js';
import type { EffectsComparison, NamedObjects } from './effects.js';
import { neutralKind } from './neutral.js';
import type { NeutralOptions } from './neutral.js';
import type { OpDifference, OpPair } from './scan.js';
import type { OpRow } from '../store/index.js';

export interface OpSide {
  line: number;
  errno: string | null;
  /** The op's outputs as stored (encodeJson text). */
  result: string;
  /** Neutral digest after the op. */
  digest: string;
  events: number;
}

export interface DivergenceDiff {
  /** State differences that count, with the value on each side. */
  state: Difference[];
  /** Differences in the derived alignment and the cursors, for context. */
  uncounted: Difference[];
  /** Differences in where a live allocation came from (heap fn, tag): the same object, other code. */
  provenance: Difference[];
  /** Effects only run A / only run B had during the op, one line each. */
  onlyA: string[];
  onlyB: string[];
  /** The objects the differences and the one-sided effects name. */
  named: NamedObjects;
  /** `state` rendered, one line per difference. */
  lines: string[];
}

export interface Divergence {
  /** Op index: 0 setup, 1..N the trace's ops, N+1 teardown. */
  op: number;
  /** Line of the trace (run A's trace when two traces are aligned by prefix). */
  line: number;
  name: string;
  differs: OpDifference[];
  a: OpSide;
  b: OpSide;
  diff: DivergenceDiff;
  events: EffectsComparison;
}

function side(k: OpRow): OpSide {
  return { line: k.line, errno: k.errno, result: k.result, digest: k.digest, events: k.lastSeq - k.firstSeq + 1 };
}

/** Assemble the report of the divergence at `pair` from the states after the op and the op's events. */
export function describeDivergence(
  pair: OpPair,
  stateA: State,
  stateB: State,
  eventsA: readonly Event[],
  eventsB: readonly Event[],
  options: NeutralOptions = {},
): Divergence {
  const all = diffStates(stateA, stateB).differences;
  const state: Difference[] = [];
  const uncounted: Difference[] = [];
  const provenance: Difference[] = [];
  for (const d of all) {
    const kind = neutralKind(d.table, d.path, options);
    (kind === 'provenance' ? provenance : kind === 'uncounted' ? uncounted : state).push(d);
  }
  const events = compareEffects(eventsA, eventsB);
  const one = [...eventsOnlyIn(eventsA, eventsB), ...eventsOnlyIn(eventsB, eventsA)];
  return {
    op: pair.index,
    line: pair.a.line,
    name: pair.a.op,
    differs: pair.differs,
    a: side(pair.a),
    b: side(pair.b),
    diff: {
      state,
      uncounted,
      provenance,
      onlyA: events.onlyA,
      onlyB: events.onlyB,
      named: namedObjects(state, one),
      lines: state.map(renderDifference),
    },
    events,
  };
}
