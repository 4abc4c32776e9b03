import { describe, expect, it } from 'vitest';
import { compileWatch, watch, ExpressionError } from '../../../src/timetravel/watch.js';
import { BadInputError, NotFoundError } from '../../../src/lib/errors.js';
import type { State } from '../../../src/state/state.js';
import { scriptedRun, ids, pfnOf } from '../../support/recorded-runs.js';

const run = scriptedRun({ snapshotEvery: 16 });

/** The oracle: test the predicate on the live state after every event. */
function firstByBruteForce(expression: string, from = 0): { seq: number; op: number } | null {
  const pred = compileWatch(expression);
  for (let seq = from; seq < run.live.length; seq++) {
    if (pred.test(run.live[seq] as State))
      return { seq, op: seq === 0 ? -1 : (run.recorder.opOfEvent[seq - 1] as number) };
  }
  return null;
}

const EXPRESSIONS = [
  'npinned != last_npinned',
  'violations > 0',
  'warns >= 1 && violations == 0',
  `pins(${pfnOf(1) + 5}) == 0 && xa(${ids(1).pages}, 5) == none`,
  'user.1000.locked_vm >= 128',
  'user.1000.locked_vm < 64 || pages.100.npinned == 64',
  'mm.1.users == 1',
  `pages.${ids(0).pages}.npinned != pages.${ids(0).pages}.last_npinned`,
  `xa(${ids(2).pages}, 63) == ${pfnOf(2) + 63}`,
  `!(pins(${pfnOf(3)}) == 0)`,
  'refs > 1',
  `maps(0x403ff) == 0 && pins(0x40400) == 0 && maps(0x40400)`,
  'npinned == 64 && violations',
  'warns == 7',
];

describe('watch', () => {
  it('finds the first event where some iopt_pages has npinned != last_npinned', async () => {
    expect(await watch(run.source, 'npinned != last_npinned')).toEqual({ seq: 22, op: 3 });
  });

  it('finds a predicate that holds only between two snapshots (false at both)', async () => {
    const expr = `pages.${ids(0).pages}.npinned != pages.${ids(0).pages}.last_npinned`;
    expect(compileWatch(expr).test(run.live[16] as State)).toBe(false);
    expect(compileWatch(expr).test(run.live[32] as State)).toBe(false);
    expect(await watch(run.source, expr)).toEqual({ seq: 22, op: 3 });
    expect(await watch(run.source, expr, { from: 28 })).toEqual({ seq: 209, op: 17 });
  });

  it('answers seq 0 (op -1) when the predicate holds in the initial state', async () => {
    expect(await watch(run.source, `pins(${pfnOf(1) + 5}) == 0 && violations == 0`)).toEqual({ seq: 0, op: -1 });
  });

  it('does not let a predicate on a named iopt_pages hold before that iopt_pages exists', async () => {
    const pages = ids(1).pages;
    expect((run.live[31] as State).pages[pages]).toBeUndefined();
    expect((run.live[32] as State).pages[pages]).toBeDefined();
    expect(await watch(run.source, `pins(${pfnOf(1) + 5}) == 0 && xa(${pages}, 5) == none`)).toEqual({
      seq: 32,
      op: 4,
    });
    expect(await watch(run.source, `pages.${pages}.npinned != 1`)).toEqual({ seq: 32, op: 4 });
    expect(await watch(run.source, `!(pages.${pages}.npinned == 1)`)).toEqual({ seq: 32, op: 4 });
    expect(await watch(run.source, `pages.${pages}.npinned != 1 || violations == 0`)).toEqual({ seq: 0, op: -1 });
    expect(await watch(run.source, `pages.${pages}.npinned != 1 && violations == 0`)).toEqual({ seq: 32, op: 4 });
    expect(
      await watch(run.source, `pins(${pfnOf(1) + 5}) == 0 && xa(${ids(1).pages}, 5) == none`, { from: 40 }),
    ).toEqual({
      seq: 221,
      op: 18,
    });
  });

  it('returns null when the predicate never holds', async () => {
    expect(await watch(run.source, 'warns == 7')).toBeNull();
  });

  it('refuses an object that never exists in the run, naming it', async () => {
    await expect(watch(run.source, 'pages.9999.npinned != 0', { runName: 'run 1' })).rejects.toThrow(
      new NotFoundError('pages 9999 never exists in run 1', 'pages', 9999),
    );
    await expect(watch(run.source, 'violations == 0 || xa(777, 0) == none')).rejects.toThrow(
      new NotFoundError('pages 777 never exists in the run', 'pages', 777),
    );
    await expect(watch(run.source, 'user.4242.locked_vm > 0')).rejects.toThrow('user 4242 never exists in the run');
    await expect(watch(run.source, 'mm.99.users > 0')).rejects.toThrow('mm 99 never exists in the run');
  });

  it('agrees with testing every event, for every expression and several starting points', async () => {
    for (const expr of EXPRESSIONS) {
      for (const from of [0, 1, 16, 23, 100, 203, 300]) {
        expect(await watch(run.source, expr, { from }), `${expr} from ${from}`).toEqual(firstByBruteForce(expr, from));
      }
    }
  });

  it('bisects the snapshots of a monotonic predicate to the same answer', async () => {
    for (const expr of [
      'violations > 0',
      'warns >= 1',
      'user.1000.locked_vm >= 128',
      'mm.1.users == 1',
      `pins(${pfnOf(1)}) >= 1`,
    ]) {
      expect(await watch(run.source, expr, { monotonic: true }), expr).toEqual(firstByBruteForce(expr));
    }
  });

  it('skips stretches without a relevant event: a rare predicate reads no event of other types', () => {
    expect(compileWatch('violations > 0').types).toEqual(['Warned', 'ViolationDetected']);
    expect(compileWatch('npinned != last_npinned').types).toEqual([
      'PagesAllocated',
      'PagesReleased',
      'NpinnedChanged',
      'LastNpinnedSet',
      'PagesRefChanged',
    ]);
    expect(compileWatch('1 == 1').types).toEqual([]);
  });
});

