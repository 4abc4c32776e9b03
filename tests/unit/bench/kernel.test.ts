// SPDX-License-Identifier: GPL-2.0-only
// B11 assembled from fixed numbers: traces per minute through the VM, the model's time beside it, the goal.
import { describe, expect, it } from 'vitest';
import { KERNEL_GOAL_PER_MINUTE, kernelResult } from '../../../bench/run.js';

const measured = {
  traces: 100,
  ops: 2400,
  vmSeconds: 50,
  bootSeconds: 2.5,
  boots: 1,
  finished: 100,
  modelSeconds: 0.5,
  comparedOps: 2300,
  disagreeingTraces: 3,
  load: 4,
};

describe('B11', () => {
  it('reports traces per minute through the VM against the model on the same traces', () => {
    const r = kernelResult('quick', measured);
    expect(r.id).toBe('B11');
    expect(r.figure).toBe('tracesPerMinute');
    expect(r.figures['tracesPerMinute']).toBe(120);
    expect(r.figures['modelTracesPerSec']).toBe(200);
    expect(r.limit).toEqual({ what: 'the model, same traces (traces per minute)', value: 12_000 });
    expect(r.ratio).toBe(0.01);
    expect(r.met).toBe(true);
  });

  it(`is not met below ${KERNEL_GOAL_PER_MINUTE} traces per minute`, () => {
    const r = kernelResult('quick', { ...measured, vmSeconds: 200 });
    expect(r.figures['tracesPerMinute']).toBe(30);
    expect(r.met).toBe(false);
    expect(r.notes.at(-1)).toContain('goal not met');
  });
});
