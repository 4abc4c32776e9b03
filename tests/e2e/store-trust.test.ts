// SPDX-License-Identifier: GPL-2.0-only
// The CLI never loses what is in a store or in a file it was pointed at, says why a replay failed, and
// reads a store on read-only media.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { ROOT, cli, freshDir } from '../support/built-cli.js';

const BAD_FREE = join(ROOT, 'replays/bad-free.jsonl');

const SLOW = 240_000;
const isRoot = process.getuid?.() === 0;

function tryRun(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const mounted: string[] = [];
afterAll(() => {
  for (const dir of mounted.splice(0).reverse()) tryRun('umount', [dir]);
});

/**
 * A read-only view of `dir`: a read-only bind mount as root (chmod does not stop root), the directory made
 * read-only otherwise. Null when neither is possible here.
 */
function readOnlyView(dir: string): string | null {
  if (!isRoot) {
    chmodSync(dir, 0o555);
    return dir;
  }
  const view = `${dir}-ro`;
  mkdirSync(view);
  if (!tryRun('mount', ['--bind', dir, view])) return null;
  mounted.push(view);
  if (!tryRun('mount', ['-o', 'remount,bind,ro', view])) return null;
  return view;
}

const canMount =
  !isRoot || tryRun('sh', ['-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"']);

describe('demo never removes or overwrites what it did not create', () => {
  it(
    'appends its two runs to a store that has runs',
    async () => {
      const dir = freshDir();
      const db = join(dir, 'work.db');
      expect((await cli(['replay', BAD_FREE, '--variant', 'v3', '--db', db])).status).toBe(1);
      const r = await cli(['demo', BAD_FREE], { cwd: dir, env: { IOPTRACE_DB: db } });
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`database ${db}: run 2 = v3, run 3 = merged`);
      const runs = JSON.parse((await cli(['runs', '--json', '--db', db])).stdout) as { id: number; variant: string }[];
      expect(runs.map((run) => [run.id, run.variant])).toEqual([
        [1, 'v3'],
        [2, 'v3'],
        [3, 'merged'],
      ]);
      // Only the store and SQLite's own -wal/-shm beside it.
      expect(readdirSync(dir).filter((name) => !/-(wal|shm)$/.test(name))).toEqual(['work.db']);
    },
    SLOW,
  );

  it(
    'refuses a text file: exit 2, the file byte for byte, nothing created beside it',
    async () => {
      const dir = freshDir();
      const notes = join(dir, 'notes.txt');
      writeFileSync(notes, 'my notes\n');
      const r = await cli(['demo', BAD_FREE, '--db', notes]);
      expect(r.status).toBe(2);
      expect(r.stderr.trim()).toBe(
        `ioptrace: ${notes} is not an ioptrace store (not an SQLite database); it was left untouched`,
      );
      expect(readFileSync(notes, 'utf8')).toBe('my notes\n');
      expect(readdirSync(dir)).toEqual(['notes.txt']);
    },
    SLOW,
  );
});

describe('a read command pointed at no store', () => {
  it(
    'runs --db typo.db: exit 2, the path named, no file created',
    async () => {
      const dir = freshDir();
      const r = await cli(['runs', '--db', 'typo.db'], { cwd: dir });
      expect({ status: r.status, stderr: r.stderr.trim(), stdout: r.stdout }).toEqual({
        status: 2,
        stderr: 'ioptrace: no ioptrace store at typo.db',
        stdout: '',
      });
      expect(readdirSync(dir)).toEqual([]);
    },
    SLOW,
  );
});

