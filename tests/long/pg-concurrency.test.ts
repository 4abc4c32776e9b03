// SPDX-License-Identifier: GPL-2.0-only
/**
 * Many writers at once on one PostgreSQL store: 8 processes each replay 20 shipped traces (replays/) into
 * the same database at the same time. Afterwards every run verifies, every run's head equals the head of
 * the same trace replayed alone into SQLite (so no run took in another's events or lost or reordered one),
 * and the store holds exactly those 160 runs and nothing else.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { resolveVariant } from '../../src/kernel/variants.js';
import { parseTraceText } from '../../src/replay/parse.js';
import { recordReplay } from '../../src/replay/record.js';
import { openStore } from '../../src/store/index.js';
import { childLines } from '../support/child-lines.js';
import { freshDatabase } from '../support/pg-server.js';
import { tempDir } from '../support/store-rows.js';
import { yieldToEventLoop } from '../support/yield.js';

const pgUrl = inject('pgUrl');
const root = fileURLToPath(new URL('../..', import.meta.url));
const viteNode = join(root, 'node_modules/vite-node/vite-node.mjs');
const childScript = join(root, 'tests/support/children/pg-replayer.ts');

const WRITERS = 8;
const TRACES_EACH = 20;

const TRACES = [
  ...readdirSync(join(root, 'replays'))
    .filter((f) => f.endsWith('.jsonl'))
    .map((f) => `replays/${f}`),
  ...readdirSync(join(root, 'replays/selftest'))
    .filter((f) => f.endsWith('.jsonl'))
    .map((f) => `replays/selftest/${f}`),
].sort();

/** Writer w's traces: 20 of the shipped ones, starting at a different place for each writer. */
function tracesOf(writer: number): string[] {
  return Array.from({ length: TRACES_EACH }, (_, k) => TRACES[(writer * 7 + k) % TRACES.length] as string);
}

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

describe.skipIf(pgUrl === '')(
  `8 writers at once on PostgreSQL ${pgUrl === '' ? `(skipped: ${inject('pgSkip')})` : ''}`,
  () => {
    it('never interleave within a run: every run verifies and has the head of its trace replayed alone', async () => {
      // The reference: each trace replayed alone into SQLite.
      const tmp = tempDir();
      const heads = new Map<string, string>();
      const spec = resolveVariant('v3', [], []);
      const sqlite = await openStore(join(tmp.dir, 'alone.db'));
      try {
        for (const path of TRACES) {
          const text = readFileSync(join(root, path), 'utf8');
          const { head } = await recordReplay(sqlite, parseTraceText(text, path), {
            tracePath: path,
            traceText: text,
            variant: spec.variant,
            fixes: spec.fixes,
          });
          heads.set(path, head);
          await yieldToEventLoop();
        }
      } finally {
        await sqlite.close();
        tmp.remove();
      }

      const db = await freshDatabase(pgUrl);
      await (await openStore(db)).close();
      const outputs = await Promise.all(
        Array.from({ length: WRITERS }, (_, w) => {
          const child = spawn(process.execPath, [viteNode, childScript, db, ...tracesOf(w)], {
            cwd: root,
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          children.push(child);
          return childLines(child, (lines) => lines.length >= TRACES_EACH);
        }),
      );

      const store = await openStore(db, { readonly: true });
      try {
        const runs = await store.runs();
        // Nothing else: exactly the 160 runs the writers reported, each complete, each with its trace.
        const reported = outputs.flat().map((line) => {
          const [, id, head, path] = line.split(' ');
          return { id: Number(id), head, path };
        });
        expect(reported).toHaveLength(WRITERS * TRACES_EACH);
        expect(runs.map((r) => r.id).sort((a, b) => a - b)).toEqual(reported.map((r) => r.id).sort((a, b) => a - b));
        const expectedPaths = Array.from({ length: WRITERS }, (_, w) => tracesOf(w))
          .flat()
          .sort();
        expect(runs.map((r) => r.tracePath).sort()).toEqual(expectedPaths);
        for (const run of runs) {
          expect([run.id, run.status, run.headHash]).toEqual([run.id, 'complete', heads.get(run.tracePath)]);
        }
        for (const r of reported) expect(r.head).toBe(heads.get(r.path as string));
        const report = await store.verify();
        expect(report.runs).toHaveLength(WRITERS * TRACES_EACH);
        expect(report.runs.filter((r) => !r.ok)).toEqual([]);
        expect(report.ok).toBe(true);
      } finally {
        await store.close();
      }
    });
  },
);
