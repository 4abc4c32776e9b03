// SPDX-License-Identifier: GPL-2.0-only
/**
 * The findings of a stored run, where they happened: violations and WARNs are events (read by type, so only
 * the batches that hold them are read), unmet expectations come from comparing each op row with the `expect`
 * of its trace line (the replayer's own comparison, on the stored errno and result).
 */
import { decodeJson } from '../lib/codec.js';
import type { Event } from '../events/events.js';
import { parseTraceText } from '../replay/parse.js';
import { compareExpectation } from '../replay/replayer.js';
import type { Store, StoredOp } from '../store/index.js';

export interface Finding {
  kind: 'violation' | 'warn' | 'unmet';
  /** For a violation its kind (bad_free, pin_leak, ...); for a WARN its condition; for unmet the field. */
  what: string;
  /** The event it is (0 for an unmet expectation: it belongs to the op, not to one event). */
  seq: number;
  op: number;
  text: string;
}

/** Violations and WARNs of a run, in event order. */
async function eventFindings(store: Store, run: number): Promise<Finding[]> {
  const out: Finding[] = [];
  for await (const row of store.events(run, { types: ['ViolationDetected', 'Warned'] })) {
    const e = decodeJson(row.payload) as Event;
    if (e.type === 'ViolationDetected')
      out.push({
        kind: 'violation',
        what: e.kind,
        seq: row.seq,
        op: row.op,
        text: `${e.kind} in ${e.fn}: ${e.detail}`,
      });
    else if (e.type === 'Warned')
      out.push({ kind: 'warn', what: e.condition, seq: row.seq, op: row.op, text: `WARN in ${e.fn}: ${e.condition}` });
  }
  return out;
}

/** Ops whose result differs from the `expect` of their trace line. */
async function unmetExpectations(
  traceText: string | undefined,
  ops: Iterable<StoredOp> | AsyncIterable<StoredOp>,
): Promise<Finding[]> {
  if (traceText === undefined) return [];
  let entries;
  try {
    entries = parseTraceText(traceText, 'stored trace').entries;
  } catch {
    return []; // a stored trace always parsed once; one that no longer does has no expectations to show
  }
  const byLine = new Map(entries.map((e) => [e.line, e]));
  const out: Finding[] = [];
  for await (const op of ops) {
    const expect = byLine.get(op.line)?.op.expect;
    if (expect === undefined) continue;
    const outputs = decodeJson(op.result) as Record<string, unknown>;
    for (const m of compareExpectation(expect, op.errno, outputs, op.line, op.index)) {
      out.push({
        kind: 'unmet',
        what: m.field,
        seq: 0,
        op: op.index,
        text: `line ${m.line}: expected ${m.field} ${String(m.expected)}, got ${String(m.actual)}`,
      });
    }
  }
  return out;
}

/**
 * All findings of a run. `ops` are its op rows: the array the caller already holds, or a stream
 * (`opsInOrder`) when only the findings are wanted, so a long run's op table is never held whole for them.
 */
export async function runFindings(
  store: Store,
  run: number,
  ops: Iterable<StoredOp> | AsyncIterable<StoredOp>,
): Promise<Finding[]> {
  const fromEvents = await eventFindings(store, run);
  const unmet = await unmetExpectations(await store.traceText(run), ops);
  return [...fromEvents, ...unmet].sort((a, b) => a.op - b.op || a.seq - b.seq);
}

/** Counts by kind: `{ violation: 3, warn: 0, unmet: 0 }` and each violation kind by name. */
export function findingCounts(findings: readonly Finding[]): Record<string, number> {
  const counts: Record<string, number> = { violation: 0, warn: 0, unmet: 0 };
  for (const f of findings) {
    counts[f.kind] = (counts[f.kind] ?? 0) + 1;
    if (f.kind === 'violation') counts[f.what] = (counts[f.what] ?? 0) + 1;
  }
  return counts;
}
