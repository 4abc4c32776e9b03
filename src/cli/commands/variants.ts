// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace variants`: the variants, the release table, and the fix flags with their evidence, in upstream order. */
import {
  FIX_FLAGS,
  RELEASES,
  STABLE_SERIES,
  VARIANTS,
  releaseFlags,
  stableSeriesFlags,
} from '../../kernel/variants.js';
import { defineCommand } from '../command.js';
import { table } from '../output.js';

/** One row per release (the flags new in it) and per stable series (the backports on top of its release). */
export function releaseTable(): string[][] {
  const rows: string[][] = [];
  let before: string[] = [];
  for (const release of RELEASES) {
    const flags = releaseFlags(release);
    const added = flags.filter((f) => !before.includes(f));
    rows.push([release, String(flags.length), added.length ? `+ ${added.join(', ')}` : '(no flag fixed)']);
    before = flags;
  }
  for (const series of STABLE_SERIES) {
    const release = series.replace(/\.y$/, '');
    const backported = FIX_FLAGS.flatMap((f) =>
      f.backports
        .filter((b) => b.series === series)
        .map((b) => `${f.name} (${f.commit}${b.version === null ? '' : `, ${b.version}`})`),
    );
    rows.push([series, String(stableSeriesFlags(series).length), `${release} + ${backported.join(', ')}`]);
  }
  return rows;
}

export const variantsCommand = defineCommand({
  name: 'variants',
  summary: 'list the variants, the release table and the fix flags with their upstream commits',
  usage: 'ioptrace variants [--json]',
  help: [
    'A release variant (v6.2 ... the newest release in the table) has every flag whose fix that release',
    'contains; a stable series (v6.12.y) adds the fixes backported to it. Both take +FLAG / -FLAG.',
  ],
  options: {},
  run() {
    return Promise.resolve({
      exitCode: 0,
      json: { variants: VARIANTS, flags: FIX_FLAGS },
      text: [
        `variants: v3 (0 flags), merged (${VARIANTS['merged']?.length ?? 0} flags), upstream (${VARIANTS['upstream']?.length ?? 0} flags), releases ${RELEASES[0]} ... ${RELEASES[RELEASES.length - 1]}, stable series ${STABLE_SERIES.join(', ')}`,
        '',
        ...table(['release', 'flags', 'fixes'], releaseTable()),
        '',
        ...table(
          ['flag', 'commit', 'release', 'first release', 'backports', 'spec', 'what it fixes'],
          FIX_FLAGS.map((f) => [
            f.name,
            f.commit,
            f.release,
            f.firstRelease ?? 'none',
            f.backports.map((b) => b.series + (b.version === null ? '' : ` (${b.version})`)).join(', ') || '-',
            f.sections,
            f.summary,
          ]),
        ),
      ],
    });
  },
});
