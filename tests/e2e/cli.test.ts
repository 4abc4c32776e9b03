import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, freshDir } from '../support/built-cli.js';

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('ioptrace replay', () => {
  const dir = freshDir();
  const db = join(dir, 'runs.db');

  it('reports the BAD_FREE, the mmput underflow and the double free of v3 at line 33, exit 1', async () => {
    const r = await cli(['replay', 'replays/bad-free.jsonl', '--variant', 'v3', '--json', '--db', db]);
    expect(r.status).toBe(1);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out['run']).toBe(1);
    expect(out['variant']).toBe('v3');
    expect(out['flags']).toEqual([]);
    expect(out['ops']).toBe(12);
    expect(out['events']).toBe(60);
    expect(out['head']).toMatch(/^[0-9a-f]{64}$/);
    expect(out['digest']).toMatch(/^[0-9a-f]{16}$/);
    expect(out['violations']).toEqual([
      expect.objectContaining({ kind: 'bad_free', function: 'pfn_reader_user_pin', seq: 39, op: 8, line: 33 }),
      expect.objectContaining({
        kind: 'mmput_underflow',
        function: 'pfn_reader_user_destroy',
        seq: 41,
        op: 8,
        line: 33,
      }),
      expect.objectContaining({ kind: 'double_free', function: 'iommufd_test_access_pages', seq: 44, op: 8, line: 33 }),
    ]);
    expect(out['mismatches']).toEqual([]);
    const results = out['results'] as { line: number; op: string; errno: string | null }[];
    expect(results.find((x) => x.line === 33)).toEqual({ line: 33, op: 'access_pin', errno: 'EFAULT' });
  });

  it('is clean with --fix mmget-fail-no-kfree and returns EFAULT as the kernel does, exit 0', async () => {
    const r = await cli([
      'replay',
      'replays/bad-free.jsonl',
      '--variant',
      'v3',
      '--fix',
      'mmget-fail-no-kfree',
      '--json',
      '--db',
      db,
    ]);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as {
      violations: unknown[];
      warns: unknown[];
      flags: string[];
      results: { line: number; errno: string | null }[];
    };
    expect(out.flags).toEqual(['mmget-fail-no-kfree']);
    expect(out.violations).toEqual([]);
    expect(out.warns).toEqual([]);
    expect(out.results.find((x) => x.line === 33)?.errno).toBe('EFAULT');
  });

  it('gives byte-identical logs for the same trace and variant (equal hash-chain heads)', async () => {
    const a = JSON.parse(
      (await cli(['replay', 'replays/bad-free.jsonl', '--variant', 'merged', '--json', '--db', db])).stdout,
    ) as { head: string };
    const b = JSON.parse(
      (await cli(['replay', 'replays/bad-free.jsonl', '--variant', 'merged', '--json', '--db', db])).stdout,
    ) as { head: string };
    expect(a.head).toBe(b.head);
  });

  const malformed: [string, string, RegExp][] = [
    ['bad JSON', '{"op":"process","pid":1}\n{"op":"mmap",\n', /:2: .*invalid JSON/],
    ['an unknown op', '{"op":"process","pid":1}\n{"op":"frobnicate"}\n', /:2: field op: /],
    [
      'a missing field',
      '{"op":"process","pid":1}\n{"op":"mmap","pid":1,"addr":"0x1000"}\n',
      /:2: field length: required field is missing/,
    ],
    [
      'a 2^64 overflow',
      '{"op":"process","pid":1}\n{"op":"mmap","pid":1,"addr":"0x10000000000000000","length":4096}\n',
      /:2: field addr: .*2\^64/,
    ],
  ];
  for (const [what, text, message] of malformed) {
    it(`refuses a trace with ${what}: exit 2, line and field named, database byte-for-byte unchanged`, async () => {
      const trace = join(dir, 'bad.jsonl');
      writeFileSync(trace, text);
      const before = sha(db);
      const r = await cli(['replay', trace, '--db', db]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
      expect(sha(db)).toBe(before);
    });
  }

  it('creates no database for a malformed trace', async () => {
    const trace = join(dir, 'bad2.jsonl');
    writeFileSync(trace, '{"op":"process","pid":1,"bogus":1}\n');
    const fresh = join(dir, 'fresh.db');
    const r = await cli(['replay', trace, '--db', fresh]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/:1: field bogus: /);
    expect(existsSync(fresh)).toBe(false);
  });

  it('names unknown variants and flags as usage errors, exit 2', async () => {
    expect((await cli(['replay', 'replays/bad-free.jsonl', '--variant', 'v9', '--db', db])).stderr).toMatch(
      /variant "v9" must start with one of v3, merged, upstream/,
    );
    const r = await cli(['replay', 'replays/bad-free.jsonl', '--fix', 'nope', '--db', db]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown fix flag "nope"/);
  });
});

