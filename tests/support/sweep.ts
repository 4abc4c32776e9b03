// SPDX-License-Identifier: GPL-2.0-only
import { failNthSweep } from '../../src/replay/failnth.js';
import type { SweepResult } from '../../src/replay/failnth.js';
import type { ParsedTrace } from '../../src/replay/parse.js';
import { resolveVariant } from '../../src/kernel/variants.js';
import { yielder } from './yield.js';

/**
 * failNthSweep one N at a time, giving the event loop a turn between replays: a whole sweep takes tens of
 * seconds, which must not be one synchronous block (tests/README.md). Same result as one failNthSweep call
 * (tests/int/replays.test.ts checks that).
 */
export async function sweepYielding(trace: ParsedTrace, variant: string, maxN = 100_000): Promise<SweepResult> {
  const { fixes } = resolveVariant(variant);
  const pause = yielder();
  const steps: SweepResult['steps'] = [];
  const findings: SweepResult['findings'] = [];
  for (let n = 1; n <= maxN; n++) {
    const one = failNthSweep(trace, { variant, fixes, firstN: n, maxN: n });
    for (const s of one.steps) steps.push(s);
    for (const f of one.findings) findings.push(f);
    if (!one.truncated) return { steps, findings, truncated: false };
    await pause();
  }
  return { steps, findings, truncated: true };
}
