// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace variants`: the variants and fix flags, in upstream order. */
import { FIX_FLAGS, VARIANTS } from '../../kernel/variants.js';
import { defineCommand } from '../command.js';
import { table } from '../output.js';

export const variantsCommand = defineCommand({
  name: 'variants',
  summary: 'list the variants and the fix flags with their upstream commits',
  usage: 'ioptrace variants [--json]',
  help: [],
  options: {},
  run() {
    return Promise.resolve({
      exitCode: 0,
      json: { variants: VARIANTS, flags: FIX_FLAGS },
      text: [
        `variants: ${Object.entries(VARIANTS)
          .map(([v, f]) => `${v} (${f.length} flags)`)
          .join(', ')}`,
        '',
        ...table(
          ['flag', 'commit', 'release', 'spec', 'what it fixes'],
          FIX_FLAGS.map((f) => [f.name, f.commit, f.release, f.sections, f.summary]),
        ),
      ],
    });
  },
});
