// SPDX-License-Identifier: GPL-2.0-only
/**
 * The audit of a long run: 50,000 trace ops, about 250k ledger lines, in text, JSON and HTML. Every
 * rendering once spread the ledger or the chart's values into Math.max and died with RangeError (the
 * HTML one was then reported as a failed file write). The work (seconds of synchronous replay and audit)
 * runs in a child process so that the test worker stays responsive.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { maxOf, minOf, pushAll } from '../../src/lib/arrays.js';

const ROOT = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'ioptrace-audit-long-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('maxOf, minOf, pushAll', () => {
  it('fold arrays far longer than the call stack takes as arguments', () => {
    const values = Array.from({ length: 500_000 }, (_, i) => (i * 7919) % 500_000);
    expect([maxOf(values), minOf(values), maxOf([], 3), minOf([], 3), maxOf([2, 9, 4], 10)]).toEqual([
      499_999, 0, 3, 3, 10,
    ]);
    const out = [1];
    expect(pushAll(out, values).length).toBe(500_001);
    expect(() => Math.max(...values)).toThrow(RangeError);
  });
});

describe('audit of a 50,000-op run', () => {
  it('renders text, JSON and HTML with every ledger line and one chart point per op', async () => {
    const { stdout } = await promisify(execFile)(
      join(ROOT, 'node_modules/.bin/vite-node'),
      [join(ROOT, 'tests/long/audit-long-child.ts'), '--', dir, '50000'],
      { cwd: ROOT, maxBuffer: 1 << 20, timeout: 900_000 },
    );
    const s = JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as Record<string, unknown>;
    // 24,995 pin/unpin pairs of one page: each moves five counters (mm.locked_vm stays: USER accounting).
    expect(s).toEqual({
      run: 1,
      ops: 50_002,
      ledger: 249_950,
      byCounter: {
        pins: 49_990,
        npinned: 49_990,
        last_npinned: 49_990,
        'user.locked_vm': 49_990,
        'mm.locked_vm': 0,
        'mm.pinned_vm': 49_990,
      },
      ok: true,
      text: {
        lines: 249_970,
        head: [
          `run 1: ${dir}/long.jsonl on upstream: 249950 ledger lines over 50002 ops`,
          'the books balance: all 5 rules hold, no violation, no WARN',
        ],
        last: '  799883  49997  49998  mm.pinned_vm    1      2      -1     0      do_update_pinned',
      },
      json: { ledger: 249_950, rulesOk: 5 },
      html: { polylines: 6, pinsPoints: 50_002, ledgerRows: 249_963 },
    });
    expect(readFileSync(join(dir, 'long.html'), 'utf8').startsWith('<!DOCTYPE html>')).toBe(true);
  }, 900_000);
});
