// SPDX-License-Identifier: GPL-2.0-only
import Database from 'better-sqlite3';
import { childLines } from '../support/child-lines.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { runInfo, tempDir } from '../support/store-rows.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const viteNode = join(root, 'node_modules/vite-node/vite-node.mjs');
const childScript = join(root, 'tests/support/children/store-writer.ts');

let tmp: ReturnType<typeof tempDir>;
let path: string;
const children: ChildProcess[] = [];

function startChild(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [viteNode, childScript, ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.on('exit', (code) => resolve(code));
  });
}

beforeEach(() => {
  tmp = tempDir();
  path = join(tmp.dir, 'log.sqlite');
});

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited(child);
  }
  tmp.remove();
});

describe('a writer killed midway', () => {
  it('leaves a database that opens, verifies and shows the run as incomplete with whole batches', async () => {
    const batch = 500;
    const child = startChild(['write', path, String(batch)]);
    const lines = await childLines(child, (l) => l.filter((line) => line.startsWith('committed ')).length >= 3);
    expect(lines.slice(0, 4)).toEqual(['run 1', 'committed 500', 'committed 1000', 'committed 1500']);
    child.kill('SIGKILL');
    await exited(child);
    expect(child.signalCode).toBe('SIGKILL');

    const store = await openStore(path);
    try {
      const run = await store.run(1);
      expect(run?.status).toBe('running');
      expect(run?.incomplete).toBe(true);
      const events = await store.eventCount(1);
      expect(events).toBeGreaterThanOrEqual(1500);
      expect(events % batch).toBe(0);
      expect(run?.eventCount).toBe(events);
      const report = await store.verify();
      expect(report).toEqual({
        ok: true,
        runs: [
          {
            run: 1,
            status: 'running',
            incomplete: true,
            events,
            batches: events / batch,
            ops: run?.opCount,
            ok: true,
            mismatches: [],
          },
        ],
      });
      // The database still takes new runs.
      const writer = await store.beginRun(runInfo());
      await writer.finish('complete', { finalDigest: '0000000000000000' });
      expect((await store.runs()).map((r) => r.status)).toEqual(['running', 'complete']);
    } finally {
      await store.close();
    }
  });
});

describe('openStore from several processes', () => {
  it('migrates a new file once when three processes open it at the same time', async () => {
    const openers = [0, 1, 2].map(() => startChild(['open', path]));
    // A failed opener's stderr is part of what is compared, so a failure names its cause.
    const stderrs = openers.map((child) => {
      let text = '';
      child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
      return () => text;
    });
    const codes = await Promise.all(openers.map(exited));
    expect(codes.map((code, i) => [code, code === 0 ? '' : stderrs[i]?.()])).toEqual([
      [0, ''],
      [0, ''],
      [0, ''],
    ]);
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.prepare('SELECT name FROM kysely_migration').pluck().all()).toEqual([
        '0001_initial',
        '0002_run_failure',
        '0003_fuzz_failures',
        '0004_fuzz_claims',
      ]);
    } finally {
      raw.close();
    }
  });
});
