// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace bisect RUN_A RUN_B` and `ioptrace bisect TRACE --variants A,B`: where two runs of one trace stop
 * agreeing, and what differs there (src/bisect/bisect-runs.ts). Exit 0 when the runs agree, 1 when they
 * diverge (as diff(1)), 2 for bad arguments.
 */
import { bisectRuns, bisectVariants } from '../../bisect/bisect-runs.js';
import { DEFAULT_EVENT_ROWS, bisectJson, renderBisect } from '../../bisect/render.js';
import { parseVariantSpec } from '../../kernel/variant-spec.js';
import { UsageError } from '../errors.js';
import { openStore } from '../../store/index.js';
import type { CommandOutput } from '../command.js';
import { defineCommand, intArg } from '../command.js';
import { choice, commaList, failNth, flag, int } from '../options.js';
import { loadTrace } from './replay.js';

export const bisectCommand = defineCommand({
  name: 'bisect',
  summary: 'the first op where two runs of a trace diverge, and what differs there',
  usage:
    'ioptrace bisect RUN_A RUN_B [--align prefix] [--strict] [--events N] [--json] [--db FILE]\n' +
    '       ioptrace bisect TRACE --variants A,B [--fail-nth N] [--strict] [--events N] [--json] [--db FILE]',
  help: [
    'Runs are aligned by op (0 setup, 1..N the trace, N+1 teardown) and compared on the state digest after each',
    'op, its errno and its result. At the first op that differs: the structural diff of the two states just',
    "after it, the effects only one run had, and the op's events side by side. Runs of different traces are",
    'refused unless --align prefix (compare the ops both traces start with).',
    'What is compared is what the kernel holds: pins, page tables, xarrays, trees, IO page tables, accounting',
    'and live allocations by owner and size. Which function allocated an object (renamed by a refactor) is',
    'provenance, and the IOVA alignment of an IOAS is derived from the variant ([merged] counts each access):',
    'both are shown but not counted as a divergence; --strict counts them.',
    'With TRACE --variants A,B the trace is replayed on both variants into the database first. A variant is',
    'a name (v3, merged, upstream, a release v6.2 ... or a stable series such as v6.12.y) with +FLAG / -FLAG added, e.g. v3+mmget-fail-no-kfree, upstream-carry-end-one.',
    'Exit 0 when the runs agree, 1 when they diverge.',
  ],
  options: {
    variants: commaList(),
    align: choice(['same', 'prefix']),
    strict: flag(),
    events: int(DEFAULT_EVENT_ROWS),
    'fail-nth': failNth(),
  },
  async run(positionals, values, env): Promise<CommandOutput> {
    const { strict, events: eventRows } = values;
    if (values.variants !== undefined) {
      const [path, ...extra] = positionals;
      if (path === undefined || extra.length) throw new UsageError(`usage: ${this.usage}`);
      if (values.align !== undefined)
        throw new UsageError('--align is for two stored runs; --variants replays one trace');
      const specs = values.variants;
      if (specs.length !== 2) throw new UsageError(`--variants takes two variants, A,B; got "${specs.join(',')}"`);
      const [a, b] = specs.map(parseVariantSpec) as [
        ReturnType<typeof parseVariantSpec>,
        ReturnType<typeof parseVariantSpec>,
      ];
      const failNth = values['fail-nth'];
      const { text, trace } = await loadTrace(path);
      const store = await openStore(env.db);
      try {
        const report = await bisectVariants(store, trace, { tracePath: path, traceText: text }, a, b, {
          strict,
          failNth,
        });
        return {
          exitCode: report.divergence === null ? 0 : 1,
          json: bisectJson(report),
          text: renderBisect(report, eventRows),
        };
      } finally {
        await store.close();
      }
    }
    if (positionals.length !== 2) throw new UsageError(`usage: ${this.usage}`);
    if (values['fail-nth'] !== null)
      throw new UsageError('--fail-nth is for TRACE --variants; stored runs keep their own fault plan');
    const runA = intArg(positionals[0], 'RUN_A');
    const runB = intArg(positionals[1], 'RUN_B');
    const align = values.align ?? 'same';
    const store = await openStore(env.db, { readonly: true });
    try {
      const report = await bisectRuns(store, runA, runB, { align, strict });
      return {
        exitCode: report.divergence === null ? 0 : 1,
        json: bisectJson(report),
        text: renderBisect(report, eventRows),
      };
    } finally {
      await store.close();
    }
  },
});
