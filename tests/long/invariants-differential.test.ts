// SPDX-License-Identifier: GPL-2.0-only
// The long differential sweep: thousands of generated traces (seeds 1000.., longer traces than the main
// suite's sample) on v3 and upstream, incremental invariant checker against the full one after every op.
// IOPTRACE_DIFFERENTIAL_SEEDS sets how many (default 3000).
import { describe } from 'vitest';
import { fuzzSeedsSuite } from '../support/differential.js';

const seeds = Number(process.env['IOPTRACE_DIFFERENTIAL_SEEDS'] ?? 3000);

describe('incremental invariant checker = full checker on thousands of generated traces', () => {
  fuzzSeedsSuite(1000, 1000 + seeds - 1, 50, 80);
});
