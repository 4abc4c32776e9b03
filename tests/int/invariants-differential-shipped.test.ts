// SPDX-License-Identifier: GPL-2.0-only
// Every shipped trace on v3 and upstream with both invariant checkers after every op (differential mode
// throws at the first op where the incremental checker's findings differ from the full one's), and a replay
// under the incremental checker alone (the default) records the same findings, digest and events.
import { describe, expect, it } from 'vitest';
import { SHIPPED_TRACES } from '../support/heads.js';
import { DIFFERENTIAL_VARIANTS, differential, shippedTrace } from '../support/differential.js';
import { yieldToEventLoop } from '../support/yield.js';

describe('incremental invariant checker = full checker on the shipped traces', () => {
  it('covers every shipped trace', () => {
    expect(SHIPPED_TRACES).toHaveLength(50);
  });
  for (const path of SHIPPED_TRACES) {
    it(`${path} on ${DIFFERENTIAL_VARIANTS.join(' and ')}`, async () => {
      const trace = await shippedTrace(path);
      for (const variant of DIFFERENTIAL_VARIANTS) {
        const r = differential(trace, variant);
        expect(r.incremental, variant).toEqual(r.oracle);
        await yieldToEventLoop();
      }
    });
  }
});
