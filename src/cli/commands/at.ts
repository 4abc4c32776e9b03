// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace at RUN SEQ`: the state after an event, in a readable layout. */
import { openStore } from '../../store/index.js';
import { renderState, stateAnswer } from '../../timetravel/index.js';
import { digestHex } from '../../lib/digest.js';
import { UsageError } from '../errors.js';
import { defineCommand, intArg } from '../command.js';
import { int } from '../options.js';

export const atCommand = defineCommand({
  name: 'at',
  summary: 'show the state after event SEQ of a run (0 = the initial state)',
  usage: 'ioptrace at RUN SEQ [--max N] [--json] [--db FILE]',
  help: ['--max N caps each list (frames, runs, mappings) at N lines.'],
  options: { max: int(50) },
  async run(positionals, values, env) {
    if (positionals.length !== 2) throw new UsageError(`usage: ${this.usage}`);
    const run = intArg(positionals[0], 'RUN');
    const seq = intArg(positionals[1], 'SEQ');
    const store = await openStore(env.db, { readonly: true });
    try {
      const { opRow: op, ...answer } = await stateAnswer(store, run, seq);
      const state = answer.state;
      const header = `run ${run} after event ${seq}${op ? ` (op ${op.index} ${op.op}, trace line ${op.line})` : ''}: digest ${digestHex(state.digest)}`;
      const max = values.max;
      return {
        exitCode: 0,
        json: answer,
        text: [header, ...renderState(state, { maxItems: max })],
      };
    } finally {
      await store.close();
    }
  },
});
