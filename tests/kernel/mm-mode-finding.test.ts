// SPDX-License-Identifier: GPL-2.0-only
// The kernel suite (`npm run test:kernel`, vitest.kernel.config.ts; needs the cached ground-truth kernel or
// builds it): the MM-mode finding, exported as C and run on the real 6.12.118 kernel in the VM, WARNs in
// pfn_reader_destroy at the same op as the model on v6.12.y, and the two agree on every op.
import { describe, expect, it } from 'vitest';
import { runKernelBatch } from '../../src/groundtruth/kernel-batch.js';
import { warnSite } from '../../src/groundtruth/kernel-run.js';
import { parseVariantSpec } from '../../src/kernel/variant-spec.js';
import { modelRun } from '../../src/groundtruth/kernel-run.js';
import { parseTraceText } from '../../src/replay/parse.js';
import { readFileSync } from 'node:fs';

const PATH = 'tests/fixtures/findings/mm-mode-stale-last-npinned.jsonl';

describe('the MM-mode finding on the real kernel', () => {
  it('WARNs in pfn_reader_destroy at op 10 (line 17) on the kernel and in the model, with no disagreement', async () => {
    const variant = parseVariantSpec('v6.12.y');
    const r = await runKernelBatch([PATH], variant, { say: (m) => process.stderr.write(`${m}\n`) });
    const [t] = r.traces;
    expect(r.vm.completed).toBe(true);
    expect(t?.kernel.ended).toBe(true);
    const op10 = t?.kernel.ops.find((o) => o.op === 10);
    expect(op10?.line).toBe(17);
    expect(op10?.errno).toBe('EFAULT');
    expect(op10?.kmsg.map(warnSite)).toEqual(['pfn_reader_destroy']);
    expect(t?.kernel.ops.filter((o) => o.kmsg.length > 0).map((o) => o.op)).toEqual([10]);
    const model = modelRun(parseTraceText(readFileSync(PATH, 'utf8'), PATH), variant);
    expect(model.warns.map((w) => [w.op, w.fn])).toEqual([[10, 'pfn_reader_destroy']]);
    expect(t?.disagreements).toEqual([]);
    expect(t?.compared).toBe(10);
  });
});
