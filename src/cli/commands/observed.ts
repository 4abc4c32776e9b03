// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace observed TRACE [--variant V]`: replay a trace recorded on a real kernel (with `observed` lines)
 * in memory and report the first op whose model effects differ from what the kernel was observed to do
 * (src/bisect/observed.ts). Exit 0 when the model matches every observation, 1 when it does not.
 */
import { replayObserved } from '../../bisect/observed.js';
import { observedJson, renderObserved } from '../../bisect/render.js';
import { UsageError } from '../errors.js';
import type { CommandOutput } from '../command.js';
import { defineCommand } from '../command.js';
import { VARIANT_OPTIONS } from '../options.js';
import { loadTrace, variantFromArgs } from './replay.js';

export const observedCommand = defineCommand({
  name: 'observed',
  summary: "compare a recorded trace's observations with the model: the first op where they differ",
  usage: 'ioptrace observed TRACE [--variant V] [--fix FLAG]... [--without FLAG]... [--json]',
  help: [
    'Each op with `observed` lines is compared on the kinds recorded for it: IOMMU maps (the translations),',
    'unmaps, pinned and unpinned PFNs (as multisets), WARN sites and the result. V is a variant name with',
    'optional +FLAG / -FLAG (default upstream). Nothing is stored.',
  ],
  options: { ...VARIANT_OPTIONS },
  async run(positionals, values): Promise<CommandOutput> {
    const [path, ...extra] = positionals;
    if (path === undefined || extra.length) throw new UsageError(`usage: ${this.usage}`);
    const spec = variantFromArgs(values);
    const { trace } = await loadTrace(path);
    const { report } = replayObserved(trace, { variant: spec.label, fixes: spec.fixes });
    if (report.observations === 0) throw new UsageError(`${path} has no "observed" lines to compare`);
    return {
      exitCode: report.first === null ? 0 : 1,
      json: { variant: spec.label, fixes: spec.fixes, ...observedJson(report) },
      text: renderObserved(report, path, spec.label),
    };
  },
});
