// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace verify [RUN]`: walk the hash chains and name the first broken link. */
import { openStore } from '../../store/index.js';
import type { Command } from '../command.js';
import { intArg } from '../command.js';
import { UsageError } from '../errors.js';
import { requireRun } from './common.js';

export const verifyCommand: Command = {
  name: 'verify',
  summary: "walk every hash chain (or one run's) and report the first broken link",
  usage: 'ioptrace verify [RUN] [--json] [--db FILE]',
  help: [
    'Each run is ok (its chains and recorded summary match its rows), incomplete (no finish row: still',
    'being written, or its writer was stopped; the batches it committed are whole and their chains intact)',
    'or BROKEN (a row was edited, deleted or inserted: the first one that does not fit is named).',
    'Exit 0 when no run is broken (incomplete is not broken), 1 when one is. Verify reads one snapshot, so',
    'it may run while a replay writes.',
  ],
  options: {},
  async run(positionals, _values, env) {
    if (positionals.length > 1) throw new UsageError(`usage: ${this.usage}`);
    const store = await openStore(env.db, { readonly: true });
    try {
      const run = positionals[0] === undefined ? undefined : intArg(positionals[0], 'RUN');
      if (run !== undefined) await requireRun(store, run);
      const report = store.verify(run);
      const text = report.runs.map((r) => {
        const state = r.incomplete ? ' (incomplete)' : r.status === 'failed' ? ' (failed)' : '';
        if (r.ok && r.incomplete) {
          return `run ${r.run}: incomplete, not broken: ${r.events} events in ${r.batches} whole ${r.batches === 1 ? 'batch' : 'batches'}, ${r.ops} ops; no finish row (still being written, or its writer was stopped)`;
        }
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
