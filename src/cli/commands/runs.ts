// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace runs`: the runs in the database. */
import { openStore } from '../../store/index.js';
import { runsAnswer } from '../../timetravel/index.js';
import { defineCommand } from '../command.js';
import { table } from '../output.js';

export const runsCommand = defineCommand({
  name: 'runs',
  summary: 'list the runs in the database',
  usage: 'ioptrace runs [--json] [--db FILE]',
  help: [
    'A run whose replay was interrupted (killed, crashed) shows as incomplete; a run whose replay failed',
    'part way shows as failed, with the reason and the op and trace line where it stopped.',
  ],
  options: {},
  async run(_positionals, _values, env) {
    const store = await openStore(env.db, { readonly: true });
    try {
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
