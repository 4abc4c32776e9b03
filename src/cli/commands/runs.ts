// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace runs`: the runs in the database; `--failures`: what fuzzing farms recorded in it. */
import { describeKey } from '../../fuzz/dedupe.js';
import { farmFailuresQuery, openStore, type Store } from '../../store/index.js';
import { runsAnswer } from '../../timetravel/index.js';
import type { CommandOutput } from '../command.js';
import { defineCommand } from '../command.js';
import { flag } from '../options.js';
import { table } from '../output.js';

/** The failures `ioptrace fuzz --record` / `--workers` recorded, deduplicated by variant, kind and function. */
async function failuresOutput(store: Store): Promise<CommandOutput> {
  const failures = await store.query(farmFailuresQuery());
  const rows = failures.map((f) => [
    f.variant,
    describeKey(f),
    String(f.seed),
    String(f.ops),
    String(f.count),
    f.traceRun === null ? '-' : String(f.traceRun),
    f.reproducerRun === null ? '-' : String(f.reproducerRun),
    f.reproducerOps === null ? '-' : String(f.reproducerOps),
  ]);
  return {
    exitCode: 0,
    json: failures,
    text: failures.length
      ? [
          ...table(
            ['variant', 'failure', 'seed', 'ops', 'traces', 'trace run', 'reproducer run', 'reproducer ops'],
            rows,
          ),
          '',
          'seed, ops: the trace of the worker that recorded the failure first (ioptrace fuzz --seed S --ops N --iterations 1',
          'regenerates it); traces: distinct generated traces that showed it, across every worker; "-": not recorded (yet).',
        ]
      : ['no failures recorded (ioptrace fuzz --record or --workers N records them)'],
  };
}

export const runsCommand = defineCommand({
  name: 'runs',
  summary: 'list the runs in the database',
  usage: 'ioptrace runs [--failures] [--json] [--db FILE]',
  help: [
    'A run whose replay was interrupted (killed, crashed) shows as incomplete; a run whose replay failed',
    'part way shows as failed, with the reason and the op and trace line where it stopped.',
    '--failures: the failures fuzzing workers recorded (ioptrace fuzz --record, --workers N), one per variant,',
    'kind and function: the seed of the trace that showed it first, how many traces showed it, and the runs of',
    'that trace and of its shrunk reproducer.',
  ],
  options: { failures: flag() },
  async run(_positionals, values, env) {
    const store = await openStore(env.db, { readonly: true });
    try {
      if (values.failures) return await failuresOutput(store);
      const runs = await runsAnswer(store);
      const rows = runs.map((r) => [
        String(r.id),
        r.incomplete ? 'incomplete' : r.status,
        r.label,
        String(r.opCount),
        String(r.eventCount),
        r.finalDigest ?? '-',
        r.tracePath,
      ]);
      const failures = runs
        .filter((r) => r.status === 'failed')
        .map((r) => {
          const where = r.errorOp === null ? '' : ` at op ${r.errorOp} (trace line ${r.errorLine ?? '?'})`;
          return `run ${r.id} failed${where}: ${r.error ?? 'no reason recorded'}`;
        });
      return {
        exitCode: 0,
        json: runs,
        text: runs.length
          ? [
              ...table(['run', 'status', 'variant', 'ops', 'events', 'digest', 'trace'], rows),
              ...(failures.length ? ['', ...failures] : []),
            ]
          : ['no runs'],
      };
    } finally {
      await store.close();
    }
  },
});
