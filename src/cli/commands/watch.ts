// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace watch RUN EXPR`: the first event at which a predicate over the state becomes true. */
import { openStore } from '../../store/index.js';
import { StoreSource, watch } from '../../timetravel/index.js';
import { UsageError } from '../errors.js';
import { defineCommand, intArg } from '../command.js';
import { int } from '../options.js';
import { requireRun } from './common.js';

export const watchCommand = defineCommand({
  name: 'watch',
  summary: "the first event of a run at which EXPR holds, e.g. 'npinned != last_npinned'",
  usage: 'ioptrace watch RUN EXPR [--from SEQ] [--json] [--db FILE]',
  help: [
    'Fields: npinned, last_npinned, pages.N.npinned, pages.N.last_npinned, user.UID.locked_vm, mm.ID.locked_vm,',
    'mm.ID.pinned_vm, violations, warns, pins(PFN), xa(PAGES, INDEX); operators == != < <= > >= && || and parentheses.',
    'A bare npinned / last_npinned means "for any iopt_pages". Exit 1 when the predicate never holds.',
    'A named object (pages.N, xa(N, I), user.UID, mm.ID) may not exist at every event: where it does not (not yet',
    'created, or freed), a comparison reading it is unknown and the predicate does not hold there (`!` keeps it',
    'unknown; `||` with a true side holds). An object that never exists in the run is an error (exit 2,',
    '"pages 9 never exists in run 1").',
  ],
  options: { from: int(0) },
  async run(positionals, values, env) {
    if (positionals.length !== 2 || positionals[1] === undefined) throw new UsageError(`usage: ${this.usage}`);
    const run = intArg(positionals[0], 'RUN');
    const expr = positionals[1];
    const store = await openStore(env.db, { readonly: true });
    try {
      await requireRun(store, run);
      const from = values.from;
      const hit = await watch(await StoreSource.open(store, run), expr, { from, runName: `run ${run}` });
      if (!hit) return { exitCode: 1, json: { run, expr, hit: null }, text: [`run ${run}: ${expr} never holds`] };
      const op = hit.seq === 0 ? null : await store.opAt(run, hit.seq);
      return {
        exitCode: 0,
        json: { run, expr, seq: hit.seq, op: hit.op, line: op?.line ?? null },
        text: [
          `run ${run}: ${expr} first holds after event ${hit.seq}${op ? ` (op ${op.index} ${op.op}, trace line ${op.line})` : ' (initial state)'}`,
        ],
      };
    } finally {
      await store.close();
    }
  },
});
