// SPDX-License-Identifier: GPL-2.0-only
// Restructuring must not change what a run records: the digest and both chain heads of every shipped trace
// on every variant equal the values pinned in tests/fixtures/heads.json (written by tests/support/pin-heads.ts).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HEADS_FIXTURE, PINNED_VARIANTS, SHIPPED_TRACES, computeHeadsOf } from '../support/heads.js';
import type { Heads } from '../support/heads.js';

const pinned = JSON.parse(readFileSync(HEADS_FIXTURE, 'utf8')) as Record<string, Heads>;

describe('digests and hash-chain heads of the shipped traces', () => {
  it('are pinned for every shipped trace on v3, merged and upstream', () => {
    expect(SHIPPED_TRACES).toHaveLength(50);
    const keys = SHIPPED_TRACES.flatMap((t) => PINNED_VARIANTS.map((v) => `${t}@${v}`));
    expect(Object.keys(pinned).sort()).toEqual(keys.sort());
  });

  for (const path of SHIPPED_TRACES) {
    for (const variant of PINNED_VARIANTS) {
      it(`${path} on ${variant}: equal the pinned values`, async () => {
        const key = `${path}@${variant}`;
        expect(await computeHeadsOf(path, variant)).toEqual({ [key]: pinned[key] });
      });
    }
  }
});
