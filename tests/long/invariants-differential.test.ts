// SPDX-License-Identifier: GPL-2.0-only
// The incremental invariant checks against the from-scratch oracle on 5,000 generated traces (seeds
// 1001..6000, disjoint from the sample of tests/int/invariants-differential.test.ts), each on v3 (many
// findings: the oracle fallback) and upstream (mostly clean: the incremental path), in slices that yield.
import { describe, expect, it } from 'vitest';
import { generateTrace } from '../../src/fuzz/generate.js';
import { serializeTrace } from '../../src/fuzz/write.js';
import { parseTraceText } from '../../src/replay/parse.js';
import { expectSameChecks } from '../support/differential.js';
import { yielder } from '../support/yield.js';

const FIRST = 1001;
const SEEDS = 5000;
const SLICE = 100;

describe(`incremental checks = from-scratch checks on ${SEEDS} generated traces (v3 and upstream)`, () => {
  let withFindings = 0;
  for (let first = FIRST; first < FIRST + SEEDS; first += SLICE) {
    it(`seeds ${first}..${first + SLICE - 1}`, async () => {
      const pause = yielder();
      for (let seed = first; seed < first + SLICE; seed++) {
        const trace = parseTraceText(serializeTrace(generateTrace({ seed, maxOps: 60 })), `seed-${seed}.jsonl`);
        for (const variant of ['v3', 'upstream']) {
          if (expectSameChecks(trace, variant) > 0) withFindings += 1;
          await pause();
        }
      }
    });
  }
  it('covered broken states as well as clean ones', () => {
    expect(withFindings).toBeGreaterThan(0);
    expect(withFindings).toBeLessThan(2 * SEEDS);
  });
});
