// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace why RUN --pfn P | --index PAGES:I`: every event that touched a page, in order. */
import { openStore } from '../../store/index.js';
import { whyAnswer } from '../../timetravel/index.js';
import type { WhyTarget } from '../../timetravel/index.js';
import { UsageError } from '../errors.js';
import { defineCommand, intArg } from '../command.js';
import { int, pagesIndex } from '../options.js';
import { hex } from '../../lib/format.js';

export const whyCommand = defineCommand({
  name: 'why',
  summary: 'every event that touched a physical page (--pfn) or an index of an iopt_pages (--index PAGES:I)',
  usage: 'ioptrace why RUN (--pfn PFN | --index PAGES:INDEX) [--json] [--db FILE]',
  help: ['Who pinned it, who stored it in the xarray, who mapped it into a domain, who unpinned it.'],
  options: { pfn: int(null), index: pagesIndex() },
  async run(positionals, values, env) {
    if (positionals.length !== 1) throw new UsageError(`usage: ${this.usage}`);
    const run = intArg(positionals[0], 'RUN');
    let target: WhyTarget;
    if (values.pfn !== null && values.index === undefined) target = { pfn: values.pfn };
    else if (values.index !== undefined && values.pfn === null) target = values.index;
    else throw new UsageError(`give exactly one of --pfn and --index\nusage: ${this.usage}`);
    const store = await openStore(env.db, { readonly: true });
    try {
      const answer = await whyAnswer(store, run, target);
      const entries = answer.events;
      const what = 'pfn' in target ? `pfn ${hex(target.pfn)}` : `iopt_pages ${target.pages} index ${target.index}`;
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
});
