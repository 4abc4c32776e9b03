// SPDX-License-Identifier: GPL-2.0-only
/**
 * How the replayer checks the invariants after every op: incrementally (the default: what the op touched,
 * incremental.ts), in full (the whole state: the oracle), or both, comparing them (differential: throws
 * CheckerDivergence at the first op where they disagree, naming the finding and both answers).
 */
import type { Event } from '../../events/events.js';
import { encodeJson } from '../../lib/codec.js';
import { CheckerDivergence } from '../../lib/errors.js';
import type { Sim } from '../../machine/sim.js';
import type { InvariantFinding } from './finding.js';
import { IncrementalChecker } from './incremental.js';
import { invariantFindings, reportFindings } from './index.js';

export const CHECK_MODES = ['incremental', 'full', 'differential'] as const;
export type CheckMode = (typeof CHECK_MODES)[number];
export const DEFAULT_CHECK_MODE: CheckMode = 'incremental';

export interface InvariantChecker {
  readonly mode: CheckMode;
  /** Every event of the run, after its reducer ran. */
  observe(event: Event): void;
  /** Check the invariants at rest after op `op` and report what is new. */
  check(sim: Sim, op: number): void;
}

const text = (f: InvariantFinding | undefined): string | null =>
  f === undefined ? null : encodeJson({ kind: f.kind, detail: f.detail, objects: f.objects, signature: f.signature });

/** The first finding two lists disagree on (position by position), or null when they are equal. */
export function firstDifference(
  incremental: readonly InvariantFinding[],
  full: readonly InvariantFinding[],
): { key: string; incremental: string | null; full: string | null } | null {
  const n = Math.max(incremental.length, full.length);
  for (let k = 0; k < n; k++) {
    const a = incremental[k];
    const b = full[k];
    if (a !== undefined && b !== undefined && a.key === b.key && text(a) === text(b)) continue;
    const key = (a ?? b)?.key ?? '';
    return {
      key,
      incremental: text(incremental.find((f) => f.key === key)),
      full: text(full.find((f) => f.key === key)),
    };
  }
  return null;
}

export function createChecker(mode: CheckMode = DEFAULT_CHECK_MODE): InvariantChecker {
  if (mode === 'full') {
    return {
      mode,
      observe: () => undefined,
      check: (sim) => reportFindings(sim, invariantFindings(sim.state)),
    };
  }
  const inc = new IncrementalChecker();
  if (mode === 'incremental') {
    return {
      mode,
      observe: (e) => inc.observe(e),
      check: (sim) => reportFindings(sim, inc.findings(sim.state)),
    };
  }
  return {
    mode,
    observe: (e) => inc.observe(e),
    check: (sim, op) => {
      const mine = inc.findings(sim.state);
      const oracle = invariantFindings(sim.state);
      const diff = firstDifference(mine, oracle);
      if (diff !== null) throw new CheckerDivergence(op, diff.key, diff.incremental, diff.full);
      reportFindings(sim, oracle);
    },
  };
}
