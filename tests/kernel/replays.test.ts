// SPDX-License-Identifier: GPL-2.0-only
// The kernel suite (`npm run test:kernel`): every shipped trace of replays/ (and replays/selftest/), exported
// as C and run in one boot of the real 6.12.118 kernel, gives the same results as the model on v6.12.y op by
// op: errnos, IOVAs, data, check answers, WARN sites. Ops a program cannot perform (and every op after the
// first such op) are not compared; each trace says which, and still runs to its end on the kernel.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runKernelBatch } from '../../src/groundtruth/kernel-batch.js';
import { parseVariantSpec } from '../../src/kernel/variant-spec.js';

const traces = ['replays', 'replays/selftest'].flatMap((dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort()
    .map((f) => join(dir, f)),
);

describe('the shipped traces on the real kernel', () => {
  it('agree with the model on v6.12.y on every exportable op', async () => {
    expect(traces.length).toBeGreaterThanOrEqual(31);
    const r = await runKernelBatch(traces, parseVariantSpec('v6.12.y'), {
      say: (m) => process.stderr.write(`${m}\n`),
    });
    expect(r.vm.completed).toBe(true);
    expect(r.traces.map((t) => t.path)).toEqual(traces);
    const outcome = r.traces.map((t) => ({
      path: t.path,
      ended: t.kernel.ended,
      disagreements: t.disagreements.map(
        (d) => `${d.line ?? 'teardown'}: ${d.kind}: kernel ${d.kernel}, model ${d.model}`,
      ),
    }));
    expect(outcome).toEqual(traces.map((path) => ({ path, ended: true, disagreements: [] })));
    // Most of each selftest trace is compared: the gate is not passed by exporting nothing.
    const compared = r.traces.reduce((n, t) => n + t.compared, 0);
    expect(compared).toBeGreaterThan(14_000);
  });
});
