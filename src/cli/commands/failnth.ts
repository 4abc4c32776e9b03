// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace failnth TRACE`: the fail-nth sweep of iommufd_fail_nth.c over a trace. */
import { failNthSweep } from '../../replay/failnth.js';
import { UsageError } from '../errors.js';
import { defineCommand } from '../command.js';
import { VARIANT_OPTIONS, int } from '../options.js';
import { Progress } from '../output.js';
import { loadTrace, variantFromArgs } from './replay.js';

export const failnthCommand = defineCommand({
  name: 'failnth',
  summary: 'replay with the Nth fault point failing, N = 1, 2, ... until none fires; report every WARN and violation',
  usage: 'ioptrace failnth TRACE [--variant V] [--fix F]... [--without F]... [--max N] [--json]',
  help: ['Nothing is stored. Exit 1 when any N produced a WARN, a violation or an unclean teardown.'],
  options: { ...VARIANT_OPTIONS, max: int(100_000) },
  async run(positionals, values, env) {
    if (positionals.length !== 1 || positionals[0] === undefined) throw new UsageError(`usage: ${this.usage}`);
    const { variant, fixes } = variantFromArgs(values);
    const { trace } = await loadTrace(positionals[0]);
    const maxN = values.max;
    const progress = new Progress(maxN, 'failnth', env.stderr);
    const r = failNthSweep(trace, { variant, fixes, maxN, onStep: (s) => progress.update(s.n) });
    progress.finish();
    const text = [
      `${positionals[0]} on ${variant}: ${r.steps.length - (r.truncated ? 0 : 1)} fault points failed in turn${r.truncated ? ` (stopped at --max ${maxN})` : ''}`,
      r.findings.length ? `${r.findings.length} findings:` : 'clean: no WARN, no violation at any N',
      ...r.findings.map(
        (f) =>
          `  N=${f.n}: ${f.kind === 'warn' ? 'WARN' : `VIOLATION ${f.kind}`} in ${f.fn} (line ${f.line}): ${f.detail}`,
      ),
    ];
    return {
      exitCode: r.findings.length ? 1 : 0,
      json: { variant, flags: fixes, points: r.steps.length - 1, truncated: r.truncated, findings: r.findings },
      text,
    };
  },
});
