// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace replay TRACE`: replay a trace on a variant into the database. */
import { readFile } from 'node:fs/promises';
import { parseTraceText } from '../../replay/parse.js';
import { recordReplay } from '../../replay/record.js';
import { decodeUtf8Trace } from '../../replay/utf8.js';
import { DEFAULT_MAX_EVENTS } from '../../replay/replayer.js';
import type { ReplayResult } from '../../replay/replayer.js';
import { resolveVariant } from '../../kernel/variants.js';
import { openStore } from '../../store/index.js';
import { UsageError } from '../../lib/errors.js';
import type { Command, CommandOutput } from '../command.js';
import { intArg, listArg } from '../command.js';
import { Progress } from '../output.js';

export interface VariantArgs {
  variant: string;
  fixes: string[];
}

/** --variant / --fix / --without, resolved and checked. */
export function variantFromArgs(values: Record<string, unknown>, defaultVariant = 'upstream'): VariantArgs {
  try {
    const spec = resolveVariant(
      String(values['variant'] ?? defaultVariant),
      listArg(values['fix']),
      listArg(values['without']),
    );
    return { variant: spec.variant, fixes: spec.fixes };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export const VARIANT_OPTIONS = {
  variant: { type: 'string' },
  fix: { type: 'string', multiple: true },
  without: { type: 'string', multiple: true },
} as const;

/** Read and parse a trace file; a missing file or a bad trace is bad input (exit 2), nothing stored. */
export async function loadTrace(path: string): Promise<{ text: string; trace: ReturnType<typeof parseTraceText> }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new UsageError(`cannot read trace ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const text = decodeUtf8Trace(bytes, path);
  return { text, trace: parseTraceText(text, path) };
}

export function replaySummary(run: number | null, head: string | null, r: ReplayResult): Record<string, unknown> {
  return {
    run,
    variant: r.variant,
    flags: r.fixes,
    ops: r.ops.length,
    events: r.events,
    digest: r.digest,
    head,
    violations: r.violations.map((v) => ({
      kind: v.kind,
      function: v.fn,
      seq: v.seq,
      op: v.op,
      line: v.line,
      detail: v.detail,
    })),
    warns: r.warns.map((v) => ({
      kind: v.kind,
      function: v.fn,
      seq: v.seq,
      op: v.op,
      line: v.line,
      condition: v.detail,
    })),
    mismatches: r.mismatches.map((m) => ({
      line: m.line,
      op: m.op,
      field: m.field,
      expected: m.expected,
      actual: m.actual,
      ...(m.more !== undefined ? { more: m.more } : {}),
    })),
    results: r.ops.map((o) => ({ line: o.line, op: o.op, errno: o.errno, ...o.outputs })),
  };
}

export function findingLines(r: ReplayResult): string[] {
  return [
    ...r.violations.map(
      (v) => `  VIOLATION ${v.kind} in ${v.fn} (line ${v.line}, op ${v.op}, event ${v.seq}): ${v.detail}`,
    ),
    ...r.warns.map((v) => `  WARN in ${v.fn} (line ${v.line}, op ${v.op}, event ${v.seq}): ${v.detail}`),
    ...r.mismatches.flatMap((m) => [
      `  MISMATCH line ${m.line}: ${m.field} expected ${String(m.expected)}, got ${String(m.actual)}`,
      ...(m.more !== undefined ? [`  (and ${m.more} more at line ${m.line}, not listed)`] : []),
    ]),
  ];
}

export const replayCommand: Command = {
  name: 'replay',
  summary: 'replay a trace on a variant and store every event',
  usage:
    'ioptrace replay TRACE [--variant v3|merged|upstream] [--fix FLAG]... [--without FLAG]... [--fail-nth N] [--max-events N] [--progress] [--json] [--db FILE]',
  help: [
    'Exit 0 when the replay is clean, 1 when it found violations, WARNs or unmet expectations, 2 for a bad',
    'trace (nothing is stored). `ioptrace variants` lists the fix flags.',
    `--max-events N: the most events the run may emit (default ${DEFAULT_MAX_EVENTS}; 0 = no limit). A trace`,
    'that needs more is bad input: exit 2 naming the op that ran out of budget, and the run stays in the',
    'store as failed, with that reason.',
    '--progress: show progress on stderr even when it is not a terminal (it is shown on a terminal anyway),',
    'including the events of a long single op as they are emitted.',
  ],
  options: {
    ...VARIANT_OPTIONS,
    'fail-nth': { type: 'string' },
    'max-events': { type: 'string' },
    progress: { type: 'boolean', default: false },
  },
  async run(positionals, values, env): Promise<CommandOutput> {
    const [path, ...extra] = positionals;
    if (path === undefined || extra.length) throw new UsageError(`usage: ${this.usage}`);
    const { variant, fixes } = variantFromArgs(values);
    const failNth = values['fail-nth'] === undefined ? null : intArg(values['fail-nth'], '--fail-nth');
    const maxEvents =
      values['max-events'] === undefined ? DEFAULT_MAX_EVENTS : intArg(values['max-events'], '--max-events');
    const { text, trace } = await loadTrace(path);
    const store = await openStore(env.db);
    try {
      const progress = new Progress(trace.entries.length, `replay ${path}`, env.stderr, values['progress'] === true);
      let recorded;
      try {
        recorded = recordReplay(store, trace, {
          tracePath: path,
          traceText: text,
          variant,
          fixes,
          failNth,
          maxEvents,
          onOp: (op) => progress.update(op.index),
          onProgress: (p) => progress.inside(p.op, p.ops, p.line, p.name, p.opEvents),
        });
      } finally {
        progress.finish();
      }
      const { run, head, result } = recorded;
      const findings = result.violations.length + result.warns.length + result.mismatches.length;
      const text_ = [
        `run ${run}: ${path} on ${variant}${fixes.length && variant !== 'upstream' ? ` (+${fixes.length} fixes)` : ''}: ${result.ops.length} ops, ${result.events} events, digest ${result.digest}`,
        findings
          ? `${result.violations.length} violations, ${result.warns.length} WARNs, ${result.mismatches.length} mismatches:`
          : 'clean: no violation, no WARN, every expectation met',
        ...findingLines(result),
      ];
      return { exitCode: findings ? 1 : 0, json: replaySummary(run, head, result), text: text_ };
    } finally {
      await store.close();
    }
  },
};
