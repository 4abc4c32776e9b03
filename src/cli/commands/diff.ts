// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace diff RUN SEQ_A SEQ_B`: what differs between two points of a run. */
import { openStore } from '../../store/index.js';
import { diffAnswer, renderDiff } from '../../timetravel/index.js';
import { UsageError } from '../errors.js';
import { defineCommand, intArg } from '../command.js';

export const diffCommand = defineCommand({
  name: 'diff',
  summary: 'structural diff of the state of a run at two events',
  usage: 'ioptrace diff RUN SEQ_A SEQ_B [--json] [--db FILE]',
  help: [],
  options: {},
  async run(positionals, _values, env) {
    if (positionals.length !== 3) throw new UsageError(`usage: ${this.usage}`);
    const run = intArg(positionals[0], 'RUN');
    const a = intArg(positionals[1], 'SEQ_A');
    const b = intArg(positionals[2], 'SEQ_B');
    const store = await openStore(env.db, { readonly: true });
    try {
      const answer = await diffAnswer(store, run, a, b);
      const lines = renderDiff(answer.diff);
      return {
        exitCode: 0,
        json: answer,
        text: [`run ${run}: event ${a} -> event ${b}`, ...(lines.length ? lines : ['  no difference'])],
      };
    } finally {
      await store.close();
    }
  },
});
