// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace demo` (what `npm start` runs): the main job. Replays the review's BAD_FREE trace on v3 and on
 * merged and prints the time-travel report: the violation, the op and trace line that caused it, the state
 * just before and just after that op, and the same op on the fixed variant.
 *
 * The two runs are appended to the store: the demo never deletes or overwrites anything, and openStore
 * refuses (exit 2, file untouched) a path that holds anything but an ioptrace store.
 */
import { join } from 'node:path';
import { openStore } from '../../store/index.js';
import type { Store } from '../../store/index.js';
import { recordReplay } from '../../replay/record.js';
import { StoreSource, diffStates, renderDiff, stateAt } from '../../timetravel/index.js';
import { decodeJson } from '../../lib/codec.js';
import type { Event } from '../../events/events.js';
import { UsageError } from '../errors.js';
import { packageRoot } from '../../lib/paths.js';
import { defineCommand } from '../command.js';
import { text } from '../options.js';
import { parseVariantSpec } from '../../kernel/variant-spec.js';
import { describeEvent } from '../../events/describe.js';
import { loadTrace } from './replay.js';
import { bisectRuns } from '../../bisect/bisect-runs.js';
import { pushAll } from '../../lib/arrays.js';

const defaultTrace = (): string => join(packageRoot(), 'replays', 'bad-free.jsonl');
const DEMO_DB = './ioptrace-demo.db';

async function opEvents(store: Store, run: number, op: number): Promise<string[]> {
  const lines: string[] = [];
  for await (const e of store.events(run, { op })) {
    lines.push(`    ${String(e.seq).padStart(4)}  ${describeEvent(decodeJson(e.payload) as Event)}`);
  }
  return lines;
}

export const demoCommand = defineCommand({
  name: 'demo',
  summary: 'the main job: replay the BAD_FREE trace on v3 and merged and print the time-travel report',
  usage: 'ioptrace demo [TRACE] [--bad v3] [--good merged] [--json] [--db FILE]',
  help: [
    `The two runs are added to ${DEMO_DB}, or to the store that --db or IOPTRACE_DB names; nothing in it is`,
    'removed. A file that is not an ioptrace store is refused and left untouched.',
  ],
  options: { bad: text('v3'), good: text('merged') },
  async run(positionals, values, env) {
    if (positionals.length > 1) throw new UsageError(`usage: ${this.usage}`);
    const path = positionals[0] ?? defaultTrace();
    const db = env.db === './ioptrace.db' && process.env['IOPTRACE_DB'] === undefined ? DEMO_DB : env.db;
    // A bad spec is the library's BadInputError (field "variant"), as for --variant elsewhere.
    const bad = parseVariantSpec(values.bad);
    const good = parseVariantSpec(values.good);
    const { text, trace } = await loadTrace(path);
    const store = await openStore(db);
    try {
      const a = await recordReplay(store, trace, {
        tracePath: path,
        traceText: text,
        variant: bad.label,
        fixes: bad.fixes,
      });
      const b = await recordReplay(store, trace, {
        tracePath: path,
        traceText: text,
        variant: good.label,
        fixes: good.fixes,
      });
      const out: string[] = [];
      // A line, or a list of lines (never spread: a run's findings are unbounded).
      const say = (...lines: (string | readonly string[])[]): void => {
        for (const l of lines) pushAll(out, typeof l === 'string' ? [l] : l);
      };
      say(`ioptrace: ${path}`, `database ${db}: run ${a.run} = ${bad.label}, run ${b.run} = ${good.label}`, '');
      for (const [name, r] of [
        [bad.label, a],
        [good.label, b],
      ] as const) {
        say(
          `${name.padEnd(8)} run ${r.run}: ${r.result.ops.length} ops, ${r.result.events} events, ${r.result.violations.length} violations, ${r.result.warns.length} WARNs, ${r.result.mismatches.length} unmet expectations, head ${r.head.slice(0, 16)}`,
        );
      }
      const first = a.result.violations[0] ?? a.result.warns[0];
      if (!first) {
        say('', `${bad.label} replays clean: nothing to report.`);
        return { exitCode: 0, json: { runs: [a.run, b.run], violation: null }, text: out };
      }
      const opA = a.result.ops.find((o) => o.index === first.op);
      const opB = b.result.ops.find((o) => o.index === first.op);
      const lineText = text.split(/\r\n|\n|\r/)[first.line - 1] ?? '';
      say(
        '',
        `== The violation (${bad.label}, run ${a.run})`,
        `  ${first.kind === 'warn' ? 'WARN' : first.kind.toUpperCase()} in ${first.fn}: ${first.detail}`,
        `  at event ${first.seq}, op ${first.op}, trace line ${first.line}:`,
        `    ${lineText.trim()}`,
        `  every finding of this run:`,
        a.result.violations.map((v) => `    event ${v.seq}: ${v.kind} in ${v.fn}: ${v.detail}`),
        a.result.warns.map((v) => `    event ${v.seq}: WARN in ${v.fn}: ${v.detail}`),
      );
      const srcA = await StoreSource.open(store, a.run);
      const srcB = await StoreSource.open(store, b.run);
      if (opA) {
        const before = await stateAt(srcA, opA.firstSeq - 1);
        const after = await stateAt(srcA, opA.lastSeq);
        say(
          '',
          `== Op ${opA.index} (${opA.op}) on ${bad.label}: result ${opA.errno ?? 'ok'}, events ${opA.firstSeq}..${opA.lastSeq}`,
          await opEvents(store, a.run, opA.index),
          '',
          `== State just before (event ${opA.firstSeq - 1}) -> just after (event ${opA.lastSeq}) on ${bad.label}`,
          renderDiff(diffStates(before, after)),
        );
      }
      if (opB) {
        const before = await stateAt(srcB, opB.firstSeq - 1);
        const after = await stateAt(srcB, opB.lastSeq);
        say(
          '',
          `== The same op on ${good.label} (run ${b.run}): result ${opB.errno ?? 'ok'}, events ${opB.firstSeq}..${opB.lastSeq}`,
          await opEvents(store, b.run, opB.index),
          '',
          `== State just before -> just after on ${good.label}`,
          renderDiff(diffStates(before, after)),
        );
      }
      // bisect's answer, so that the demo and `ioptrace bisect` name one op: what the kernel holds is compared.
      const diverge = (await bisectRuns(store, a.run, b.run)).divergence;
      if (diverge) {
        say(
          '',
          `== Where the runs diverge (ioptrace bisect ${a.run} ${b.run}): op ${diverge.op} (${diverge.name}, trace line ${diverge.line}); ${bad.label} state vs ${good.label} state after it:`,
          diverge.diff.lines.map((l) => `  ${l}`),
        );
      }
      say(
        '',
        'Explore further:',
        `  npx ioptrace log ${a.run} --op ${first.op} --db ${db}`,
        `  npx ioptrace at ${a.run} ${first.seq} --db ${db}`,
        `  npx ioptrace why ${a.run} --pfn <PFN> --db ${db}`,
        `  npx ioptrace verify --db ${db}`,
      );
      return {
        exitCode: 0,
        json: {
          db,
          runs: { [bad.label]: a.run, [good.label]: b.run },
          violation: first,
          op: opA ?? null,
          fixedOp: opB ?? null,
          divergence: diverge ? { op: diverge.op, line: diverge.line } : null,
        },
        text: out,
      };
    } finally {
      await store.close();
    }
  },
});