describe('compileWatch parse errors', () => {
  const error = (expr: string): string => {
    try {
      compileWatch(expr);
    } catch (err) {
      expect(err).toBeInstanceOf(ExpressionError);
      expect(err).toBeInstanceOf(BadInputError);
      expect(err).toMatchObject({ field: 'expression', line: null });
      return (err as Error).message;
    }
    throw new Error(`"${expr}" parsed`);
  };

  it('names the column and what was expected', () => {
    expect(error('npinned != ')).toBe(
      `bad expression at column 12: expected a value, '(' or '!' but found the end of the expression (in "npinned != ")`,
    );
    expect(error('npinned $ 3')).toBe(`bad expression at column 9: unexpected character '$' (in "npinned $ 3")`);
    expect(error('(npinned > 1')).toBe(
      `bad expression at column 13: expected ')' to close the '(' at column 1 but found the end of the expression (in "(npinned > 1")`,
    );
    expect(error('pins(1')).toBe(
      `bad expression at column 7: expected ')' after the arguments of pins but found the end of the expression (in "pins(1")`,
    );
    expect(error('xa(1 2)')).toBe(
      `bad expression at column 6: expected ',' between the arguments of xa but found '2' (in "xa(1 2)")`,
    );
    expect(error('npinned 3')).toBe(
      `bad expression at column 9: expected an operator or the end but found '3' (in "npinned 3")`,
    );
    expect(error('(npinned > 1) == 2')).toBe(
      `bad expression at column 1: '==' compares values, but its left side is a condition (in "(npinned > 1) == 2")`,
    );
    expect(error('pages.x.npinned > 0')).toBe(
      `bad expression at column 1: expected a pages id in 'pages.x.npinned' (in "pages.x.npinned > 0")`,
    );
    expect(error('mm.1.foo > 0')).toBe(
      `bad expression at column 1: mm has no field 'foo' (locked_vm, pinned_vm, mm_users, mm_count) (in "mm.1.foo > 0")`,
    );
    expect(error('npinned > -x')).toBe(`bad expression at column 11: '-' must precede a number (in "npinned > -x")`);
    expect(error('npinned - 1')).toBe(
      `bad expression at column 9: expected an operator or the end but found '-' (in "npinned - 1")`,
    );
    expect(error('foo')).toMatch(/^bad expression at column 1: unknown field 'foo' \(fields: npinned, last_npinned/);
  });

  it('accepts hex, negative numbers, none, ! and nested parentheses', () => {
    const pred = compileWatch('!((violations == -1) || xa(0x64, 0) != none) && pins(0x40000) == 0');
    const empty = run.live[0] as State;
    // iopt_pages 0x64 does not exist in the empty state: xa(0x64, 0) is unknown, and so is the whole.
    expect(pred.test(empty)).toBe(false);
    expect(compileWatch('!((violations == -1) || pins(0x64) != 0) && pins(0x40000) == 0').test(empty)).toBe(true);
  });
});
