// The fail-nth counters of `ioptrace run` and the parse of what a program writes to fail-nth (kstrtouint).
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FailNth, createDebugfs, parseFailNth } from '../../../src/server/fail-nth.js';

const text = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('parseFailNth (kstrtouint, base 0)', () => {
  it('reads decimal, hex, octal, a plus sign and one trailing newline', () => {
    expect(parseFailNth(text('17'))).toBe(17);
    expect(parseFailNth(text('17\n'))).toBe(17);
    expect(parseFailNth(text('+3'))).toBe(3);
    expect(parseFailNth(text('0x1f'))).toBe(31);
    expect(parseFailNth(text('010'))).toBe(8);
    expect(parseFailNth(text('0'))).toBe(0);
    expect(parseFailNth(text('0\n'))).toBe(0);
    expect(parseFailNth(text('4294967295'))).toBe(4294967295);
    // The string ends at a NUL, as the kernel's buffer does.
    expect(parseFailNth(text('12\0junk'))).toBe(12);
  });

  it('refuses what kstrtouint refuses: EINVAL, and ERANGE past 32 bits', () => {
    expect(parseFailNth(text('x'))).toBe(-22);
    expect(parseFailNth(text(''))).toBe(-22);
    expect(parseFailNth(text('12 '))).toBe(-22);
    expect(parseFailNth(text('1\n\n'))).toBe(-22);
    expect(parseFailNth(text('-1'))).toBe(-22);
    expect(parseFailNth(text('08'))).toBe(-22);
    expect(parseFailNth(text('4294967296'))).toBe(-34);
  });
});

describe('FailNth', () => {
  it('counts a task down site by site and fails the nth; other tasks are untouched', () => {
    const f = new FailNth();
    f.set(7, 3);
    expect([f.point(7), f.point(8), f.point(7), f.point(7), f.point(7)]).toEqual([false, false, false, true, false]);
    expect(f.value(7)).toBe(0);
    expect(f.value(8)).toBe(0);
  });

  it('counts off what an armed op reached: the rest, or 0 once it fired', () => {
    const f = new FailNth();
    f.afterOp(1, 10, 4);
    expect(f.value(1)).toBe(6);
    f.afterOp(1, 6, 6);
    expect(f.value(1)).toBe(0);
  });
});

describe('createDebugfs', () => {
  it('writes the fault attributes with their knobs and defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ioptrace-debugfs-'));
    createDebugfs(dir);
    expect(readdirSync(dir).sort()).toEqual(['fail_iommufd', 'fail_page_alloc', 'fail_usercopy', 'failslab']);
    expect(readFileSync(join(dir, 'failslab', 'ignore-gfp-wait'), 'utf8')).toBe('Y\n');
    expect(readFileSync(join(dir, 'fail_page_alloc', 'min-order'), 'utf8')).toBe('1\n');
    expect(readFileSync(join(dir, 'fail_usercopy', 'verbose'), 'utf8')).toBe('2\n');
  });
});
