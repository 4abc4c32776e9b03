// SPDX-License-Identifier: GPL-2.0-only
/**
 * The analyses over a PostgreSQL store answer as over SQLite: the same traces replayed by the same
 * commands into a SQLite file and into a PostgreSQL database, then every read command (runs, log, at,
 * diff, why, watch, bisect, audit, audit --all, verify) run on both, in text and --json: the outputs must
 * be equal, byte for byte (the store path, the one thing that differs, is not in them).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { COMMANDS } from '../../src/cli/commands/index.js';
import { parseCommandArgs, type CommandOutput } from '../../src/cli/command.js';
import { toJson } from '../../src/lib/format.js';
import { freshDatabase } from '../support/pg-server.js';
import { tempDir } from '../support/store-rows.js';

const pgUrl = inject('pgUrl');

async function cli(db: string, ...argv: string[]): Promise<CommandOutput> {
  const [name, ...rest] = argv;
  const cmd = COMMANDS.find((c) => c.name === name);
  if (cmd === undefined) throw new Error(`no command ${String(name)}`);
  const { positionals, values } = parseCommandArgs(cmd, rest);
  return cmd.run(positionals, values, { db, json: values['json'] === true, stderr: process.stderr });
}

const REPLAYS: string[][] = [
  ['replay', 'replays/bad-free.jsonl', '--variant', 'v3'],
  ['replay', 'replays/bad-free.jsonl', '--variant', 'upstream'],
  ['replay', 'tests/fixtures/audit/unfill-xarray-leak.jsonl', '--variant', 'v3'],
  ['replay', 'replays/map-file-stale-folio.jsonl', '--variant', 'v3'],
];

const READS: string[][] = [
  ['runs'],
  ['log', '1'],
  ['log', '3', '--type', 'PagesPinned,PagesUnpinned'],
  ['log', '1', '--op', '3'],
  ['at', '1', '40'],
  ['diff', '1', '10', '60'],
  ['why', '3', '--index', '1:0'],
  ['watch', '1', 'npinned != last_npinned'],
  ['watch', '3', 'violations > 0'],
  ['bisect', '1', '2'],
  ['audit', '3'],
  ['audit', '1'],
  ['audit', '--all'],
  ['verify'],
  ['verify', '4'],
];

describe.skipIf(pgUrl === '')(
  `the analyses on PostgreSQL ${pgUrl === '' ? `(skipped: ${inject('pgSkip')})` : ''}`,
  () => {
    const tmp = tempDir();
    const sqlite = join(tmp.dir, 'same.db');
    let postgres = '';

    beforeAll(async () => {
      postgres = await freshDatabase(pgUrl);
      for (const argv of REPLAYS) {
        const a = await cli(sqlite, ...argv);
        const b = await cli(postgres, ...argv);
        expect(b.text).toEqual(a.text);
      }
    });
    afterAll(() => tmp.remove());

    it.each(READS.map((argv) => [argv.join(' '), argv]))('%s: the same text and JSON', async (_name, argv) => {
      const a = await cli(sqlite, ...argv);
      const b = await cli(postgres, ...argv);
      expect(a.text.length).toBeGreaterThan(0);
      expect({ exit: b.exitCode, text: b.text }).toEqual({ exit: a.exitCode, text: a.text });
      const aj = await cli(sqlite, ...argv, '--json');
      const bj = await cli(postgres, ...argv, '--json');
      expect(toJson(bj.json)).toBe(toJson(aj.json));
    });
  },
);
