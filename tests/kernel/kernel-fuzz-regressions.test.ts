// SPDX-License-Identifier: GPL-2.0-only
// The kernel suite: the fuzz --against-kernel regression pairs (tests/fixtures/kernel-fuzz/) on the real
// 6.12.118 kernel again. Each trace must end as recorded (two of them hang the kernel: the runner kills them
// and stops the boot, so the traces after them go to a new one), give the recorded WARNs, and agree with the
// model on v6.12.y op by op.
import { describe, expect, it } from 'vitest';
import { buildKernel } from '../../src/groundtruth/kernel-build.js';
import { compareRun, kernelOutputOf, modelRun, warnSite } from '../../src/groundtruth/kernel-run.js';
import { runOnKernel } from '../../src/groundtruth/runner.js';
import { parseVariantSpec } from '../../src/kernel/variant-spec.js';
import { REGRESSION_PAIRS, regressionTrace } from '../support/kernel-fuzz-regressions.js';

const say = (m: string): void => {
  process.stderr.write(`${m}\n`);
};

describe('fuzz --against-kernel regression pairs on the real kernel', () => {
  it('every pair answers as recorded and agrees with the model on v6.12.y', async () => {
    const kernel = await buildKernel(say);
    const inputs = REGRESSION_PAIRS.map((p) => ({ name: p.name, trace: regressionTrace(p.name).trace }));
    const hangs = REGRESSION_PAIRS.filter((p) => p.how === 'timeout').length;
    const run = await runOnKernel(kernel, inputs, { say, traceTimeoutSeconds: 20, maxBoots: hangs + 2 });
    const v612 = parseVariantSpec('v6.12.y');
    for (const pair of REGRESSION_PAIRS) {
      const r = run.runs.get(pair.name);
      expect({ name: pair.name, how: r?.how }).toEqual({ name: pair.name, how: pair.how });
      const out = kernelOutputOf(r);
      expect(out.ops).toHaveLength(pair.answered);
      expect(out.ops.flatMap((o) => o.kmsg.map((k) => [o.op, warnSite(k)]))).toEqual(pair.warns);
      const { trace } = regressionTrace(pair.name);
      const cmp = compareRun(trace, out, modelRun(trace, v612));
      expect({ name: pair.name, disagreements: cmp.disagreements }).toEqual({ name: pair.name, disagreements: [] });
    }
  });
});
