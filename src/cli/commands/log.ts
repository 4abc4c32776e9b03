// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace log RUN`: the events of a run, filtered. */
import { openStore } from '../../store/index.js';
import { eventsAnswer, settled } from '../../timetravel/index.js';
import { EVENT_TYPES } from '../../events/events.js';
import { decodeJson } from '../../lib/codec.js';
import { UsageError } from '../errors.js';
import type { Command } from '../command.js';
import { intArg, listArg } from '../command.js';
import { describeEvent } from '../describe.js';
import type { Event } from '../../events/events.js';
import { requireRun } from './common.js';

export const logCommand: Command = {
  name: 'log',
  summary: 'print the events of a run (filter by seq range, type, op)',
  usage: 'ioptrace log RUN [--from SEQ] [--to SEQ] [--type TYPE[,TYPE]]... [--op N] [--json] [--db FILE]',
  help: [`Types: ${EVENT_TYPES.join(', ')}`],
  options: {
    from: { type: 'string' },
    to: { type: 'string' },
    type: { type: 'string', multiple: true },
    op: { type: 'string' },
  },
  async run(positionals, values, env) {
    if (positionals.length !== 1) throw new UsageError(`usage: ${this.usage}`);
    const run = intArg(positionals[0], 'RUN');
    const types = listArg(values['type']);
    for (const t of types)
      if (!EVENT_TYPES.includes(t as Event['type'])) throw new UsageError(`unknown event type "${t}"`);
    const store = await openStore(env.db, { readonly: true });
    try {
      await requireRun(store, run);
      const filter = {
        ...(values['from'] !== undefined ? { fromSeq: intArg(values['from'], '--from') } : {}),
        ...(values['to'] !== undefined ? { toSeq: intArg(values['to'], '--to') } : {}),
        ...(types.length ? { types } : {}),
        ...(values['op'] !== undefined ? { op: intArg(values['op'], '--op') } : {}),
      };
      if (env.json) return { exitCode: 0, json: await eventsAnswer(store, run, filter), text: [] };
      const text: string[] = [];
      for (const e of await settled(store.events(run, filter))) {
        const event = decodeJson(e.payload) as Event;
        text.push(`${String(e.seq).padStart(7)} op ${String(e.op).padStart(5)}  ${describeEvent(event)}`);
      }
      return { exitCode: 0, json: [], text };
    } finally {
      await store.close();
    }
  },
};
