// SPDX-License-Identifier: GPL-2.0-only
// The command-line options: every flag a zod schema (src/cli/options.ts), one spelling per flag across the
// commands, a bad value refused with its flag and what it takes (exit 2), an unknown flag refused by name.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { COMMANDS } from '../../../src/cli/commands/index.js';
import { atCommand } from '../../../src/cli/commands/at.js';
import { auditCommand } from '../../../src/cli/commands/audit.js';
import { whyCommand } from '../../../src/cli/commands/why.js';
import type { CommandEnv } from '../../../src/cli/command.js';
import { UsageError } from '../../../src/cli/errors.js';
import { main } from '../../../src/cli/main.js';
import {
  VARIANT_OPTIONS,
  choice,
  commaList,
  flag,
  int,
  list,
  pagesIndex,
  parseOptions,
  positive,
  text,
} from '../../../src/cli/options.js';

/** A database path that does not exist: a command that got as far as opening it would fail otherwise. */
const ENV: CommandEnv = { db: '/nonexistent/ioptrace-options-test.db', json: false, stderr: process.stderr };
const CMD = { name: 'demo-cmd', usage: 'ioptrace demo-cmd [--n N]' };

const parse = (options: Parameters<typeof parseOptions>[1], values: Record<string, unknown>): unknown =>
  parseOptions(CMD, options, values);
