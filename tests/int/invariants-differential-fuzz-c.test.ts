// SPDX-License-Identifier: GPL-2.0-only
// Generated traces (the fuzzer's generator), seeds 161..240, on v3 and upstream in differential mode: the
// incremental invariant checker must report exactly the full checker's findings after every op. Split over
// three files (a, b, c: 240 seeds) so that no file keeps a worker long; tests/long/ runs thousands.
import { describe } from 'vitest';
import { fuzzSeedsSuite } from '../support/differential.js';

describe('incremental invariant checker = full checker on generated traces', () => {
  fuzzSeedsSuite(161, 240);
});
