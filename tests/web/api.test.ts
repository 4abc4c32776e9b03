// SPDX-License-Identifier: GPL-2.0-only
// The API of `ioptrace serve` answers what the CLI's --json prints for the same question (one test per
// endpoint), and bad requests get a 4xx naming what is wrong while the server stays up.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command } from '../../src/cli/command.js';
import { atCommand } from '../../src/cli/commands/at.js';
import { auditCommand } from '../../src/cli/commands/audit.js';
import { bisectCommand } from '../../src/cli/commands/bisect.js';
import { diffCommand } from '../../src/cli/commands/diff.js';
import { logCommand } from '../../src/cli/commands/log.js';
import { runsCommand } from '../../src/cli/commands/runs.js';
import { stepCommand } from '../../src/cli/commands/step.js';
import { watchCommand } from '../../src/cli/commands/watch.js';
import { whyCommand } from '../../src/cli/commands/why.js';
import { toJson } from '../../src/lib/format.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/index.js';
import { startServer } from '../../src/web/server.js';
import type { RunningServer } from '../../src/web/server.js';
import { tempDir } from '../support/store-rows.js';
import { buildWebStore } from '../support/web-store.js';

const tmp = tempDir();
const db = join(tmp.dir, 'web.db');
let store: Store;
let server: RunningServer;

beforeAll(async () => {
  await buildWebStore(db);
  store = await openStore(db, { readonly: true });
  server = await startServer({ store });
});

afterAll(async () => {
  await server.close();
  await store.close();
  tmp.remove();
});

async function get(path: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(new URL(path, server.url));
  return { status: res.status, body: await res.json() };
}

/** What `ioptrace CMD ... --json` prints, parsed. */
async function cli(cmd: Command, positionals: string[], values: Record<string, unknown> = {}): Promise<unknown> {
  const out = await cmd.run(positionals, values, { db, json: true, stderr: process.stderr });
  return JSON.parse(toJson(out.json)) as unknown;
}

async function same(path: string, cmd: Command, positionals: string[], values: Record<string, unknown> = {}) {
  const api = await get(path);
  expect(api.status).toBe(200);
  const expected = await cli(cmd, positionals, values);
  expect(api.body).toEqual(expected);
  return api.body as Record<string, unknown>;
}

describe('the API answers as the CLI --json', () => {
  it('runs = ioptrace runs', async () => {
    const body = (await same('/api/runs', runsCommand, [])) as unknown as { id: number; label: string }[];
    expect(body.map((r) => [r.id, r.label])).toEqual([
      [1, 'v3'],
      [2, 'v3'],
      [3, 'v3+carry-end-one'],
    ]);
  });

  it('events by op and by type = ioptrace log', async () => {
    const byOp = (await same('/api/runs/1/events?op=8', logCommand, ['1'], { op: '8' })) as unknown as {
      seq: number;
    }[];
    expect(byOp.map((e) => e.seq)).toEqual([36, 37, 38, 39, 40, 41, 42, 43, 44, 45]);
    const byType = (await same('/api/runs/1/events?type=ViolationDetected&from=40', logCommand, ['1'], {
      type: ['ViolationDetected'],
      from: '40',
    })) as unknown as { seq: number }[];
    expect(byType.map((e) => e.seq)).toEqual([41, 44]);
  });

  it('state = ioptrace at', async () => {
    const body = await same('/api/runs/1/state?seq=39', atCommand, ['1', '39']);
    expect([body['op'], body['line']]).toEqual([8, 33]);
    expect((body['state'] as { counts: unknown }).counts).toEqual({ warns: 0, violations: 1 });
  });

  it('diff = ioptrace diff', async () => {
    const body = await same('/api/runs/1/diff?a=30&b=45', diffCommand, ['1', '30', '45']);
    expect((body['diff'] as { differences: unknown[] }).differences.length).toBeGreaterThan(0);
  });

  it('why by pfn and by pages index = ioptrace why', async () => {
    const pfn = await same('/api/runs/2/why?pfn=0x40004', whyCommand, ['2'], { pfn: '0x40004' });
    expect((pfn['events'] as unknown[]).length).toBeGreaterThan(0);
    await same('/api/runs/2/why?index=4:4', whyCommand, ['2'], { index: '4:4' });
  });

  it('watch = ioptrace watch, a hit and never', async () => {
    const hit = await same('/api/runs/1/watch?expr=violations%20%3E%200', watchCommand, ['1', 'violations > 0']);
    expect([hit['seq'], hit['op'], hit['line']]).toEqual([39, 8, 33]);
    const never = await same('/api/runs/1/watch?expr=npinned%20%3E%200', watchCommand, ['1', 'npinned > 0']);
    expect(never['hit']).toBeNull();
  });

  it('step forward and back = ioptrace step, the server keeping its cursor between requests', async () => {
    const forward = await same('/api/runs/1/step?from=7&to=9', stepCommand, ['1'], { from: '7', to: '9' });
    expect((forward['steps'] as { op: number }[]).map((s) => s.op)).toEqual([8, 9]);
    // The server's cursor now sits after op 9: stepping back from 9 to 7 applies the kept inverse patches.
    const back = await same('/api/runs/1/step?from=7&to=9&back=1', stepCommand, ['1'], {
      from: '7',
      to: '9',
      back: true,
    });
    expect((back['steps'] as { op: number; direction: string }[]).map((s) => [s.op, s.direction])).toEqual([
      [9, 'back'],
      [8, 'back'],
    ]);
    await same('/api/runs/1/step?from=0&to=3&max=2', stepCommand, ['1'], { from: '0', to: '3', max: '2' });
  });

  it('audit = ioptrace audit', async () => {
    const body = await same('/api/runs/2/audit', auditCommand, ['2']);
    expect(body['ok']).toBe(false);
    await same('/api/runs/2/audit?user=1000', auditCommand, ['2'], { user: '1000' });
  });

  it('bisect = ioptrace bisect RUN_A RUN_B', async () => {
    const body = await same('/api/bisect?a=2&b=3', bisectCommand, ['2', '3']);
    expect([body['diverged'], body['op'], body['name']]).toEqual([true, 10, 'domain_detach']);
  });
});

