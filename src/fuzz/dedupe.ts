// SPDX-License-Identifier: GPL-2.0-only
/**
 * What counts as a failure of a replay, and deduplication of failures by (kind, function).
 *
 * A failure is any ViolationDetected (the invariant checks report as violations of kind 'invariant',
 * 'accounting_mismatch', 'pin_leak', ...) or Warned finding (kind 'warn'), identified by its kind and the
 * function that reported it; or an exception out of the model (kind 'internal_error', fn = the function
 * that threw), which is a defect of ioptrace itself, not of the kernel. Unmet expectations are not failures
 * here: generated traces carry none.
 *
 * A tally counts, per key, the traces that showed it (not the findings: one trace can WARN many times at
 * the same place), and keeps the first trace's sample. Keys are reported in the order they were first seen.
 */
import type { Finding, ReplayResult } from '../replay/replayer.js';

/** The identity of a failure. */
export interface FailureKey {
  kind: string;
  fn: string;
}

/** One failure as seen in one replay: its key and the first finding with that key. */
export interface Failure extends FailureKey {
  detail: string;
  /** The op (1-based index into the trace, trace length + 1 = teardown) and line where it happened. */
  op: number;
  line: number;
}

export const INTERNAL_ERROR = 'internal_error';

export function keyOf(key: FailureKey): string {
  return `${key.kind}\u0000${key.fn}`;
}

/** "VIOLATION bad_free in pfn_reader_user_pin", "WARN in iopt_release_pages". */
export function describeKey(key: FailureKey): string {
  if (key.kind === 'warn') return `WARN in ${key.fn}`;
  if (key.kind === INTERNAL_ERROR) return `internal error of the model in ${key.fn}`;
  return `VIOLATION ${key.kind} in ${key.fn}`;
}

/** Every distinct failure of a replay, first occurrence each, in event order. */
export function failuresOf(result: Pick<ReplayResult, 'violations' | 'warns'>): Failure[] {
  const all: Finding[] = [...result.violations, ...result.warns].sort((a, b) => a.seq - b.seq);
  const seen = new Set<string>();
  const out: Failure[] = [];
  for (const f of all) {
    const k = keyOf(f);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({ kind: f.kind, fn: f.fn, detail: f.detail, op: f.op, line: f.line });
  }
  return out;
}

/** The failure an exception out of the model stands for: keyed by the function that threw. */
export function failureOfError(error: unknown): Failure {
  const e = error instanceof Error ? error : new Error(String(error));
  // The first stack frame names the throwing function ("    at ioasOf (file:line:col)").
  const frame = /\n\s+at (?:async )?([^\s(]+)/.exec(e.stack ?? '');
  const fn = frame?.[1]?.replace(/^Object\./, '') ?? e.name;
  return { kind: INTERNAL_ERROR, fn, detail: `${e.name}: ${e.message}`, op: 0, line: 0 };
}

/** A deduplicated failure: how many traces showed it, and the first one's details. */
export interface TallyEntry<S> extends FailureKey {
  count: number;
  first: S;
}

/** Counts failures by (kind, fn), keeping the first sample of each. */
export class FailureTally<S> {
  private readonly entries = new Map<string, TallyEntry<S>>();

  /** Count one trace showing `key`; true when the key is new (the sample is then kept). */
  add(key: FailureKey, sample: S): boolean {
    const k = keyOf(key);
    const entry = this.entries.get(k);
    if (entry !== undefined) {
      entry.count += 1;
      return false;
    }
    this.entries.set(k, { kind: key.kind, fn: key.fn, count: 1, first: sample });
    return true;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The entries in the order their keys were first seen. */
  list(): TallyEntry<S>[] {
    return [...this.entries.values()];
  }
}
