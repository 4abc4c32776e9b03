// SPDX-License-Identifier: GPL-2.0-only
/**
 * B6 model: the B5 trace replayed with no store (replay with a NullSink: events are reduced into the live
 * state and counted, nothing is kept), in a process of its own. Its ops/s against B5's says how much of B5
 * the store takes. Also used for the fragmented-layout sample (every 2 MiB page its own physical block),
 * where the phases are timed apart to give the per-op cost of the access ops.
 */

import { resolveVariant } from '../src/kernel/variants.js';
import { parseTraceText } from '../src/replay/parse.js';
import { replay } from '../src/replay/replayer.js';
import { NullSink } from '../src/state/emit.js';
import type { CheckMode } from '../src/kernel/invariants/checker.js';
import type { GuestOptions } from './generate.js';
import { SETUP_OPS, TEARDOWN_OPS, guestTrace } from './generate.js';
import { cpuSeconds, peakRssMiB, seconds, stopwatch } from './timing.js';

export interface ModelMeasurement {
  traceOps: number;
  events: number;
  /** Events up to the end of the setup (the mmap and the map of the whole guest among them). */
  setupEvents: number;
  parseSeconds: number;
  seconds: number;
  cpuSeconds: number;
  setupSeconds: number;
  accessSeconds: number;
  teardownSeconds: number;
  accessPhaseOps: number;
  peakRssMiB: number;
  digest: string;
  findings: number;
}

/** `check`: how the invariants are checked after every op (the replayer's default: incremental). */
export function measureModel(options: GuestOptions, check?: CheckMode): ModelMeasurement {
  const guest = guestTrace(options);
  const parseClock = stopwatch();
  const trace = parseTraceText(guest.text, 'bench-guest.jsonl');
  const parseSeconds = seconds(parseClock);
  const spec = resolveVariant('upstream');
  const lastAccessOp = guest.ops - TEARDOWN_OPS;
  let setupEnd = 0n;
  let accessEnd = 0n;
  let setupEvents = 0;
  const sink = new NullSink();
  const cpu0 = cpuSeconds();
  const t0 = stopwatch();
  const r = replay(trace, {
    variant: spec.variant,
    fixes: spec.fixes,
    sink,
    // As B5 replays it (bench/append.ts): the op records stream to onOp and are not kept.
    keepOps: false,
    ...(check !== undefined ? { check } : {}),
    onOp: (record) => {
      if (record.index === SETUP_OPS) {
        setupEnd = process.hrtime.bigint();
        setupEvents = sink.count;
      } else if (record.index === lastAccessOp) accessEnd = process.hrtime.bigint();
    },
  });
  const total = seconds(t0);
  const cpu = cpuSeconds() - cpu0;
  const end = process.hrtime.bigint();
  return {
    traceOps: guest.ops,
    events: sink.count,
    setupEvents,
    parseSeconds,
    seconds: total,
    cpuSeconds: cpu,
    setupSeconds: Number(setupEnd - t0) / 1e9,
    accessSeconds: Number(accessEnd - setupEnd) / 1e9,
    teardownSeconds: Number(end - accessEnd) / 1e9,
    accessPhaseOps: lastAccessOp - SETUP_OPS,
    peakRssMiB: peakRssMiB(),
    digest: r.digest,
    findings: r.violations.length + r.warns.length + r.mismatches.length,
  };
}
