// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace log RUN`: the events of a run, filtered. */
import { openStore } from '../../store/index.js';
import { eventsAnswer } from '../../timetravel/index.js';
import { EVENT_TYPES } from '../../events/events.js';
import { decodeJson } from '../../lib/codec.js';
import { UsageError } from '../errors.js';
import { defineCommand, intArg } from '../command.js';
import { int, list } from '../options.js';
import { describeEvent } from '../../events/describe.js';
import type { Event } from '../../events/events.js';
import { requireRun } from './common.js';

export const logCommand = defineCommand({
  name: 'log',
  summary: 'print the events of a run (filter by seq range, type, op)',
  usage: 'ioptrace log RUN [--from SEQ] [--to SEQ] [--type TYPE[,TYPE]]... [--op N] [--json] [--db FILE]',
  help: [`Types: ${EVENT_TYPES.join(', ')}`],
  options: { from: int(null), to: int(null), type: list(), op: int(null) },
  async run(positionals, values, env) {
    if (positionals.length !== 1) throw new UsageError(`usage: ${this.usage}`);
    const run = intArg(positionals[0], 'RUN');
    const types = values.type;
    for (const t of types)
      if (!EVENT_TYPES.includes(t as Event['type'])) throw new UsageError(`unknown event type "${t}"`);
    const store = await openStore(env.db, { readonly: true });
    try {
      await requireRun(store, run);
      const filter = {
        ...(values.from !== null ? { fromSeq: values.from } : {}),
        ...(values.to !== null ? { toSeq: values.to } : {}),
        ...(types.length ? { types } : {}),
        ...(values.op !== null ? { op: values.op } : {}),
      };
      if (env.json) return { exitCode: 0, json: await eventsAnswer(store, run, filter), text: [] };
      const text: string[] = [];
      for await (const e of store.events(run, filter)) {
        const event = decodeJson(e.payload) as Event;
        text.push(`${String(e.seq).padStart(7)} op ${String(e.op).padStart(5)}  ${describeEvent(event)}`);
      }
      return { exitCode: 0, json: [], text };
    } finally {
      await store.close();
    }
  },
});
