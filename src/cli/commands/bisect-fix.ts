// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace bisect-fix TRACE [--good upstream] [--bad v3]`: the first fix flag, in upstream order, whose
 * addition changes the trace's outcome (src/bisect/bisect-fix.ts). Replays run in memory; --record stores
 * the two variants around the first change so that `bisect` and time travel can look at them.
 * Exit 0 for one change (a clean answer), 1 when there are several or none, 2 for bad arguments.
 */
import { bisectFix, variantAt } from '../../bisect/bisect-fix.js';
import { bisectFixJson, renderBisectFix } from '../../bisect/render.js';
import { UsageError } from '../errors.js';
import { recordReplay } from '../../replay/record.js';
import { openStore } from '../../store/index.js';
import type { CommandOutput } from '../command.js';
import { defineCommand } from '../command.js';
import { failNth, flag, text } from '../options.js';
import { parseVariantSpec } from '../../kernel/variant-spec.js';
import { loadTrace } from './replay.js';

export const bisectFixCommand = defineCommand({
  name: 'bisect-fix',
  summary: "the first fix flag (in upstream order) whose addition changes a trace's outcome",
  usage:
    'ioptrace bisect-fix TRACE [--good upstream] [--bad v3] [--all] [--diff] [--record] [--fail-nth N] [--json] [--db FILE]',
  help: [
    'Walks the fix flags of spec section 17 from the bad variant to the good one in upstream order, as git',
    'bisect walks commits, in O(log F) replays. The outcome of a replay is its violations and WARNs (kind and',
    'function), its unmet expectations and its final state digest. The answer ("fixed by") is the flag that',
    "removes the bad run's first violation (its first WARN if it has none), with its upstream commit, spec",
    'section and the first op where the variants just before and after it disagree. Every finding of the bad',
    'run is listed with the flag that removes it, every finding a step introduces with the flag that did.',
    'If the outcome changes more than once along the flag order, every change found is listed; --all replays',
    'every step, which also finds changes that a later flag undoes. --diff adds the state diff at each change;',
    '--record stores the two variants around the answer in the database (then: ioptrace bisect A B).',
    'Variants: a name (v3, merged, upstream, a release such as v6.12, a stable series such as v6.12.y) with +FLAG / -FLAG, e.g. --bad merged+carry-store-order.',
    'Exit 0 for exactly one change, 1 for several or none.',
  ],
  options: {
    good: text('upstream'),
    bad: text('v3'),
    all: flag(),
    diff: flag(),
    record: flag(),
    'fail-nth': failNth(),
  },
  async run(positionals, values, env): Promise<CommandOutput> {
    const [path, ...extra] = positionals;
    if (path === undefined || extra.length) throw new UsageError(`usage: ${this.usage}`);
    const good = parseVariantSpec(values.good);
    const bad = parseVariantSpec(values.bad);
    const failNth = values['fail-nth'];
    const { text, trace } = await loadTrace(path);
    const report = bisectFix(
      trace,
      { variant: good.label, fixes: good.fixes },
      { variant: bad.label, fixes: bad.fixes },
      {
        all: values.all,
        diff: values.diff,
        failNth,
      },
    );
    const lines = renderBisectFix(report, path);
    const json = bisectFixJson(report);
    // The headline flag: the one that removes the bad run's first violation, else the first change.
    const first = report.answer ?? report.flips[0];
    if (values.record && first !== undefined) {
      const store = await openStore(env.db);
      try {
        const runs: number[] = [];
        for (const k of [first.k - 1, first.k]) {
          const spec = variantAt(report.bad, report.steps, k);
          const recorded = await recordReplay(store, trace, {
            tracePath: path,
            traceText: text,
            variant: spec.variant,
            fixes: spec.fixes,
            failNth,
          });
          runs.push(recorded.run);
        }
        lines.push(
          `recorded run ${runs[0]} (before ${first.flag}) and run ${runs[1]} (with it): ioptrace bisect ${runs[0]} ${runs[1]}`,
        );
        json['recorded'] = runs;
      } finally {
        await store.close();
      }
    }
    return { exitCode: report.flips.length === 1 ? 0 : 1, json, text: lines };
  },
});