const refusal = (options: Parameters<typeof parseOptions>[1], values: Record<string, unknown>): string => {
  try {
    parse(options, values);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('accepted');
};

describe('the option schemas', () => {
  it('read integers in decimal and 0x hex, with their defaults, and name the flag of a bad one', () => {
    expect(parse({ n: int(50), m: int(null) }, {})).toEqual({ n: 50, m: null, json: false, help: false });
    expect(parse({ n: int(50), m: int(null) }, { n: '0x10', m: '7' })).toMatchObject({ n: 16, m: 7 });
    expect(refusal({ n: int(50) }, { n: 'x' })).toBe('--n must be a non-negative integer, got "x"');
    expect(refusal({ n: int(50) }, { n: '-3' })).toBe('--n must be a non-negative integer, got "-3"');
    expect(refusal({ n: positive(5) }, { n: '0' })).toBe('--n must be at least 1, got 0');
    expect(refusal({ n: int(1, { below: { value: 256, text: '2^8' } }) }, { n: '256' })).toBe(
      '--n must be below 2^8, got 256',
    );
    expect(refusal({ n: int(50), m: int(1) }, { n: 'a', m: 'b' })).toBe(
      '--n must be a non-negative integer, got "a"; --m must be a non-negative integer, got "b"',
    );
  });

  it('read switches, text, lists, choices and PAGES:INDEX', () => {
    expect(parse({ on: flag(), out: text('./out'), name: text() }, { on: true })).toEqual({
      on: true,
      out: './out',
      json: false,
      help: false,
    });
    expect(refusal({ on: flag() }, { on: 'yes' })).toBe('--on takes no value');
    expect(refusal({ name: text() }, { name: true })).toBe('--name takes one value');
    expect(parse({ fix: list() }, { fix: ['a,b', 'c', ''] })).toMatchObject({ fix: ['a', 'b', 'c'] });
    expect(parse({ fix: list(), v: commaList() }, { v: 'x,y' })).toMatchObject({ fix: [], v: ['x', 'y'] });
    expect(parse({ v: commaList() }, {})).toEqual({ json: false, help: false });
    expect(parse({ align: choice(['same', 'prefix']) }, { align: 'prefix' })).toMatchObject({ align: 'prefix' });
    expect(refusal({ align: choice(['same', 'prefix']) }, { align: 'suffix' })).toBe(
      '--align must be "same" or "prefix", got "suffix"',
    );
    expect(parse({ index: pagesIndex() }, { index: '3:0x11' })).toMatchObject({ index: { pages: 3, index: 17 } });
    expect(refusal({ index: pagesIndex() }, { index: '3-17' })).toBe(
      '--index takes PAGES:INDEX (e.g. 3:17), got "3-17"',
    );
  });

  it('read the variant options as given (variantFromArgs resolves them)', () => {
    expect(parse(VARIANT_OPTIONS, { variant: 'v3', fix: 'a' })).toEqual({
      variant: 'v3',
      fix: ['a'],
      without: [],
      json: false,
      help: false,
    });
  });

  it('refuse an unknown flag by name, with the usage', () => {
    expect(refusal({ n: int(1) }, { n: '2', nope: '1', also: true })).toBe(
      'demo-cmd: unknown option --nope, --also\nusage: ioptrace demo-cmd [--n N]',
    );
  });
});

describe('the commands', () => {
  it('spell each flag one way: a flag that several commands take is read the same way by all', () => {
    const seen = new Map<string, { spec: unknown; by: string }>();
    const differ: string[] = [];
    for (const cmd of COMMANDS) {
      for (const [name, spec] of Object.entries(cmd.options)) {
        const first = seen.get(name);
        if (first === undefined) seen.set(name, { spec, by: cmd.name });
        else if (JSON.stringify(first.spec) !== JSON.stringify(spec))
          differ.push(`--${name}: ${first.by}, ${cmd.name}`);
      }
    }
    expect(differ).toEqual([]);
    // The shared ones, among others: the same parseArgs shape in every command that takes them.
    expect(seen.get('fix')?.spec).toEqual({ type: 'string', multiple: true });
    expect(seen.get('fail-nth')?.spec).toEqual({ type: 'string' });
    expect(seen.get('max')?.spec).toEqual({ type: 'string' });
  });

  it('refuse a bad value before opening the store, naming the flag', async () => {
    await expect(atCommand.run(['1', '2'], { max: 'many' }, ENV)).rejects.toThrow(
      new UsageError('--max must be a non-negative integer, got "many"'),
    );
    await expect(whyCommand.run(['1'], { index: '3:x' }, ENV)).rejects.toThrow(
      new UsageError('--index takes PAGES:INDEX, non-negative integers (e.g. 3:17), got "3:x"'),
    );
    await expect(auditCommand.run(['1'], { csv: 'yes' }, ENV)).rejects.toThrow(new UsageError('--csv takes no value'));
    await expect(atCommand.run(['1', '2'], { nope: '1' }, ENV)).rejects.toThrow(
      new UsageError('at: unknown option --nope\nusage: ioptrace at RUN SEQ [--max N] [--json] [--db FILE]'),
    );
  });
});

describe('main', () => {
  let err = '';
  let out = '';
  afterEach(() => {
    vi.restoreAllMocks();
    err = '';
    out = '';
  });
  const capture = (): void => {
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((err += String(chunk)), true));
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((out += String(chunk)), true));
  };

  it('exits 2 for a bad value and for an unknown flag, with one line naming the flag', async () => {
    capture();
    expect(await main(['demo', '--ops', '3', '--db', ENV.db])).toBe(2);
    expect(err).toBe(
      "ioptrace: demo: Unknown option '--ops'\nusage: ioptrace demo [TRACE] [--bad v3] [--good merged] [--json] [--db FILE]\n",
    );
    err = '';
    expect(await main(['step', '1', '--to', 'end', '--db', ENV.db])).toBe(2);
    expect(err).toBe('ioptrace: --to must be a non-negative integer, got "end"\n');
    err = '';
    expect(await main(['verify', '--colour', '--db', ENV.db])).toBe(2);
    expect(err).toBe(
      "ioptrace: verify: Unknown option '--colour'\nusage: ioptrace verify [RUN] [--json] [--db FILE]\n",
    );
    expect(out).toBe('');
  });

  it('prints the refusal as JSON with --json', async () => {
    capture();
    expect(await main(['log', '1', '--op', 'first', '--json', '--db', ENV.db])).toBe(2);
    expect(JSON.parse(out)).toEqual({
      error: { kind: 'usage', message: '--op must be a non-negative integer, got "first"', line: null, field: null },
      exitCode: 2,
    });
  });
});
