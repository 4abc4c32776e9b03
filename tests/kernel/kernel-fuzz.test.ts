// SPDX-License-Identifier: GPL-2.0-only
// The kernel suite: the trace runner and fuzz --against-kernel's shrink on the real 6.12.118 kernel. The
// MM-mode finding compared with the model on v6.12.y plus the proposed fix mm-mode-uncharge-dead-mm is a
// disagreement by construction: the kernel WARNs in pfn_reader_destroy at op 10, the fixed model does not.
// Shrinking it with the kernel in the loop keeps that disagreement. It is no kernel defect *candidate*: the
// model on upstream WARNs there too (the model predicted this kernel defect).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildKernel } from '../../src/groundtruth/kernel-build.js';
import { isKernelDefectCandidate } from '../../src/groundtruth/kernel-fuzz.js';
import { compareRun, modelRun, parseKernelOutput } from '../../src/groundtruth/kernel-run.js';
import { disagreementKey, shrinkOnKernel } from '../../src/groundtruth/kernel-shrink.js';
import { runOnKernel } from '../../src/groundtruth/runner.js';
import { parseVariantSpec } from '../../src/kernel/variant-spec.js';
import { parseTraceText } from '../../src/replay/parse.js';

const PATH = 'tests/fixtures/findings/mm-mode-stale-last-npinned.jsonl';
const say = (m: string): void => {
  process.stderr.write(`${m}\n`);
};

describe('fuzz --against-kernel on the real kernel', () => {
  it('runs a batch in one boot, shrinks a disagreement with the kernel in the loop, labels it', async () => {
    const kernel = await buildKernel(say);
    const trace = parseTraceText(readFileSync(PATH, 'utf8'), PATH);
    const fixed = parseVariantSpec('v6.12.y+mm-mode-uncharge-dead-mm');
    const run = await runOnKernel(kernel, [{ name: 'finding', trace }], { say });
    expect(run.boots).toHaveLength(1);
    expect(run.runs.get('finding')?.how).toBe('exit');
    const cmp = compareRun(trace, parseKernelOutput(run.runs.get('finding')?.output ?? ''), modelRun(trace, fixed));
    const first = cmp.disagreements[0];
    expect(first).toMatchObject({ op: 10, kind: 'warn', kernel: 'pfn_reader_destroy', model: 'none' });
    expect(isKernelDefectCandidate(first!, trace)).toBe(false);
    const key = disagreementKey(first!);
    const shrunk = await shrinkOnKernel(
      { ...trace.header },
      trace.entries.map((e) => e.op),
      first!,
      { kernel, variant: fixed, key, maxBoots: 4, say },
    );
    expect(shrunk.flaky).toBe(false);
    expect(shrunk.after).toBeLessThanOrEqual(10);
    expect(disagreementKey(shrunk.disagreement)).toBe(key);
  });
});
