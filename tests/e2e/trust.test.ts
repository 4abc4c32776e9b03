import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, freshDir } from '../support/built-cli.js';

const TIB_TRACE = [
  '{"format":"ioptrace-trace","version":1,"page_size":4096}',
  '{"op":"process","pid":1}',
  '{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":"0x10000000000"}',
  '',
].join('\n');

describe('the event budget (--max-events)', () => {
  const dir = freshDir();
  const db = join(dir, 'runs.db');
  const trace = join(dir, 'tib.jsonl');
  writeFileSync(trace, TIB_TRACE);

  it('stops an mmap of 1 TiB of 4K pages with exit 2 naming the op, and the run is finished as failed', async () => {
    const r = await cli(['replay', trace, '--max-events', '500', '--db', db]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      'ioptrace: trace needs more than 500 events (budget --max-events 500); op at line 3 (mmap of 1 TiB) had ' +
        'emitted 494 of them when the budget ran out. Raise --max-events (0 = no limit) if the trace is meant ' +
        'to be this big.\n',
    );
    const runs = await cli(['runs', '--json', '--db', db]);
    const rows = JSON.parse(runs.stdout) as { status: string; eventCount: number; error: string | null }[];
    expect(rows.map((x) => [x.status, x.eventCount, x.error])).toEqual([
      ['failed', 500, r.stderr.slice('ioptrace: '.length, -1)],
    ]);
  });

  it('prints the budget error as JSON on stdout with --json', async () => {
    const r = await cli(['replay', trace, '--max-events', '100', '--json', '--db', join(dir, 'json.db')]);
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({
      error: {
        kind: 'budget',
        message:
          'trace needs more than 100 events (budget --max-events 100); op at line 3 (mmap of 1 TiB) had emitted ' +
          '94 of them when the budget ran out. Raise --max-events (0 = no limit) if the trace is meant to be this big.',
        line: 3,
        field: null,
      },
      exitCode: 2,
    });
  });
});

describe('errors with --json', () => {
  const dir = freshDir();

  it('print a JSON error object on stdout for a bad trace, naming line and field', async () => {
    const trace = join(dir, 'bad.jsonl');
    writeFileSync(trace, '{"op":"process","pid":1}\n{"op":"mmap","pid":1,"addr":"0x1000","lenght":4096}\n');
    const r = await cli(['replay', trace, '--json', '--db', join(dir, 'a.db')]);
    expect(r.status).toBe(2);
    const out = JSON.parse(r.stdout) as { error: Record<string, unknown>; exitCode: number };
    expect(out.exitCode).toBe(2);
    expect(out.error).toMatchObject({ kind: 'trace', line: 2 });
    expect(String(out.error['message'])).toContain(`${trace}:2: field`);
    expect(r.stderr).toContain(`ioptrace: ${trace}:2: field`);
  });

  it('print a JSON error object for a usage error (no trace given)', async () => {
    const r = await cli(['replay', '--json', '--db', join(dir, 'a.db')]);
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({
      error: {
        kind: 'usage',
        message: expect.stringMatching(/^usage: ioptrace replay TRACE /) as unknown,
        line: null,
        field: null,
      },
      exitCode: 2,
    });
  });

  it('refuse a bad variant name as bad input naming the field, exit 2, no stack trace, no store made', async () => {
    const db = join(dir, 'demo.db');
    const r = await cli(['demo', '--bad', 'foo', '--json', '--db', db]);
    const message =
      'variant "foo" must start with one of v3, merged, upstream, a release v6.2 ... v7.2 or a stable series v6.4.y, v6.6.y, v6.7.y, v6.12.y, v7.0.y (then +FLAG or -FLAG to add or remove fixes)';
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`ioptrace: ${message}\n`);
    expect(JSON.parse(r.stdout)).toEqual({
      error: { kind: 'bad-input', message, line: null, field: 'variant' },
      exitCode: 2,
    });
    expect(existsSync(db)).toBe(false);
  });

  it('refuse a store that is not there as not found, exit 2, creating nothing', async () => {
    const db = join(dir, 'missing.db');
    const r = await cli(['at', '7', '0', '--json', '--db', db]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`ioptrace: no ioptrace store at ${db}\n`);
    expect(JSON.parse(r.stdout)).toEqual({
      error: { kind: 'not-found', message: `no ioptrace store at ${db}`, line: null, field: null },
      exitCode: 2,
    });
    expect(existsSync(db)).toBe(false);
  });

  it('refuse an empty trace, exit 2, nothing stored', async () => {
    const trace = join(dir, 'empty.jsonl');
    writeFileSync(trace, '# only a comment\n');
    const r = await cli(['replay', trace, '--json', '--db', join(dir, 'empty.db')]);
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({
      error: {
        kind: 'trace',
        message: `${trace}:1: trace has no operations (only a header, comments or blank lines): nothing to replay`,
        line: 1,
        field: null,
      },
      exitCode: 2,
    });
  });
});

describe('ioptrace --version', () => {
  it('prints the version of package.json, exit 0', async () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as {
      version: string;
    };
    const r = await cli(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`ioptrace ${pkg.version}\n`);
  });
});