describe('ioptrace time travel on a stored run', () => {
  const dir = freshDir();
  const db = join(dir, 'tt.db');
  beforeAll(async () => {
    expect((await cli(['replay', 'replays/bad-free.jsonl', '--variant', 'v3', '--db', db])).status).toBe(1);
  });

  it('runs lists the run as complete', async () => {
    const runs = JSON.parse((await cli(['runs', '--json', '--db', db])).stdout) as {
      id: number;
      status: string;
      variant: string;
      eventCount: number;
    }[];
    expect(runs.map((r) => [r.id, r.status, r.variant, r.eventCount])).toEqual([[1, 'complete', 'v3', 60]]);
  });

  it('log --type filters the violations of the run', async () => {
    const r = await cli(['log', '1', '--type', 'ViolationDetected', '--db', db]);
    expect(r.status).toBe(0);
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => l.trim().split(/\s+/).slice(0, 4).join(' ')),
    ).toEqual(['39 op 8 ViolationDetected', '41 op 8 ViolationDetected', '44 op 8 ViolationDetected']);
  });

  it('at shows mm_users of the exited process going to -1 across the op', async () => {
    const before = await cli(['at', '1', '35', '--json', '--db', db]);
    const after = await cli(['at', '1', '45', '--json', '--db', db]);
    const users = (out: string) =>
      (JSON.parse(out) as { state: { mms: Record<string, { users: number }> } }).state.mms['1']?.users;
    expect(users(before.stdout)).toBe(0);
    expect(users(after.stdout)).toBe(-1);
  });

  it('diff names the mm counter and the violation count', async () => {
    const r = await cli(['diff', '1', '35', '45', '--db', db]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('mms 1 mm_users: 0 -> -1');
    expect(r.stdout).toContain('violations (count): 0 -> 3');
  });

  it('watch finds the first event with a violation', async () => {
    const r = await cli(['watch', '1', 'violations > 0', '--json', '--db', db]);
    expect(JSON.parse(r.stdout)).toEqual({ run: 1, expr: 'violations > 0', seq: 39, op: 8, line: 33 });
  });

  it('verify walks the chain, exit 0', async () => {
    const r = await cli(['verify', '--db', db]);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('run 1: ok, 60 events, 12 ops');
  });

  it('refuses an unknown run with one line on stderr, exit 2', async () => {
    const r = await cli(['at', '7', '1', '--db', db]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`ioptrace: no run 7 in ${db} (ioptrace runs lists them)`);
  });
});

describe('ioptrace demo (npm start)', () => {
  it('prints the time-travel report of the BAD_FREE on v3 and the same op on merged', async () => {
    const dir = freshDir();
    const r = await cli(['demo'], { cwd: dir });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(
      'BAD_FREE in pfn_reader_user_pin: iommufd frees allocation 4 (out_pages) owned by caller',
    );
    expect(r.stdout).toContain('at event 39, op 8, trace line 33:');
    expect(r.stdout).toContain('== Op 8 (access_pin) on v3: result EFAULT, events 36..45');
    expect(r.stdout).toContain('== The same op on merged (run 2): result EFAULT, events 37..42');
    expect(existsSync(join(dir, 'ioptrace-demo.db'))).toBe(true);
  });
});
