// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace replay TRACE`: replay a trace on a variant into the database. */
import { isAscii } from 'node:buffer';
import { readFile } from 'node:fs/promises';
import { parseTraceText, streamTraceText } from '../../replay/parse.js';
import type { StreamedTrace } from '../../replay/parse.js';
import { recordReplay } from '../../replay/record.js';
import { decodeUtf8Trace } from '../../replay/utf8.js';
import { DEFAULT_MAX_EVENTS } from '../../replay/replayer.js';
import type { ReplayResult } from '../../replay/replayer.js';
import { DEFAULT_VARIANT, variantFromOptions } from '../../kernel/variant-spec.js';
import type { NamedVariant } from '../../kernel/variant-spec.js';
import { openStore } from '../../store/index.js';
import { UsageError } from '../errors.js';
import type { CommandOutput } from '../command.js';
import { defineCommand } from '../command.js';
import { VARIANT_OPTIONS, failNth, flag, maxEvents } from '../options.js';
import { Progress } from '../output.js';

export type VariantArgs = NamedVariant;

/** --variant SPEC / --fix / --without (VARIANT_OPTIONS), resolved and checked (src/kernel/variant-spec.ts). */
export function variantFromArgs(
  values: { variant: string | undefined; fix: readonly string[]; without: readonly string[] },
  defaultVariant = DEFAULT_VARIANT,
): VariantArgs {
  return variantFromOptions(values.variant ?? defaultVariant, values.fix, values.without);
}

/** The --help lines on the variant options. */
export const VARIANT_HELP = [
  `--variant V: v3, merged, upstream or a kernel release (v6.12, v6.12.y; default ${DEFAULT_VARIANT}), then +FLAG / -FLAG to add or remove fixes,`,
  'e.g. v3+mmget-fail-no-kfree; --fix FLAG and --without FLAG do the same. `ioptrace variants` lists the flags.',
];

/**
 * A trace file's text; a missing file or bytes that are not UTF-8 are bad input (exit 2). An ASCII trace
 * (the usual JSON) is decoded as Latin-1, the same characters, which node hands V8 as an external string,
 * outside its heap: a replay holds the text throughout, and on the heap a long trace would raise the heap
 * V8 lets grow between collections by several times its size (B8: a 60 MiB text adds 260 MiB of peak RSS
 * on the heap, 62 MiB outside it).
 */
export async function readTraceFile(path: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new UsageError(`cannot read trace ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return isAscii(bytes) ? bytes.toString('latin1') : decodeUtf8Trace(bytes, path);
}

/** Read and parse a trace file; a missing file or a bad trace is bad input (exit 2), nothing stored. */
export async function loadTrace(path: string): Promise<{ text: string; trace: ReturnType<typeof parseTraceText> }> {
  const text = await readTraceFile(path);
  return { text, trace: parseTraceText(text, path) };
}

/**
 * Read and check a trace file whole, then hand its ops out one at a time as the replay asks (streamTraceText):
 * a long trace's ops are never all parsed at once. The same errors as loadTrace.
 */
export async function loadStreamedTrace(path: string): Promise<{ text: string; trace: StreamedTrace }> {
  const text = await readTraceFile(path);
  return { text, trace: streamTraceText(text, path) };
}

export function replaySummary(run: number | null, head: string | null, r: ReplayResult): Record<string, unknown> {
  return {
    run,
    variant: r.variant,
    flags: r.fixes,
    ops: r.opCount,
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
    hung: r.hung,
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

export const replayCommand = defineCommand({
  name: 'replay',
  summary: 'replay a trace on a variant and store every event',
  usage:
    'ioptrace replay TRACE [--variant V] [--fix FLAG]... [--without FLAG]... [--fail-nth N] [--max-events N] [--progress] [--json] [--db FILE]',
  help: [
    ...VARIANT_HELP,
    'Exit 0 when the replay is clean, 1 when it found violations, WARNs or unmet expectations, 2 for a bad',
    'trace (nothing is stored), 3 when the replay failed part way (the store could not write, a value too',
    'large): the run is then marked failed with the reason, which `ioptrace runs` shows.',
    '`ioptrace variants` lists the fix flags.',
    `--max-events N: the most events the run may emit (default ${DEFAULT_MAX_EVENTS}; 0 = no limit). A trace`,
    'that needs more is bad input: exit 2 naming the op that ran out of budget, and the run stays in the',
    'store as failed, with that reason.',
    '--progress: show progress on stderr even when it is not a terminal (it is shown on a terminal anyway),',
    'including the events of a long single op as they are emitted.',
  ],
  options: {
    ...VARIANT_OPTIONS,
    'fail-nth': failNth(),
    'max-events': maxEvents(),
    progress: flag(),
  },
  async run(positionals, values, env): Promise<CommandOutput> {
    const [path, ...extra] = positionals;
    if (path === undefined || extra.length) throw new UsageError(`usage: ${this.usage}`);
    const { label, fixes } = variantFromArgs(values);
    const failNth = values['fail-nth'];
    const maxEvents = values['max-events'];
    const { text, trace } = await loadStreamedTrace(path);
    const store = await openStore(env.db);
    try {
      const progress = new Progress(trace.opCount, `replay ${path}`, env.stderr, values.progress);
      let recorded: Awaited<ReturnType<typeof recordReplay>>;
      try {
        // A replay that fails part way throws a StoreError naming the cause (exit 3); the run is marked failed.
        recorded = await recordReplay(store, trace, {
          tracePath: path,
          traceText: text,
          variant: label,
          fixes,
          failNth,
          maxEvents,
          // Only --json prints every op's result; the text needs the count alone.
          keepOps: env.json,
          onOp: (op) => progress.update(op.index),
          onProgress: (p) => progress.inside(p.op, p.ops, p.line, p.name, p.opEvents),
        });
      } finally {
        progress.finish();
      }
      const { run, head, result } = recorded;
      const findings = result.violations.length + result.warns.length + result.mismatches.length;
      const text_ = [
        `run ${run}: ${path} on ${label}: ${result.opCount} ops, ${result.events} events, digest ${result.digest}`,
        findings
          ? `${result.violations.length} violations, ${result.warns.length} WARNs, ${result.mismatches.length} mismatches:`
          : 'clean: no violation, no WARN, every expectation met',
        ...findingLines(result),
        ...(result.hung === null
          ? []
          : [
              `  HUNG at op ${result.hung.op} (line ${result.hung.line}): task ${result.hung.task} never returns from ` +
                `mmap_${result.hung.mode}_lock of mm ${result.hung.mm} in ${result.hung.fn}; the trace's later ops and the teardown did not run`,
            ]),
      ];
      return { exitCode: findings ? 1 : 0, json: replaySummary(run, head, result), text: text_ };
    } finally {
      await store.close();
    }
  },
});
