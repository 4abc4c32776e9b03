// SPDX-License-Identifier: GPL-2.0-only
/**
 * kill -9 of a PostgreSQL writer mid-batch: the server rolls its open transaction back, so the store keeps
 * verifying, the killed run shows incomplete with its committed batches only, and writers of other runs
 * (other processes on the same database) go on committing and finishing, unaffected.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { childLines } from '../support/child-lines.js';
import { freshDatabase } from '../support/pg-server.js';

const pgUrl = inject('pgUrl');
const root = fileURLToPath(new URL('../..', import.meta.url));
const viteNode = join(root, 'node_modules/vite-node/vite-node.mjs');
const childScript = join(root, 'tests/support/children/store-writer.ts');
const children: ChildProcess[] = [];

function startChild(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [viteNode, childScript, ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.on('exit', () => resolve());
  });
}

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited(child);
  }
});

const committed = (lines: string[]) => lines.filter((l) => l.startsWith('committed ')).length;

describe.skipIf(pgUrl === '')(
  `kill -9 of a PostgreSQL writer ${pgUrl === '' ? `(skipped: ${inject('pgSkip')})` : ''}`,
  () => {
    it('mid-batch: the store verifies, the run is incomplete with whole batches, other writers go on', async () => {
      const db = await freshDatabase(pgUrl);
      // Migrate once first, so the children do not all wait on the migration lock.
      await (await openStore(db)).close();
      const steady = [startChild(['slow', db, '100']), startChild(['slow', db, '100'])];
      const steadyLines = steady.map((child) => childLines(child, (l) => committed(l) >= 2));
      await Promise.all(steadyLines);
      // The victim writes 250 events in batches of 100 and stops for good at step 4 of batch 2 ('ops'): batch 2
      // is one statement (postgres/append.ts), not sent yet, so its events and block must not show.
      const victim = startChild(['pause', db, '2', '4']);
      expect(await childLines(victim, (l) => l.some((line) => line.startsWith('paused')))).toEqual(['paused ops']);
      victim.kill('SIGKILL');
      await exited(victim);
      expect(victim.signalCode).toBe('SIGKILL');

      // The others commit more after the kill; a new writer starts and finishes a whole run.
      const before = await Promise.all(steadyLines);
      const after = steady.map((child, i) => childLines(child, (l) => committed(l) >= committed(before[i] ?? []) + 2));
      await Promise.all(after);
      const finisher = startChild(['pause', db, '99', '1']);
      expect(await childLines(finisher, (l) => l.includes('done'))).toEqual(['done']);
      for (const child of steady) child.kill('SIGKILL');
      await Promise.all(steady.map(exited));

      const store = await openStore(db, { readonly: true });
      try {
        const runs = await store.runs();
        const [first, second, killed, finished] = runs;
        expect(runs.map((r) => [r.id, r.status, r.incomplete])).toEqual([
          [1, 'running', true],
          [2, 'running', true],
          [3, 'running', true],
          [4, 'complete', false],
        ]);
        // Batch 1 only: op 9's row and the snapshot at 100 came after event 100 cut it, so they were in batch 2.
        expect([killed?.eventCount, killed?.opCount]).toEqual([100, 9]);
        expect([finished?.eventCount, finished?.opCount]).toEqual([250, 25]);
        expect(await store.snapshots(3)).toEqual([50]);
        const report = await store.verify();
        expect(report.ok).toBe(true);
        expect(report.runs.map((r) => [r.run, r.ok, r.incomplete, r.events % 100, r.batches])).toEqual([
          [1, true, true, 0, (first?.eventCount ?? 0) / 100],
          [2, true, true, 0, (second?.eventCount ?? 0) / 100],
          [3, true, true, 0, 1],
          [4, true, false, 50, 3],
        ]);
        // The steady writers went on after the kill: more than the two batches they had before it.
        expect(first?.eventCount).toBeGreaterThanOrEqual(400);
        expect(second?.eventCount).toBeGreaterThanOrEqual(400);
      } finally {
        await store.close();
      }
    });
  },
);
