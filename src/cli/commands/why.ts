// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace why RUN --pfn P | --index PAGES:I`: every event that touched a page, in order. */
import { openStore } from '../../store/index.js';
import { whyAnswer } from '../../timetravel/index.js';
import type { WhyTarget } from '../../timetravel/index.js';
import { UsageError } from '../errors.js';
import type { Command } from '../command.js';
import { intArg } from '../command.js';

export const whyCommand: Command = {
  name: 'why',
  summary: 'every event that touched a physical page (--pfn) or an index of an iopt_pages (--index PAGES:I)',
  usage: 'ioptrace why RUN (--pfn PFN | --index PAGES:INDEX) [--json] [--db FILE]',
  help: ['Who pinned it, who stored it in the xarray, who mapped it into a domain, who unpinned it.'],
  options: { pfn: { type: 'string' }, index: { type: 'string' } },
  async run(positionals, values, env) {
    if (positionals.length !== 1) throw new UsageError(`usage: ${this.usage}`);
    const run = intArg(positionals[0], 'RUN');
    let target: WhyTarget;
    if (values['pfn'] !== undefined && values['index'] === undefined) target = { pfn: intArg(values['pfn'], '--pfn') };
    else if (values['index'] !== undefined && values['pfn'] === undefined) {
      const m = /^(\w+):(\w+)$/.exec(String(values['index']));
      if (!m) throw new UsageError(`--index takes PAGES:INDEX (e.g. 3:17), got "${String(values['index'])}"`);
      target = { pages: intArg(m[1], 'PAGES'), index: intArg(m[2], 'INDEX') };
    } else throw new UsageError(`give exactly one of --pfn and --index\nusage: ${this.usage}`);
    const store = await openStore(env.db, { readonly: true });
    try {
      const answer = await whyAnswer(store, run, target);
      const entries = answer.events;
      const what =
        'pfn' in target ? `pfn 0x${target.pfn.toString(16)}` : `iopt_pages ${target.pages} index ${target.index}`;
      const text = [
        `run ${run}, ${what}: ${entries.length} events`,
        ...entries.map((e) => `${String(e.seq).padStart(7)} op ${String(e.op).padStart(5)}  ${e.text}`),
      ];
      return {
        exitCode: 0,
        json: answer,
        text,
      };
    } finally {
      await store.close();
    }
  },
};
