// SPDX-License-Identifier: GPL-2.0-only
/**
 * Bisect without the store: replays held in memory, for fix bisect (many throwaway variants) and tests.
 *
 * `replayKeyed` replays once and keeps, per op, only what the comparison needs (OpRow: neutral digest,
 * errno, result, event range), not the events. `divergenceInMemory` replays two variants again up to a known
 * op and keeps the state just after it and its events: two replays instead of keeping two whole logs.
 */
import type { Event } from '../events/events.js';
import type { VariantSpec } from '../kernel/variants.js';
import type { ParsedTrace } from '../replay/parse.js';
import { opRowOf, replay } from '../replay/replayer.js';
import type { ReplayResult } from '../replay/replayer.js';
import type { EventSink } from '../state/emit.js';
import { deserializeState, serializeState } from '../state/snapshot.js';
import type { State } from '../state/state.js';
import type { Divergence } from './divergence.js';
import { describeDivergence } from './divergence.js';
import { DigestNeutralizer } from './neutral.js';
import type { NeutralOptions } from './neutral.js';
import type { ScanResult } from './scan.js';
import type { OpRow } from '../store/index.js';
import { opDifferences, scanOps } from './scan.js';

export interface KeyedReplay {
  result: ReplayResult;
  keys: OpRow[];
}

export interface MemoryReplayOptions extends NeutralOptions {
  failNth?: number | null;
}

/** Replay `trace` on `spec` in memory and key every op for comparison. */
export function replayKeyed(trace: ParsedTrace, spec: VariantSpec, options: MemoryReplayOptions = {}): KeyedReplay {
  const neutralizer = new DigestNeutralizer(options);
  const keys: OpRow[] = [];
  const result = replay(trace, {
    variant: spec.variant,
    fixes: spec.fixes,
    failNth: options.failNth ?? null,
    sink: neutralizer,
    onOp: (r) => {
      keys.push(opRowOf(r, neutralizer.neutral(r.digest)));
    },
  });
  return { result, keys };
}

/** Keeps the neutral digest current and the events of one op. */
class CaptureSink implements EventSink {
  readonly neutralizer: DigestNeutralizer;
  readonly events: Event[] = [];
  constructor(
    private readonly op: number,
    options: NeutralOptions,
  ) {
    this.neutralizer = new DigestNeutralizer(options);
  }
  accept(event: Event, _seq: number, op: number): void {
    this.neutralizer.accept(event);
    if (op === this.op) this.events.push(event);
  }
}

/** The state just after op `op` of a replay, and that op's events and key. */
function captureOp(
  trace: ParsedTrace,
  spec: VariantSpec,
  op: number,
  options: MemoryReplayOptions,
): { state: State; events: Event[]; key: OpRow } {
  const sink = new CaptureSink(op, options);
  let captured: { state: State; key: OpRow } | null = null;
  replay(trace, {
    variant: spec.variant,
    fixes: spec.fixes,
    failNth: options.failNth ?? null,
    sink,
    onOp: (r, state) => {
      if (r.index !== op) return;
      // A copy: the replay goes on mutating the live state.
      captured = {
        state: deserializeState(serializeState(state)),
        key: opRowOf(r, sink.neutralizer.neutral(r.digest)),
      };
    },
  });
  const c = captured as { state: State; key: OpRow } | null;
  if (c === null) throw new RangeError(`the replay has no op ${op}`);
  return { state: c.state, events: sink.events, key: c.key };
}

/** The divergence report at op `op` of two variants of one trace (the op is known from a scan). */
export function divergenceInMemory(
  trace: ParsedTrace,
  a: VariantSpec,
  b: VariantSpec,
  op: number,
  options: MemoryReplayOptions = {},
): Divergence {
  const ca = captureOp(trace, a, op, options);
  const cb = captureOp(trace, b, op, options);
  const pair = { index: op, a: ca.key, b: cb.key, differs: opDifferences(ca.key, cb.key) };
  return describeDivergence(pair, ca.state, cb.state, ca.events, cb.events, options);
}

export interface MemoryBisect {
  scan: ScanResult;
  a: KeyedReplay;
  b: KeyedReplay;
  divergence: Divergence | null;
}

/** Bisect two variants of one trace entirely in memory (the store-free twin of bisectVariants). */
export function bisectInMemory(
  trace: ParsedTrace,
  a: VariantSpec,
  b: VariantSpec,
  options: MemoryReplayOptions = {},
): MemoryBisect {
  const ra = replayKeyed(trace, a, options);
  const rb = replayKeyed(trace, b, options);
  const scan = scanOps(ra.keys, rb.keys);
  const divergence = scan.first === null ? null : divergenceInMemory(trace, a, b, scan.first.index, options);
  return { scan, a: ra, b: rb, divergence };
}
