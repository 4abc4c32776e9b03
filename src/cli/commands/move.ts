// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace export RUN... --to FILE` and `ioptrace import FILE [RUN...]`: the two directions of one move,
 * copying runs from one store into another (src/store/copy.ts). export reads the store of --db and writes
 * --to; import reads FILE and writes the store of --db. Either way the source is opened read-only, every
 * run is re-appended through the target's writer so the chains are recomputed, and a copy whose heads,
 * counts or final digest would differ from the source's is refused (exit 3) and never left looking complete.
 */
import { resolve } from 'node:path';
import { checkCopyable, copyRun, openStore, type CopiedRun } from '../../store/index.js';
import type { CommandOutput } from '../command.js';
import { defineCommand, intArg } from '../command.js';
import { UsageError } from '../errors.js';
import { flag, text } from '../options.js';
import { table } from '../output.js';

const MOVE_HELP = [
  "Each run is appended again through the target store's writer, which recomputes both hash chains; the copy",
  'is refused (exit 3, naming the first row or figure that differs) unless its head, ops head, event and op',
  "counts and final digest are the source run's. Nothing is written when a source run does not verify or is",
  'missing. A copy refused part way is marked failed in the target with the reason, never complete.',
  "Trace text, snapshots, and a failed run's status, reason and place go with the run; a copied run gets",
  'the next run id of the target. --incomplete: also copy runs that have no finish row (still being written,',
  'or their writer was killed): what was committed when the copy began, left incomplete in the target.',
  'Without it such a run is refused.',
];

/** Two spellings of the same store: the same string, or file paths that resolve to the same file. */
function sameStore(a: string, b: string): boolean {
  if (a === b) return true;
  return !a.includes('://') && !b.includes('://') && resolve(a) === resolve(b);
}

async function move(from: string, to: string, runs: number[], incomplete: boolean): Promise<CommandOutput> {
  if (sameStore(from, to)) throw new UsageError(`source and target are the same store (${from}): nothing to copy`);
  const source = await openStore(from, { readonly: true });
  try {
    // Every source run is checked before the target is opened: a refusal leaves no new file behind.
    const rows = await checkCopyable(source, runs, { incomplete });
    const target = await openStore(to);
    try {
      const copies: CopiedRun[] = [];
      for (const row of rows) copies.push(await copyRun(source, target, row));
      return output(from, to, copies);
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

function output(from: string, to: string, copies: CopiedRun[]): CommandOutput {
  const rows = copies.map((c) => [
    String(c.source),
    String(c.target),
    c.incomplete ? 'incomplete' : c.status,
    String(c.ops),
    String(c.events),
    String(c.snapshots),
    c.headHash,
  ]);
  const text =
    copies.length === 0
      ? [`no runs in ${from}: nothing copied`]
      : [
          `copied ${copies.length} ${copies.length === 1 ? 'run' : 'runs'} from ${from} to ${to}, each with the source's heads:`,
          ...table(['run', 'copy', 'status', 'ops', 'events', 'snapshots', 'head'], rows),
        ];
  return { exitCode: 0, json: { from, to, copies }, text };
}

function runIds(positionals: string[]): number[] {
  return positionals.map((p) => intArg(p, 'RUN'));
}

export const exportCommand = defineCommand({
  name: 'export',
  summary: 'copy runs of the database into another store, verified by their heads',
  usage: 'ioptrace export RUN... --to FILE [--incomplete] [--json] [--db FILE]',
  help: ['Copies the runs RUN... of the --db store into the store at --to (created when missing).', ...MOVE_HELP],
  options: { to: text(), incomplete: flag() },
  async run(positionals, values, env) {
    if (positionals.length === 0 || values.to === undefined) throw new UsageError(`usage: ${this.usage}`);
    return move(env.db, values.to, runIds(positionals), values.incomplete);
  },
});

export const importCommand = defineCommand({
  name: 'import',
  summary: 'copy runs of another store into the database, verified by their heads',
  usage: 'ioptrace import FILE [RUN...] [--incomplete] [--json] [--db FILE]',
  help: [
    'Copies the runs RUN... of the store at FILE (all of them when none is named) into the --db store.',
    ...MOVE_HELP,
  ],
  options: { incomplete: flag() },
  async run(positionals, values, env) {
    const [file, ...runs] = positionals;
    if (file === undefined) throw new UsageError(`usage: ${this.usage}`);
    return move(file, env.db, runIds(runs), values.incomplete);
  },
});
