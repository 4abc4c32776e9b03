// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace step RUN`: walk a stored run op by op with the time-travel cursor and print what each step did
 * to the state as immer patches. Going back applies the inverse patches of the steps taken forward, so
 * `--back` shows undo as the cursor performs it, not as a fresh replay. Every step is checked against the
 * digest the run recorded for the op it lands after.
 */
import { openStore } from '../../store/index.js';
import { DEFAULT_MAX_PATCHES, requireRun, stepAnswer } from '../../timetravel/index.js';
import type { StepReport } from '../../timetravel/index.js';
import { UsageError } from '../errors.js';
import { defineCommand, intArg } from '../command.js';
import { flag, int } from '../options.js';

function stepLines(r: StepReport): string[] {
  const verb = r.direction === 'forward' ? 'op' : 'undo op';
  const events = r.lastSeq < r.firstSeq ? 'no events' : `events ${r.firstSeq}..${r.lastSeq}`;
  const lines = [
    `${verb} ${r.op}  line ${r.line}  ${r.name}  ${r.errno ?? 'ok'}  (${events}, ${r.patchCount} patches)`,
    ...r.patches.map((p) => `  ${p.text}`),
  ];
  if (r.patchCount > r.patches.length) lines.push(`  and ${r.patchCount - r.patches.length} more`);
  lines.push(`  digest ${r.digest} = recorded after op ${r.landsAfter}`);
  return lines;
}

export const stepCommand = defineCommand({
  name: 'step',
  summary: 'step through a run op by op (or back by inverse patches), printing the patches of each step',
  usage: 'ioptrace step RUN [--from OP] [--to OP] [--back] [--max N] [--json] [--db FILE]',
  help: [
    'The cursor starts after op --from (default 0, the setup op) and applies ops up to --to (default the',
    'last op). With --back it steps forward to --to first, then undoes the ops one by one back to --from',
    'by their inverse patches. Every step is checked against the digest the run recorded (exit 3 if not).',
    `--max N prints at most N patches per step (default ${DEFAULT_MAX_PATCHES}).`,
  ],
  options: { from: int(0), to: int(null), back: flag(), max: int(DEFAULT_MAX_PATCHES) },
  async run(positionals, values, env) {
    if (positionals.length !== 1) throw new UsageError(`usage: ${this.usage}`);
    const run = intArg(positionals[0], 'RUN');
    const { back, max: maxPatches } = values;
    const store = await openStore(env.db, { readonly: true });
    try {
      const last = (await requireRun(store, run)).opCount - 1;
      const from = values.from;
      const to = values.to ?? last;
      if (from > last || to > last)
        throw new UsageError(`run ${run} has ops 0..${last}; got --from ${from} --to ${to}`);
      if (from > to) throw new UsageError(`--from ${from} is after --to ${to}`);
      const answer = await stepAnswer(store, run, { from, to, back, maxPatches });
      const { steps } = answer;
      const fromDigest = (await store.ops(run, from, from))[0]?.digest ?? '';
      const how = back ? `forward to op ${to}, then back to op ${from}` : `from op ${from} to op ${to}`;
      const header = `run ${run}: ${steps.length} ${steps.length === 1 ? 'step' : 'steps'} ${how} (after op ${from}: digest ${fromDigest})`;
      return {
        exitCode: 0,
        json: answer,
        text: [header, ...steps.flatMap(stepLines)],
      };
    } finally {
      await store.close();
    }
  },
});
