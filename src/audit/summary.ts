// SPDX-License-Identifier: GPL-2.0-only
/**
 * `audit --all`: every run of the database with its final counters (each counter summed over its owners)
 * and the rules it breaks, each with the op where it broke.
 */
import { variantLabel } from '../kernel/variant-spec.js';
import type { Store } from '../store/index.js';
import { COUNTER_NAMES, finalBalances, type CounterName } from './ledger.js';
import { reconcile } from './reconcile.js';
import { textTable } from './report.js';

export interface RunSummary {
  run: number;
  trace: string;
  /** The variant with its flags, in the one variant syntax (`v3+mmget-fail-no-kfree`). */
  variant: string;
  status: string;
  ops: number;
  /** Each counter's final total over its owners. */
  final: Record<CounterName, number>;
  ok: boolean;
  broken: { rule: string; op: number | null; line: number | null }[];
}

/** Audit every run of the store, in run order. */
export async function auditAll(store: Store): Promise<RunSummary[]> {
  const out: RunSummary[] = [];
  for (const row of await store.runs()) {
    const final = Object.fromEntries(COUNTER_NAMES.map((c) => [c, 0])) as Record<CounterName, number>;
    for (const b of await finalBalances(store, row.id)) final[b.counter] += b.value;
    const r = await reconcile(store, row.id);
    out.push({
      run: row.id,
      trace: row.tracePath,
      variant: variantLabel(row.variant, row.flags),
      status: row.status,
      ops: row.opCount,
      final,
      ok: r.ok,
      broken: r.rules.filter((x) => !x.ok).map((x) => ({ rule: x.rule, op: x.op, line: x.line })),
    });
  }
  return out;
}

/** The summary table for a person. */
export function summaryText(rows: readonly RunSummary[]): string[] {
  if (rows.length === 0) return ['no runs in the database'];
  const bad = rows.filter((r) => !r.ok).length;
  return [
    ...textTable(
      ['run', 'trace', 'variant', 'status', 'ops', ...COUNTER_NAMES, 'broken rules (op)'],
      rows.map((r) => [
        String(r.run),
        r.trace,
        r.variant,
        r.status,
        String(r.ops),
        ...COUNTER_NAMES.map((c) => String(r.final[c])),
        r.ok ? '-' : r.broken.map((b) => `${b.rule} (${b.op ?? '-'})`).join(', '),
      ]),
    ),
    '',
    bad ? `${bad} of ${rows.length} runs do not balance` : `all ${rows.length} runs balance`,
  ];
}