describe('bad requests', () => {
  it('get a 4xx with a clear message, and the server stays up', async () => {
    const cases: [string, number, { kind: string; message: string; field: string | null }][] = [
      [
        '/api/runs/9/state?seq=1',
        404,
        { kind: 'not-found', message: `no run 9 in ${db} (ioptrace runs lists them)`, field: 'run' },
      ],
      [
        '/api/runs/1/state?seq=61',
        400,
        { kind: 'bad-range', message: 'seq 61 is outside the run (0..60)', field: 'seq' },
      ],
      ['/api/runs/1/state', 400, { kind: 'bad-input', message: 'query parameter seq: required', field: 'seq' }],
      [
        '/api/runs/1/state?seq=abc',
        400,
        {
          kind: 'bad-input',
          message: 'query parameter seq: expected a non-negative integer (decimal or 0x hex)',
          field: 'seq',
        },
      ],
      [
        '/api/runs/1/view?seq=1&colour=red',
        400,
        { kind: 'bad-input', message: 'unknown query parameter colour', field: 'colour' },
      ],
      [
        '/api/runs/1/watch?expr=npinned%20%3E',
        400,
        {
          kind: 'bad-input',
          message:
            "bad expression at column 10: expected a value, '(' or '!' but found the end of the expression (in \"npinned >\")",
          field: 'expression',
        },
      ],
      [
        '/api/runs/x/state?seq=1',
        400,
        { kind: 'bad-input', message: 'run must be a non-negative integer, got "x"', field: 'run' },
      ],
      [
        '/api/runs/1/step?from=9&to=12',
        400,
        { kind: 'bad-range', message: 'run 1 has ops 0..11; got from 9 to 12', field: 'from' },
      ],
      [
        '/api/runs/1/why?pfn=1&index=2:3',
        400,
        { kind: 'bad-input', message: 'query parameter pfn: give exactly one of pfn and index', field: 'pfn' },
      ],
      [
        '/etc/passwd',
        404,
        { kind: 'not-found', message: 'no such path /etc/passwd (the API is under /api/)', field: 'path' },
      ],
      [
        '/api/nothing',
        404,
        { kind: 'not-found', message: 'no such path /api/nothing (the API is under /api/)', field: 'path' },
      ],
    ];
    for (const [path, status, error] of cases) {
      const r = await get(path);
      expect([path, r.status, r.body]).toEqual([path, status, { error }]);
    }
    const runs = await get('/api/runs');
    expect([runs.status, (runs.body as unknown[]).length]).toEqual([200, 3]);
  });

  it('the page is served at /, with no load from elsewhere', async () => {
    const res = await fetch(new URL('/', server.url));
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(html).not.toMatch(/<script[^>]+src=|<link|@import|url\(/);
    // The one absolute address is the SVG namespace of the audit chart, a name and not a load.
    expect(html.match(/https?:\/\/[^'"\s]*/g)).toEqual(['http://www.w3.org/2000/svg']);
  });
});
