// SPDX-License-Identifier: GPL-2.0-only
// The full fail-nth sweep of every shipped fail_nth trace: minutes of CPU on a small machine, so it runs in
// the long suite (npm run test:long, and in CI after npm test), one test per trace, yielding between replays.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTraceFile } from '../../src/replay/parse.js';
import { sweepYielding } from '../support/sweep.js';

const SELFTEST = join(import.meta.dirname, '../../replays/selftest');
const traces = readdirSync(SELFTEST)
  .filter((f) => f.startsWith('fail_nth.') && f.endsWith('.jsonl'))
  .sort();

describe('fail-nth sweep of the fail_nth traces on upstream', () => {
  it('covers the seven shipped fail_nth traces', () => {
    expect(traces).toHaveLength(7);
  });

  for (const file of traces) {
    it(`${file}: no WARN and no violation at any N, and the last replay fires nothing`, async () => {
      const r = await sweepYielding(await parseTraceFile(join(SELFTEST, file)), 'upstream');
      expect(r.truncated).toBe(false);
      expect(r.steps.length).toBeGreaterThan(1);
      expect(r.steps.slice(0, -1).every((s) => s.fired)).toBe(true);
      expect(r.steps.at(-1)?.fired).toBe(false);
      expect(r.findings.map((f) => `N=${f.n} ${f.kind} ${f.fn}`)).toEqual([]);
    });
  }
});
