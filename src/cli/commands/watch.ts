// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace watch RUN EXPR`: the first event at which a predicate over the state becomes true. */
import { openStore } from '../../store/index.js';
import { opOfSeq, watchAnswer } from '../../timetravel/index.js';
import { UsageError } from '../errors.js';
import { defineCommand, intArg } from '../command.js';
import { int } from '../options.js';

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
      const from = values.from;
      const answer = await watchAnswer(store, run, expr, from);
      if (!('seq' in answer)) return { exitCode: 1, json: answer, text: [`run ${run}: ${expr} never holds`] };
      const op = await opOfSeq(store, run, answer.seq);
      return {
        exitCode: 0,
        json: answer,
        text: [
          `run ${run}: ${expr} first holds after event ${answer.seq}${op ? ` (op ${op.index} ${op.op}, trace line ${op.line})` : ' (initial state)'}`,
        ],
      };
    } finally {
      await store.close();
    }
  },
});
