// SPDX-License-Identifier: GPL-2.0-only
/**
 * The audit's one-line verdict. The rules only check the accounting; a run whose books balance can still
 * hold violations (a bad free, an mmput underflow) that touch no counter. A green "the books balance" on
 * such a run reads as "all is well", so the verdict names the run's violations and WARNs as well, and is
 * only good news when there are none.
 */
import { decodeJson } from '../lib/codec.js';
import { FINDING_EVENTS } from '../events/groups.js';
import type { Store } from '../store/index.js';

/** The violations and WARNs of a run, by kind, in the order they were first found. */
export interface RunFindings {
  violations: number;
  warns: number;
  /** Each violation kind with how many times it occurred. */
  kinds: { kind: string; count: number }[];
}

export async function runFindings(store: Store, run: number): Promise<RunFindings> {
  const kinds = new Map<string, number>();
  let violations = 0;
  let warns = 0;
  for await (const e of store.events(run, { types: FINDING_EVENTS })) {
    if (e.type === 'Warned') {
      warns += 1;
      continue;
    }
    violations += 1;
    const { kind } = decodeJson(e.payload) as { kind: string };
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return { violations, warns, kinds: [...kinds].map(([kind, count]) => ({ kind, count })) };
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** What the run's findings add to the verdict, or '' when it has none. */
function findingsText(f: RunFindings): string {
  const parts: string[] = [];
  if (f.violations > 0) {
    const kinds = f.kinds.map((k) => (k.count > 1 ? `${k.kind} x${k.count}` : k.kind)).join(', ');
    parts.push(`${plural(f.violations, 'violation')} (${kinds})`);
  }
  if (f.warns > 0) parts.push(plural(f.warns, 'WARN'));
  return parts.join(' and ');
}

/** The verdict, and whether it is good news (no broken rule, no violation, no WARN). */
export function auditVerdict(
  run: number,
  brokenRules: number,
  totalRules: number,
  f: RunFindings,
): { ok: boolean; text: string } {
  const findings = findingsText(f);
  if (brokenRules > 0) {
    return {
      ok: false,
      text: `${brokenRules} of ${totalRules} rules broken${findings ? `; the run also has ${findings}` : ''}`,
    };
  }
  if (findings) {
    return {
      ok: false,
      text: `the accounting rules hold (all ${totalRules}), but the run has ${findings}: see ioptrace log ${run} --type ViolationDetected`,
    };
  }
  return { ok: true, text: `the books balance: all ${totalRules} rules hold, no violation, no WARN` };
}
