// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace runs`: the runs in the database. */
import { variantLabel } from '../../kernel/variant-spec.js';
import { openStore } from '../../store/index.js';
import type { Command } from '../command.js';
import { table } from '../output.js';

export const runsCommand: Command = {
  name: 'runs',
  summary: 'list the runs in the database',
  usage: 'ioptrace runs [--json] [--db FILE]',
  help: ['A run whose replay was interrupted (killed, crashed) shows as incomplete.'],
  options: {},
  async run(_positionals, _values, env) {
    const store = await openStore(env.db, { readonly: true });
    try {
      const runs = store.runs();
      const rows = runs.map((r) => [
        String(r.id),
        r.incomplete ? 'incomplete' : r.status,
        variantLabel(r.variant, r.flags),
        String(r.opCount),
        String(r.eventCount),
        r.finalDigest ?? '-',
        r.tracePath,
      ]);
      return {
        exitCode: 0,
        json: runs.map((r) => ({ ...r, label: variantLabel(r.variant, r.flags) })),
        text: runs.length ? table(['run', 'status', 'variant', 'ops', 'events', 'digest', 'trace'], rows) : ['no runs'],
      };
    } finally {
      await store.close();
    }
  },
};
