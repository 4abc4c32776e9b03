// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fail-nth sweep, as tools/testing/selftests/iommu/iommufd_fail_nth.c runs it: replay the trace with
 * the Nth fault point failing, for N = 1, 2, ... until a replay completes without the injection firing.
 * Under injection any errno is acceptable (expectations are not compared); what must never happen is a
 * WARN, a violation, or a state that is not clean after teardown (checkTeardown reports those as
 * violations of the teardown op).
 */
import type { ParsedTrace } from './parse.js';
import { replay } from './replayer.js';
import type { Finding } from './replayer.js';

export interface SweepStep {
  n: number;
  fired: boolean;
  findings: Finding[];
  digest: string;
}

export interface SweepResult {
  /** Replays run, the last one being the one where nothing fired. */
  steps: SweepStep[];
  /** Every WARN and violation, with the N that produced it. */
  findings: (Finding & { n: number })[];
  /** True when the sweep stopped at maxN before a clean replay. */
  truncated: boolean;
}

export function failNthSweep(
  trace: ParsedTrace,
  options: {
    variant: string;
    fixes: readonly string[];
    /** Resume a sweep cut into slices (firstN..maxN each), e.g. to give an event loop a turn in between. */
    firstN?: number;
    maxN?: number;
    onStep?: (step: SweepStep) => void;
  },
): SweepResult {
  const maxN = options.maxN ?? 100_000;
  const steps: SweepStep[] = [];
  const findings: (Finding & { n: number })[] = [];
  for (let n = options.firstN ?? 1; n <= maxN; n++) {
    const r = replay(trace, { variant: options.variant, fixes: options.fixes, failNth: n });
    const stepFindings = [...r.warns, ...r.violations].sort((a, b) => a.seq - b.seq);
    const step: SweepStep = { n, fired: r.faultFired, findings: stepFindings, digest: r.digest };
    steps.push(step);
    for (const f of stepFindings) findings.push({ ...f, n });
    options.onStep?.(step);
    if (!r.faultFired) return { steps, findings, truncated: false };
  }
  return { steps, findings, truncated: true };
}
