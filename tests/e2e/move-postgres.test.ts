// SPDX-License-Identifier: GPL-2.0-only
// `ioptrace export` and `import` between SQLite and PostgreSQL as a user runs them, both ways: runs replayed
// into a SQLite file are exported into a PostgreSQL database and imported into another, then exported and
// imported back into SQLite files; every copy keeps the pinned heads of its shipped trace, verifies, and
// reads as the original. The server is the throwaway one of tests/support/pg-global.ts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { ROOT, cli, freshDir } from '../support/built-cli.js';
import { freshDatabase } from '../support/pg-server.js';

const pgUrl = inject('pgUrl');
const TRACE = 'replays/bad-free.jsonl';
const HEADS = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/heads.json'), 'utf8')) as Record<
  string,
  { digest: string; head: string; opsHead: string }
>;

interface RunJson {
  id: number;
  variant: string;
  status: string;
  headHash: string;
  opsHeadHash: string;
  finalDigest: string;
  eventCount: number;
  opCount: number;
}

async function runsOf(db: string): Promise<RunJson[]> {
  const out = await cli(['runs', '--json', '--db', db]);
  expect(out.stderr).toBe('');
  expect(out.status).toBe(0);
  return JSON.parse(out.stdout) as RunJson[];
}

/** Each run as [variant, status, head, ops head, final digest, events, ops]. */
async function headsOf(db: string): Promise<unknown[][]> {
  return (await runsOf(db)).map((r) => [
    r.variant,
    r.status,
    r.headHash,
    r.opsHeadHash,
    r.finalDigest,
    r.eventCount,
    r.opCount,
  ]);
}

/** The pinned heads of TRACE replayed on `variant`, with its counts (58/60 events, 12 ops). */
function pinned(variant: 'v3' | 'merged'): unknown[] {
  const p = HEADS[`${TRACE}@${variant}`];
  return [variant, 'complete', p?.head, p?.opsHead, p?.digest];
}

async function moved(args: string[]): Promise<{ source: number; target: number; headHash: string }[]> {
  const out = await cli([...args, '--json']);
  expect(out.stderr).toBe('');
  expect(out.status).toBe(0);
  return (JSON.parse(out.stdout) as { copies: { source: number; target: number; headHash: string }[] }).copies;
}

describe.skipIf(pgUrl === '')(
  `export and import between SQLite and PostgreSQL ${pgUrl === '' ? `(skipped: ${inject('pgSkip')})` : ''}`,
  () => {
    it('carry runs both ways with their pinned heads; every copy verifies and reads as the original', async () => {
      const dir = freshDir();
      const home = join(dir, 'home.db');
      expect((await cli(['replay', TRACE, '--variant', 'v3', '--db', home])).status).toBe(1);
      expect((await cli(['replay', TRACE, '--variant', 'merged', '--db', home])).status).toBe(0);
      const original = await headsOf(home);
      expect(original.map((r) => r.slice(0, 5))).toEqual([pinned('v3'), pinned('merged')]);
      expect(original.map((r) => r.slice(5))).toEqual([
        [60, 12],
        [58, 12],
      ]);

      // SQLite -> PostgreSQL: export from the file, import into the server.
      const exportedTo = await freshDatabase(pgUrl);
      const importedTo = await freshDatabase(pgUrl);
      const exported = await moved(['export', '2', '1', '--to', exportedTo, '--db', home]);
      expect(exported.map((c) => [c.source, c.target])).toEqual([
        [2, 1],
        [1, 2],
      ]);
      const imported = await moved(['import', home, '--db', importedTo]);
      expect(imported.map((c) => [c.source, c.target])).toEqual([
        [1, 1],
        [2, 2],
      ]);
      expect(await headsOf(exportedTo)).toEqual([original[1], original[0]]);
      expect(await headsOf(importedTo)).toEqual(original);

      // PostgreSQL -> SQLite: export from the server, import from it.
      const back = join(dir, 'back.db');
      const pulled = join(dir, 'pulled.db');
      expect((await moved(['export', '2', '--to', back, '--db', exportedTo])).map((c) => c.headHash)).toEqual([
        original[0]?.[2],
      ]);
      expect((await moved(['import', importedTo, '2', '--db', pulled])).map((c) => c.headHash)).toEqual([
        original[1]?.[2],
      ]);
      expect(await headsOf(back)).toEqual([original[0]]);
      expect(await headsOf(pulled)).toEqual([original[1]]);

      for (const db of [exportedTo, importedTo, back, pulled]) {
        const verify = await cli(['verify', '--db', db]);
        expect([verify.status, verify.stderr]).toEqual([0, '']);
        expect(verify.stdout).toMatch(/^(run \d+: ok, (58|60) events, 12 ops\n)+$/);
      }
      // The copies read as the original: the v3 run's log and its state at event 40, on each store.
      const strip = (text: string) => text.replace(/"(run|id)": \d+/g, '"$1": 0');
      const reads = async (db: string, run: string) =>
        Promise.all(
          [
            ['log', run],
            ['at', run, '40', '--max', '5'],
          ].map(async (args) => {
            const out = await cli([...args, '--json', '--db', db]);
            expect(out.status).toBe(0);
            return strip(out.stdout);
          }),
        );
      const want = await reads(home, '1');
      expect(await reads(exportedTo, '2')).toEqual(want);
      expect(await reads(importedTo, '1')).toEqual(want);
      expect(await reads(back, '1')).toEqual(want);
    });
  },
);
