// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace shrink TRACE`: minimise a failing trace while it keeps the same failure (violation kind or
 * WARN, at the same function) on the same variant, and write the result in the trace format with a
 * comment header saying what it reproduces.
 *
 * Which failure: --kind (and --fn) when given; else the one named by the trace's `# ioptrace-fuzz:` tag
 * (every trace `ioptrace fuzz` saves has one); else the first failure the replay shows. Which variant:
 * --variant / --fix / --without when given; else the tag's; else upstream. Nothing is stored.
 */
import { writeFileSync } from 'node:fs';

import { describeKey } from '../../fuzz/dedupe.js';
import type { FailureKey } from '../../fuzz/dedupe.js';
import { replayFailures, reproducerText, tagFor, variantArgs } from '../../fuzz/fuzz.js';
import { shrinkTrace } from '../../fuzz/shrink.js';
import { readTag } from '../../fuzz/write.js';
import type { TraceTag } from '../../fuzz/write.js';
import { resolveVariant } from '../../kernel/variants.js';
import { UsageError } from '../errors.js';
import type { CommandOutput } from '../command.js';
import { defineCommand } from '../command.js';
import { VARIANT_OPTIONS, positive, text } from '../options.js';
import type { OptionValues } from '../options.js';
import { loadTrace, variantFromArgs } from './replay.js';

const DEFAULT_MAX_TESTS = 5000;

/** The variant of the command line, else of the tag, else upstream. */
function variantOf(
  values: OptionValues<typeof VARIANT_OPTIONS>,
  tag: TraceTag | null,
): { variant: string; fixes: string[] } {
  const given = values.variant !== undefined || values.fix.length > 0 || values.without.length > 0;
  if (given || tag === null) return variantFromArgs(values);
  try {
    const base = resolveVariant(tag.variant).fixes;
    const wanted = tag.fixes ?? base;
    // The tag lists the exact flags: add them all, remove the variant's others.
    const spec = resolveVariant(
      tag.variant,
      wanted,
      base.filter((f) => !wanted.includes(f)),
    );
    return { variant: spec.variant, fixes: spec.fixes };
  } catch (error) {
    throw new UsageError(`the trace's ioptrace-fuzz tag names ${(error as Error).message}`);
  }
}

/** TRACE.jsonl -> TRACE.min.jsonl. */
function defaultOut(path: string): string {
  return path.endsWith('.jsonl') ? `${path.slice(0, -'.jsonl'.length)}.min.jsonl` : `${path}.min.jsonl`;
}

export const shrinkCommand = defineCommand({
  name: 'shrink',
  summary: 'minimise a failing trace while it keeps the same violation (kind and function) on the variant',
  usage:
    'ioptrace shrink TRACE [--variant V] [--fix F]... [--without F]... [--kind K [--fn F]] [--max-tests N] [--out FILE] [--json]',
  help: [
    'Drops ops (ddmin, with the ops that depend on them), then shrinks sizes and counts, then simplifies',
    'layouts (no explicit pfns, 4K pages, default options), replaying every candidate in memory.',
    'The failure kept: --kind/--fn, else the one in the trace\'s "# ioptrace-fuzz:" tag, else the first one.',
    "The variant: --variant/--fix/--without, else the tag's, else upstream.",
    `Writes --out FILE (default TRACE.min.jsonl). At most --max-tests replays (default ${DEFAULT_MAX_TESTS}).`,
    'Exit 0 when the reproducer was written, 2 when the trace does not show the failure (or any).',
  ],
  options: {
    ...VARIANT_OPTIONS,
    kind: text(),
    fn: text(),
    'max-tests': positive(DEFAULT_MAX_TESTS),
    out: text(),
  },
  async run(positionals, values): Promise<CommandOutput> {
    const [path, ...extra] = positionals;
    if (path === undefined || extra.length > 0) throw new UsageError(`usage: ${this.usage}`);
    if (values.fn !== undefined && values.kind === undefined) throw new UsageError('--fn needs --kind');
    const maxTests = values['max-tests'];
    const out = values.out ?? defaultOut(path);

    const { text, trace } = await loadTrace(path);
    const tag = readTag(text);
    const { variant, fixes } = variantOf(values, tag);
    const ops = trace.entries.map((e) => e.op);
    const failures = replayFailures(trace.header, ops, variant, fixes);
    if (failures === null)
      throw new UsageError(`${path}: the trace does not survive being rewritten (report this as a bug)`);

    let target: FailureKey;
    if (values.kind !== undefined) {
      const kind = values.kind;
      const fn = values.fn ?? failures.find((f) => f.kind === kind)?.fn;
      if (fn === undefined) throw new UsageError(`${path} shows no failure of kind ${kind} on ${variant}`);
      target = { kind, fn };
    } else if (tag !== null) {
      target = { kind: tag.kind, fn: tag.fn };
    } else {
      const first = failures[0];
      if (first === undefined)
        throw new UsageError(`${path} shows no violation and no WARN on ${variant}: nothing to shrink`);
      target = first;
    }

    const result = shrinkTrace(trace.header, ops, {
      variant,
      fixes,
      target: { kind: target.kind, fn: target.fn },
      maxTests,
    });
    if (result === null) throw new UsageError(`${path} does not show ${describeKey(target)} on ${variant}`);

    const extraTag: Partial<TraceTag> = {};
    if (tag?.seed !== undefined) extraTag.seed = tag.seed;
    if (tag?.ops !== undefined) extraTag.ops = tag.ops;
    const body = reproducerText({
      header: result.header,
      ops: result.ops,
      variant,
      tag: tagFor(variant, fixes, result.failure, extraTag),
      failure: result.failure,
      about: [
        `Shrunk by ioptrace shrink from ${path}: ${result.before} ops -> ${result.after} ops in ${result.tests} replays${result.exhausted ? ' (budget ran out: may shrink further)' : ''}.`,
        `Replay: ioptrace replay ${out} ${variantArgs(variant, fixes)}`,
      ],
    });
    try {
      writeFileSync(out, body);
    } catch (error) {
      throw new UsageError(`cannot write ${out}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    const where = result.failure.op >= 1 && result.failure.op <= result.after ? `op ${result.failure.op}` : 'teardown';
    return {
      exitCode: 0,
      json: {
        trace: path,
        out,
        variant,
        flags: fixes,
        kind: result.failure.kind,
        function: result.failure.fn,
        detail: result.failure.detail,
        op: result.failure.op,
        before: result.before,
        after: result.after,
        replays: result.tests,
        exhausted: result.exhausted,
      },
      text: [
        `${path} (${result.before} ops) -> ${out} (${result.after} ops) in ${result.tests} replays on ${variant}${result.exhausted ? ' (budget ran out)' : ''}`,
        `  keeps ${describeKey(result.failure)} at ${where}: ${result.failure.detail}`,
      ],
    };
  },
});
