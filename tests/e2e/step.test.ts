// SPDX-License-Identifier: GPL-2.0-only
// `ioptrace step`: the cursor walks a stored run op by op, prints the immer patches of each step, and holds
// every step to the digest the run recorded, forward and back.
import Database from 'better-sqlite3';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { ROOT, cli, freshDir } from '../support/built-cli.js';

const BAD_FREE = join(ROOT, 'replays/bad-free.jsonl');
const SLOW = 240_000;

const dir = freshDir();
const db = join(dir, 'step.db');
/** The digest the replay recorded after each op of run 1. */
let recorded: string[] = [];

beforeAll(async () => {
  expect((await cli(['replay', BAD_FREE, '--variant', 'v3', '--db', db])).status).toBe(1);
  const store = await openStore(db, { readonly: true });
  try {
    recorded = (await store.ops(1)).map((o) => o.digest);
  } finally {
    await store.close();
  }
}, SLOW);

function lines(stdout: string): string[] {
  return stdout.trimEnd().split('\n');
}

describe('ioptrace step on bad-free replayed on v3', () => {
  it(
    'forward from op 7 to op 9: the ops, their trace lines, errnos and patches, each at its recorded digest',
    async () => {
      expect(recorded).toHaveLength(12);
      const r = await cli(['step', '1', '--from', '7', '--to', '9', '--db', db]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const d = (op: number): string => recorded[op] ?? '';
      const half = (op: number, which: 'lo' | 'hi'): string =>
        `0x${Number.parseInt(which === 'hi' ? d(op).slice(0, 8) : d(op).slice(8), 16).toString(16)}`;
      expect(lines(r.stdout)).toEqual([
        `run 1: 2 steps from op 7 to op 9 (after op 7: digest ${d(7)})`,
        'op 8  line 33  access_pin  EFAULT  (events 36..45, 6 patches)',
        // v3's reader destroy mmput()s the exited mm a reference it never took: mm_users goes below zero.
        '  replace mms.1.mm_users 0 -> -1',
        '  replace violations (count) 0 -> 3',
        `  replace digest.lo ${half(7, 'lo')} -> ${half(8, 'lo')}`,
        `  replace digest.hi ${half(7, 'hi')} -> ${half(8, 'hi')}`,
        '  replace next object id 4 -> 6',
        '  replace ops done 8 -> 9',
        `  digest ${d(8)} = recorded after op 8`,
        'op 9  line 36  access_destroy  ok  (events 46..48, 5 patches)',
        '  replace ioases.A.access_list [mdev] -> []',
        '  remove accesses.mdev (was {name mdev, ioas A, needs_pin_pages yes, items {}})',
        `  replace digest.lo ${half(8, 'lo')} -> ${half(9, 'lo')}`,
        `  replace digest.hi ${half(8, 'hi')} -> ${half(9, 'hi')}`,
        '  replace ops done 9 -> 10',
        `  digest ${d(9)} = recorded after op 9`,
      ]);
    },
    SLOW,
  );

  it(
    '--back undoes op 9 then op 8 by inverse patches and ends at the digest forward starts from (op 7)',
    async () => {
      const r = await cli(['step', '1', '--from', '7', '--to', '9', '--back', '--json', '--db', db]);
      expect(r.status).toBe(0);
      const out = JSON.parse(r.stdout) as {
        back: boolean;
        steps: {
          direction: string;
          op: number;
          line: number;
          errno: string | null;
          landsAfter: number;
          digest: string;
          patchCount: number;
          patches: { op: string; path: string[]; from?: string; to?: string; text: string }[];
        }[];
      };
      expect(out.back).toBe(true);
      expect(out.steps.map((s) => [s.direction, s.op, s.line, s.errno, s.landsAfter, s.digest])).toEqual([
        ['back', 9, 36, null, 8, recorded[8]],
        ['back', 8, 33, 'EFAULT', 7, recorded[7]],
      ]);
      // Undoing the access destroy puts the access back whole.
      expect(out.steps[0]?.patches[1]).toEqual({
        op: 'add',
        path: ['accesses', 'mdev'],
        to: '{name mdev, ioas A, needs_pin_pages yes, items {}}',
        text: 'add accesses.mdev {name mdev, ioas A, needs_pin_pages yes, items {}}',
      });
      expect(out.steps[1]?.patches[0]).toEqual({
        op: 'replace',
        path: ['mms', '1', 'users'],
        from: '-1',
        to: '0',
        text: 'replace mms.1.mm_users -1 -> 0',
      });
      const forward = await cli(['step', '1', '--from', '6', '--to', '7', '--json', '--db', db]);
      const last = (JSON.parse(forward.stdout) as { steps: { op: number; digest: string }[] }).steps.at(-1);
      expect(last).toEqual(expect.objectContaining({ op: 7, digest: out.steps[1]?.digest }));
    },
    SLOW,
  );

  it(
    'bounds a long step: --max 3 prints three patches and counts the rest',
    async () => {
      const r = await cli(['step', '1', '--from', '1', '--to', '2', '--max', '3', '--db', db]);
      expect(r.status).toBe(0);
      expect(lines(r.stdout).slice(1)).toEqual([
        'op 2  line 15  mmap  ok  (events 7..11, 24 patches)',
        '  add mms.1.pt.runs.root.keys.0 0x7f0000000',
        '  add mms.1.pt.runs.root.vals.0 {index 0x7f0000000, pfn 0x40000, count 1, n 2, indexStep 1, pfnStep 2}',
        '  replace mms.1.pt.runs.size 0 -> 1',
        '  and 21 more',
        `  digest ${recorded[2]} = recorded after op 2`,
      ]);
    },
    SLOW,
  );

  it(
    'refuses a range outside the run or backwards (exit 2)',
    async () => {
      const late = await cli(['step', '1', '--to', '12', '--db', db]);
      expect([late.status, late.stderr.trim()]).toEqual([2, 'ioptrace: run 1 has ops 0..11; got --from 0 --to 12']);
      const backwards = await cli(['step', '1', '--from', '9', '--to', '8', '--db', db]);
      expect([backwards.status, backwards.stderr.trim()]).toEqual([2, 'ioptrace: --from 9 is after --to 8']);
    },
    SLOW,
  );

  it(
    'a recorded digest that stepping does not reach is an internal error naming the op, forward and back',
    async () => {
      const tampered = join(dir, 'tampered.db');
      copyFileSync(db, tampered);
      const raw = new Database(tampered);
      try {
        raw.exec('DROP TRIGGER ops_no_update');
        raw.prepare("UPDATE ops SET digest = '0123456789abcdef' WHERE run = 1 AND idx = 7").run();
      } finally {
        raw.close();
      }
      const forward = await cli(['step', '1', '--from', '6', '--to', '8', '--db', tampered]);
      expect([forward.status, forward.stderr.trim()]).toEqual([
        3,
        `ioptrace: internal error: op 7: stepping gives digest ${recorded[7]}, the run recorded 0123456789abcdef`,
      ]);
      const back = await cli(['step', '1', '--from', '7', '--to', '9', '--back', '--db', tampered]);
      expect([back.status, back.stderr.trim()]).toEqual([
        3,
        `ioptrace: internal error: op 8: stepping back gives digest ${recorded[7]}, the run recorded 0123456789abcdef after op 7`,
      ]);
    },
    SLOW,
  );
});
