// SPDX-License-Identifier: GPL-2.0-only
/**
 * Differential replays: a trace replayed with `check: 'differential'` runs the incremental invariant
 * checker and the full one (its oracle) after every op and throws CheckerDivergence at the first op where
 * their findings differ (kind, key, text, objects, order); it records the oracle's findings. A replay that
 * returns proves they agreed on every op; what it records is compared with a replay under the incremental
 * checker alone (the default), which must record the same digest, events and findings at the same ops.
 */
import { readFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
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
import { yielder } from './yield.js';

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

/** Replay in differential mode (throws on a divergence) and in incremental mode; both outcomes. */
export function differential(trace: ParsedTrace, variant: string): { oracle: Outcome; incremental: Outcome } {
  return {
    oracle: outcomeOf(replayWith(trace, variant, 'differential')),
    incremental: outcomeOf(replayWith(trace, variant, 'incremental')),
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

/**
 * Register the tests of generated traces `first..last` (seeds) on both variants, `perTest` seeds per test,
 * yielding between replays: each differential replay must agree with the full checker on every op and
 * record what a full-checker replay records.
 */
export function fuzzSeedsSuite(first: number, last: number, perTest = 10, maxOps = 40): void {
  for (let from = first; from <= last; from += perTest) {
    const to = Math.min(last, from + perTest - 1);
    it(`generated traces, seeds ${from}..${to}, on ${DIFFERENTIAL_VARIANTS.join(' and ')}`, async () => {
      const pause = yielder();
      for (let seed = from; seed <= to; seed++) {
        const trace = fuzzTrace(seed, maxOps);
        for (const variant of DIFFERENTIAL_VARIANTS) {
          const r = differential(trace, variant);
          expect(r.incremental, `seed ${seed} on ${variant}`).toEqual(r.oracle);
          await pause();
        }
      }
    });
  }
}
