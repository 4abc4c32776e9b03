// SPDX-License-Identifier: GPL-2.0-only
/**
 * Trace errors: a trace the contract refuses (bad JSON, unknown op or field, wrong type, out-of-range value,
 * a name that no earlier op created). Failures are data first (`TraceIssue`: line, field, message) and prose
 * last (`TraceError.message`), so tests and `--json` output can use the issues and a terminal the text.
 *
 * Also the bridge from zod: the error map that words zod's built-in issues for trace authors, and the walk
 * that turns zod issues into TraceIssues with the user's field path (`pfns.1.0`).
 */

import type { z } from 'zod';
import { describeValue, MISSING_FIELD } from '../events/trace.js';

/** One thing wrong with a trace. `field` is the dotted path of the field as written, null for the whole line. */
export interface TraceIssue {
  line: number;
  field: string | null;
  message: string;
}

/** How many issues `TraceError.message` spells out before "(and N more)". */
export const TRACE_ERROR_SHOWN_ISSUES = 5;

/** Render issues as `FILE:LINE: field FIELD: MESSAGE`, one per line, the first few only. */
export function renderTraceIssues(fileName: string, issues: readonly TraceIssue[], truncated = false): string {
  const lines = issues
    .slice(0, TRACE_ERROR_SHOWN_ISSUES)
    .map((issue) =>
      issue.field === null
        ? `${fileName}:${issue.line}: ${issue.message}`
        : `${fileName}:${issue.line}: field ${issue.field}: ${issue.message}`,
    );
  const more = issues.length - TRACE_ERROR_SHOWN_ISSUES;
  if (more > 0) {
    lines.push(truncated ? `(and ${more} more; stopped reading after ${issues.length})` : `(and ${more} more)`);
  }
  return lines.join('\n');
}

/** A trace refused whole: nothing of it may be replayed or stored. */
export class TraceError extends Error {
  override readonly name = 'TraceError';
  readonly fileName: string;
  readonly issues: readonly TraceIssue[];
  /** True when reading stopped at the issue cap, so later lines may hold more issues. */
  readonly truncated: boolean;

  constructor(fileName: string, issues: readonly TraceIssue[], truncated = false) {
    super(renderTraceIssues(fileName, issues, truncated));
    this.fileName = fileName;
    this.issues = issues;
    this.truncated = truncated;
  }
}

const ARTICLE_TYPES: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  boolean: 'a boolean',
  object: 'an object',
  array: 'an array',
  tuple: 'an array',
};

function listValues(values: readonly unknown[]): string {
  const shown = values.map((value) => JSON.stringify(value));
  return shown.length === 1 ? (shown[0] ?? '') : `one of ${shown.join(', ')}`;
}

/**
 * Words zod's built-in issues for trace authors. Pass it as the `error` of every parse of trace input;
 * messages the trace schemas set themselves take precedence over it.
 */
export const traceErrorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type':
      return iss.input === undefined
        ? MISSING_FIELD
        : `expected ${ARTICLE_TYPES[iss.expected] ?? iss.expected}, got ${describeValue(iss.input)}`;
    case 'invalid_value':
      if (iss.input === undefined) return MISSING_FIELD;
      return `expected ${listValues(iss.values)}, got ${describeValue(iss.input)}`;
    case 'unrecognized_keys':
      return 'unknown field';
    case 'invalid_union': {
      if (iss.discriminator === undefined) return undefined;
      const input = iss.input;
      const tag =
        typeof input === 'object' && input !== null ? (input as Record<string, unknown>)[iss.discriminator] : undefined;
      if (tag === undefined) return MISSING_FIELD;
      const options = 'options' in iss && Array.isArray(iss.options) ? iss.options.join(', ') : '';
      const what = iss.discriminator === 'observed' ? 'observation' : iss.discriminator;
      return `unknown ${what} ${describeValue(tag)}; expected one of: ${options}`;
    }
    case 'too_small':
      return iss.origin === 'array' ? `expected at least ${iss.minimum} items` : undefined;
    case 'too_big':
      return iss.origin === 'array' ? `expected at most ${iss.maximum} items` : undefined;
    default:
      return undefined;
  }
};

/** The fields an object accepts, named in "unknown field" messages for keys of that object. */
export interface KnownFields {
  /** What takes them, as the message names it ("mmap", "the header"). */
  subject: string;
  fields: readonly string[];
}

function joinPath(path: readonly PropertyKey[]): string | null {
  return path.length === 0 ? null : path.map((key) => String(key)).join('.');
}

/** A union branch that failed only because the value has another type (string vs object) is not the user's intent. */
function isTypeMismatch(branch: readonly z.core.$ZodIssue[]): boolean {
  return branch.every((issue) => issue.code === 'invalid_type' && issue.path.length === 0);
}

/**
 * Turn the issues of one line into TraceIssues: one per unknown key (that key as the field), the issues of
 * the only union branch whose type matched (so `"expect": {"iova": true}` names `expect.iova`), and
 * otherwise one per issue with its path joined by dots.
 */
export function traceIssuesFromZod(
  line: number,
  issues: readonly z.core.$ZodIssue[],
  known?: KnownFields,
): TraceIssue[] {
  const out: TraceIssue[] = [];
  const visit = (issue: z.core.$ZodIssue, prefix: readonly PropertyKey[]): void => {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      const message =
        path.length === 0 && known !== undefined
          ? `unknown field (${known.subject} takes: ${known.fields.join(', ')})`
          : 'unknown field';
      for (const key of issue.keys) out.push({ line, field: joinPath([...path, key]), message });
      return;
    }
    if (issue.code === 'invalid_union' && issue.discriminator === undefined) {
      const matching = issue.errors.filter((branch) => !isTypeMismatch(branch));
      const [only] = matching;
      if (matching.length === 1 && only !== undefined) {
        for (const inner of only) visit(inner, path);
        return;
      }
    }
    out.push({ line, field: joinPath(path), message: issue.message });
  };
  for (const issue of issues) visit(issue, []);
  return out;
}

/**
 * A trace that needs more events than the run's budget (`--max-events`). The input is too big for the
 * limit the user set (or the default), so it is bad input (exit 2), like a malformed trace.
 */
export class EventBudgetError extends Error {
  override readonly name = 'EventBudgetError';

  constructor(
    message: string,
    readonly maxEvents: number,
    /** The trace line of the op that was running when the budget ran out. */
    readonly line: number,
  ) {
    super(message);
  }
}
