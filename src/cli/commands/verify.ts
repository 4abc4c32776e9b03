// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace verify [RUN]`: walk the hash chains and name the first broken link. */
import { openStore } from '../../store/index.js';
import type { Command } from '../command.js';
import { intArg } from '../command.js';
import { UsageError } from '../../lib/errors.js';
import { requireRun } from './common.js';

export const verifyCommand: Command = {
  name: 'verify',
  summary: "walk every hash chain (or one run's) and report the first broken link",
  usage: 'ioptrace verify [RUN] [--json] [--db FILE]',
  help: ['Exit 1 when a chain is broken or a run summary does not match its rows.'],
  options: {},
  async run(positionals, _values, env) {
    if (positionals.length > 1) throw new UsageError(`usage: ${this.usage}`);
    const store = await openStore(env.db, { readonly: true });
    try {
      const run = positionals[0] === undefined ? undefined : intArg(positionals[0], 'RUN');
      if (run !== undefined) requireRun(store, run);
      const report = store.verify(run);
      const text = report.runs.map((r) => {
        const state = r.incomplete ? ' (incomplete)' : '';
        if (r.ok) return `run ${r.run}${state}: ok, ${r.events} events, ${r.ops} ops`;
        const parts: string[] = [];
        if (r.firstBroken) {
          const b = r.firstBroken;
          parts.push(
            `event seq ${b.seq}${b.id === null ? '' : ` (id ${b.id})`}: ${b.reason}, expected ${b.expected}, found ${b.actual}`,
          );
        }
        if (r.firstBrokenOp) parts.push(`op ${r.firstBrokenOp.index}: ${r.firstBrokenOp.reason}`);
        for (const m of r.mismatches) parts.push(`${m.what}: expected ${m.expected}, found ${m.actual}`);
        return `run ${r.run}${state}: BROKEN: ${parts.join('; ')}`;
      });
      return { exitCode: report.ok ? 0 : 1, json: report, text: text.length ? text : ['no runs'] };
    } finally {
      await store.close();
    }
  },
};
