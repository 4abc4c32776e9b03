// SPDX-License-Identifier: GPL-2.0-only
/**
 * The kselftest harness's TAP output, read into one outcome per test. The harness prints, per test,
 * `#  RUN  fixture.variant.name ...`, then `ok N fixture.variant.name` or `not ok N ...`, with
 * ` # SKIP reason` appended when the test skipped itself, and a `# Totals:` line at the end.
 */

export type TapOutcome = 'pass' | 'fail' | 'skip';

export interface TapTest {
  number: number;
  name: string;
  outcome: TapOutcome;
  /** The SKIP or TODO reason, when the line carried one. */
  reason?: string;
}

export interface TapResult {
  tests: TapTest[];
  /** The `1..N` plan, when one was printed. */
  planned?: number;
  /** The harness's own `# Totals: pass:P fail:F ...` line, when printed. */
  totals?: { pass: number; fail: number; xfail: number; xpass: number; skip: number; error: number };
}

const RESULT = /^(not ok|ok) (\d+) (.*)$/;
const PLAN = /^1\.\.(\d+)$/;
const TOTALS = /^# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) skip:(\d+) error:(\d+)/;

export function parseTap(text: string): TapResult {
  const result: TapResult = { tests: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const plan = PLAN.exec(line);
    if (plan) {
      result.planned = Number(plan[1]);
      continue;
    }
    const totals = TOTALS.exec(line);
    if (totals) {
      const [pass, fail, xfail, xpass, skip, error] = totals.slice(1).map(Number) as [
        number,
        number,
        number,
        number,
        number,
        number,
      ];
      result.totals = { pass, fail, xfail, xpass, skip, error };
      continue;
    }
    const m = RESULT.exec(line);
    if (!m) continue;
    const [, status, num, rest] = m as unknown as [string, string, string, string];
    const hash = rest.indexOf(' # ');
    const name = (hash < 0 ? rest : rest.slice(0, hash)).trim();
    const directive = hash < 0 ? '' : rest.slice(hash + 3).trim();
    const skip = /^SKIP\b/i.exec(directive);
    const test: TapTest = {
      number: Number(num),
      name,
      outcome: skip ? 'skip' : status === 'ok' ? 'pass' : 'fail',
    };
    if (directive.length) test.reason = skip ? directive.slice(4).trim() : directive;
    result.tests.push(test);
  }
  return result;
}

export function countOutcomes(tests: readonly TapTest[]): Record<TapOutcome, number> {
  const counts: Record<TapOutcome, number> = { pass: 0, fail: 0, skip: 0 };
  for (const t of tests) counts[t.outcome]++;
  return counts;
}
