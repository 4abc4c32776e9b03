// SPDX-License-Identifier: GPL-2.0-only
/**
 * Differential replays: a trace replayed with `check: 'differential'` runs the incremental invariant
 * checker and the full one (its oracle) after every op and throws CheckerDivergence at the first op where
 * their findings differ (kind, key, text, objects, order). A replay that returns proves they agreed on
 * every op; what it returns is compared with a replay under the full checker alone (same digest, same
 * findings at the same ops), so the incremental default records what the full checker records.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateTrace } from '../../src/fuzz/generate.js';
import { serializeTrace } from '../../src/fuzz/write.js';
import type { CheckMode } from '../../src/kernel/invariants/checker.js';
import { resolveVariant } from '../../src/kernel/variants.js';
import type { ParsedTrace } from '../../src/replay/parse.js';
import { parseTraceText } from '../../src/replay/parse.js';
import type { ReplayResult } from '../../src/replay/replayer.js';
import { replay } from '../../src/replay/replayer.js';
import { ROOT } from './heads.js';

export const DIFFERENTIAL_VARIANTS = ['v3', 'upstream'] as const;

/** What two replays must agree on: the final digest, events, and every finding with its op. */
export interface Outcome {
  digest: string;
  events: number;
  violations: string[];
  warns: number;
}

export function outcomeOf(r: ReplayResult): Outcome {
  return {
    digest: r.digest,
    events: r.events,
    violations: r.violations.map((v) => `${v.op}:${v.seq}:${v.kind}:${v.fn}:${v.detail}`),
    warns: r.warns.length,
  };
}

export function replayWith(trace: ParsedTrace, variant: string, check: CheckMode): ReplayResult {
  const { fixes } = resolveVariant(variant);
  return replay(trace, { variant, fixes, check });
}

/** Replay in differential mode (throws on a divergence) and in full mode; both outcomes. */
export function differential(trace: ParsedTrace, variant: string): { differential: Outcome; full: Outcome } {
  return {
    differential: outcomeOf(replayWith(trace, variant, 'differential')),
    full: outcomeOf(replayWith(trace, variant, 'full')),
  };
}

export async function shippedTrace(path: string): Promise<ParsedTrace> {
  return parseTraceText(await readFile(join(ROOT, path), 'utf8'), path);
}

/** The fuzzer's trace for `seed` (the same generator `ioptrace fuzz` uses), parsed. */
export function fuzzTrace(seed: number, maxOps = 40): ParsedTrace {
  const t = generateTrace({ seed, maxOps });
  return parseTraceText(serializeTrace({ header: t.header, ops: t.ops }), `seed-${seed}`);
}