describe.skipIf(!isRoot || !canMount)('a replay onto a full disk (a small tmpfs)', () => {
  it(
    'exit 3 naming SQLITE_FULL; runs shows the run failed with its reason',
    async () => {
      const dir = freshDir();
      const disk = join(dir, 'disk');
      mkdirSync(disk);
      expect(tryRun('mount', ['-t', 'tmpfs', '-o', 'size=640k', 'tmpfs', disk])).toBe(true);
      mounted.push(disk);
      const trace = join(dir, 'grow.jsonl');
      writeFileSync(
        trace,
        [
          '{"op":"process","pid":1,"memlock":"unlimited"}',
          '{"op":"open","ctx":1,"pid":1}',
          '{"op":"ioas_alloc","ioas":1}',
          '{"op":"mmap","pid":1,"addr":"0x10000000","length":"0x1000000"}',
          '{"op":"domain_attach","domain":1,"ioas":1}',
          '{"op":"ioas_map","ioas":1,"pid":1,"uptr":"0x10000000","length":"0x1000000","iova":"0x100000000"}',
          '',
        ].join('\n'),
      );
      const db = join(disk, 'ledger.db');
      const r = await cli(['replay', trace, '--db', db]);
      expect({ status: r.status, stderr: r.stderr.trim() }).toEqual({
        status: 3,
        stderr:
          'ioptrace: run 1 failed at op 4 (trace line 4): batch of events 1..4096 not written: database or disk is full (SQLITE_FULL); the run is marked failed with the events committed before',
      });
      const runs = await cli(['runs', '--db', db]);
      expect(runs.status).toBe(0);
      expect(runs.stdout.trim().split('\n').slice(2)).toEqual([
        `1    failed  upstream  0    0       -       ${trace}`,
        '',
        'run 1 failed at op 4 (trace line 4): batch of events 1..4096 not written: database or disk is full (SQLITE_FULL)',
      ]);
    },
    SLOW,
  );
});

describe.skipIf(!canMount)('a store on read-only media', () => {
  it(
    'is read by runs, log, at, verify and audit',
    async () => {
      const dir = freshDir();
      expect((await cli(['replay', BAD_FREE, '--variant', 'v3', '--db', join(dir, 'l.db')])).status).toBe(1);
      expect(readdirSync(dir)).toEqual(['l.db']);
      const view = readOnlyView(dir);
      expect(view).not.toBeNull();
      const db = join(view ?? '', 'l.db');
      const runs = await cli(['runs', '--json', '--db', db]);
      expect(runs.status).toBe(0);
      expect((JSON.parse(runs.stdout) as { id: number; status: string }[]).map((r) => [r.id, r.status])).toEqual([
        [1, 'complete'],
      ]);
      const log = await cli(['log', '1', '--type', 'ViolationDetected', '--db', db]);
      expect(log.status).toBe(0);
      expect(log.stdout.trim().split('\n')).toHaveLength(3);
      expect((await cli(['at', '1', '39', '--db', db])).status).toBe(0);
      expect(await cli(['verify', '--db', db])).toMatchObject({ status: 0, stdout: 'run 1: ok, 60 events, 12 ops\n' });
      expect((await cli(['audit', '1', '--db', db])).status).not.toBe(3);
      expect(readdirSync(dir)).toEqual(['l.db']);
    },
    SLOW,
  );

  it(
    'with the -wal and -shm of a store still open when it was archived: read, including the last commits',
    async () => {
      const source = freshDir();
      const archive = freshDir();
      const live = join(source, 'l.db');
      const store = await openStore(live);
      const writer = await store.beginRun({
        tracePath: 't.jsonl',
        traceSha256: createHash('sha256').update('').digest('hex'),
        traceText: '',
        variant: 'v3',
        flags: [],
        faultPlan: null,
        header: null,
      });
      await writer.finish('complete', { finalDigest: '0000000000000000' });
      // Copied while the writer is open: the run is only in the -wal.
      for (const suffix of ['', '-wal', '-shm']) copyFileSync(`${live}${suffix}`, join(archive, `l.db${suffix}`));
      await store.close();
      const view = readOnlyView(archive);
      const r = await cli(['runs', '--json', '--db', join(view ?? '', 'l.db')]);
      expect(r.status).toBe(0);
      expect((JSON.parse(r.stdout) as { status: string }[]).map((run) => run.status)).toEqual(['complete']);
      expect(existsSync(join(archive, 'l.db-wal'))).toBe(true);
    },
    SLOW,
  );
});
