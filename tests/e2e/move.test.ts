// SPDX-License-Identifier: GPL-2.0-only
// `ioptrace export` and `import` as a user runs them: a run moved out and back in keeps the pinned heads of
// its shipped trace and reads the same; a tampered source is refused with the broken row named, and
// nothing is written.
import Database from 'better-sqlite3';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, cli, freshDir } from '../support/built-cli.js';

const HEADS = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/heads.json'), 'utf8')) as Record<
  string,
  { digest: string; head: string; opsHead: string }
>;

interface RunJson {
  id: number;
  status: string;
  headHash: string;
  opsHeadHash: string;
  finalDigest: string;
  eventCount: number;
  opCount: number;
}

async function runsOf(db: string): Promise<RunJson[]> {
  const out = await cli(['runs', '--json', '--db', db]);
  expect(out.status).toBe(0);
  return JSON.parse(out.stdout) as RunJson[];
}

describe('export and import', () => {
  it('move runs out and back with their pinned heads; the copies read and verify as the originals', async () => {
    const dir = freshDir();
    const [home, carried, other] = ['home.db', 'carried.db', 'other.db'].map((f) => join(dir, f)) as [
      string,
      string,
      string,
    ];
    const trace = 'replays/bad-free.jsonl';
    for (const variant of ['v3', 'merged']) {
      expect((await cli(['replay', trace, '--variant', variant, '--db', home])).status).toBe(variant === 'v3' ? 1 : 0);
    }
    const exported = await cli(['export', '2', '1', '--to', carried, '--db', home]);
    expect(exported.stderr).toBe('');
    expect(exported.status).toBe(0);
    expect(exported.stdout.split('\n')[0]).toBe(
      `copied 2 runs from ${home} to ${carried}, each with the source's heads:`,
    );
    expect((await cli(['replay', trace, '--variant', 'upstream', '--db', other])).status).toBe(0);
    const imported = await cli(['import', carried, '--json', '--db', other]);
    expect(imported.status).toBe(0);
    const copies = (JSON.parse(imported.stdout) as { copies: { source: number; target: number }[] }).copies;
    expect(copies.map((c) => [c.source, c.target])).toEqual([
      [1, 2],
      [2, 3],
    ]);

    const pinned = (variant: string) => HEADS[`${trace}@${variant}`];
    const heads = (runs: RunJson[]) =>
      runs.map((r) => [r.status, r.headHash, r.opsHeadHash, r.finalDigest, r.eventCount, r.opCount]);
    const [v3, merged] = await runsOf(home);
    expect([v3?.headHash, v3?.opsHeadHash, v3?.finalDigest]).toEqual([
      pinned('v3')?.head,
      pinned('v3')?.opsHead,
      pinned('v3')?.digest,
    ]);
    // other.db: its own upstream run, then merged (exported first) and v3.
    const moved = await runsOf(other);
    expect(moved[0]?.headHash).toBe(pinned('upstream')?.head);
    expect(heads(moved.slice(1))).toEqual(heads([merged, v3] as RunJson[]));
    expect(moved[2]?.headHash).toBe(pinned('v3')?.head);
    expect(moved[1]?.headHash).toBe(pinned('merged')?.head);

    // The copy answers as the original: the same log, the same state at an event.
    for (const args of [['log'], ['at', '--max', '5']]) {
      const [cmd, ...rest] = args as [string, ...string[]];
      const original = await cli([cmd, '1', ...(cmd === 'at' ? ['40'] : []), ...rest, '--json', '--db', home]);
      const copy = await cli([cmd, '3', ...(cmd === 'at' ? ['40'] : []), ...rest, '--json', '--db', other]);
      expect(original.status).toBe(0);
      const strip = (text: string) => text.replace(/"(run|id)": \d+/g, '"$1": 0');
      expect(strip(copy.stdout)).toBe(strip(original.stdout));
    }
    const verify = await cli(['verify', '--db', other]);
    expect(verify.stdout).toBe(
      'run 1: ok, 58 events, 12 ops\nrun 2: ok, 58 events, 12 ops\nrun 3: ok, 60 events, 12 ops\n',
    );
  });

  it('refuse a tampered source, naming the broken row, and write nothing', async () => {
    const dir = freshDir();
    const home = join(dir, 'home.db');
    const target = join(dir, 'target.db');
    expect((await cli(['replay', 'replays/bad-free.jsonl', '--variant', 'v3', '--db', home])).status).toBe(1);
    const raw = new Database(home);
    raw.exec('DROP TRIGGER events_no_update');
    raw.prepare('UPDATE events SET payload = replace(payload, \'"v":1\', \'"v":2\') WHERE run = 1 AND seq = 17').run();
    const stored = raw.prepare('SELECT hash FROM events WHERE run = 1 AND seq = 17').pluck().get() as string;
    raw.close();
    const out = await cli(['export', '1', '--to', target, '--db', home]);
    expect(out.status).toBe(3);
    expect(out.stderr).toMatch(
      new RegExp(
        `^ioptrace: run 1 of ${home} does not verify, nothing was copied: event seq 17: hash-mismatch, expected [0-9a-f]{64}, found ${stored}\n$`,
      ),
    );
    expect(out.stdout).toBe('');
    expect(existsSync(target)).toBe(false);
  });

  it('refuse the same store as source and target, and a run that is not there', async () => {
    const dir = freshDir();
    const home = join(dir, 'home.db');
    expect((await cli(['replay', 'replays/bad-free.jsonl', '--variant', 'merged', '--db', home])).status).toBe(0);
    const same = await cli(['export', '1', '--to', join(dir, '.', 'home.db'), '--db', home]);
    expect([same.status, same.stderr]).toEqual([
      2,
      `ioptrace: source and target are the same store (${home}): nothing to copy\n`,
    ]);
    const missing = await cli(['export', '4', '--to', join(dir, 'new.db'), '--db', home]);
    expect([missing.status, missing.stderr]).toEqual([2, `ioptrace: no run 4 in ${home}\n`]);
    expect(existsSync(join(dir, 'new.db'))).toBe(false);
  });
});
