// SPDX-License-Identifier: GPL-2.0-only
/**
 * Copying runs between two stores (src/store/copy.ts) on a backend: the copy is re-appended through the
 * target's RunWriter and keeps the source's heads exactly (the pinned heads of tests/fixtures/heads.json for
 * a shipped trace), its events, ops, snapshots and trace text; failed runs stay failed with their reason,
 * incomplete runs are refused unless asked for and then stay incomplete. A backend joins with one line,
 * `copyContract('PostgreSQL', factory)`; tampering with a source is dialect-specific and tested per backend.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveVariant } from '../../src/kernel/variants.js';
import { parseTraceText } from '../../src/replay/parse.js';
import { recordReplay } from '../../src/replay/record.js';
import {
  StoreError,
  checkCopyable,
  copyRun,
  copyRuns,
  type EventFilter,
  type RunRow,
  type Store,
  type StoredEvent,
} from '../../src/store/index.js';
import { ROOT } from '../support/built-cli.js';
import { EVENTS_PER_OP, appendOps, collect, eventRow, runInfo } from '../support/store-rows.js';
import type { StoreFactory } from './store.contract.js';

const HEADS = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/heads.json'), 'utf8')) as Record<
  string,
  { digest: string; head: string; opsHead: string }
>;

/**
 * Replays a shipped trace into `store` as `ioptrace replay` does, with snapshots every few events (they
 * are not chained, so the heads are the pinned ones); returns the run id.
 */
async function replayInto(store: Store, path: string, variant: string): Promise<number> {
  const text = readFileSync(join(ROOT, path), 'utf8');
  const { fixes } = resolveVariant(variant);
  // Promise.resolve: recording is becoming asynchronous (PostgreSQL); this reads the same either way.
  const recorded = await Promise.resolve(
    recordReplay(store, parseTraceText(text, path), {
      tracePath: path,
      traceText: text,
      variant,
      fixes,
      spacing: { minEvents: 8, maxEvents: 16, bytesPerEvent: 1e9 },
    }),
  );
  return recorded.run;
}

/** Everything a reader sees of a run, with the run id left out. */
async function contents(store: Store, run: number): Promise<unknown> {
  const row = await store.run(run);
  const snapshots = [];
  for (const seq of await store.snapshots(run)) snapshots.push(await store.snapshotAtOrBefore(run, seq));
  return {
    row: { ...row, id: undefined, createdSeq: undefined },
    trace: await store.traceText(run),
    events: (await collect(store.events(run))).map((e) => ({ ...e, id: undefined, run: undefined })),
    ops: (await store.ops(run)).map((o) => ({ ...o, run: undefined })),
    snapshots: snapshots.map((s) => (s === undefined ? s : { ...s, state: Buffer.from(s.state).toString('hex') })),
  };
}

export function copyContract(backend: string, factory: StoreFactory): void {
  describe(`copying runs between stores on ${backend}`, () => {
    let source: Store;
    let target: Store;
    const disposers: (() => Promise<void>)[] = [];

    beforeEach(async () => {
      const a = await factory();
      const b = await factory();
      source = a.store;
      target = b.store;
      disposers.push(a.dispose, b.dispose);
    });

    afterEach(async () => {
      for (const dispose of disposers.splice(0)) await dispose();
    });

    it('keeps the pinned heads of a shipped trace, and every row a reader sees', async () => {
      const first = await replayInto(source, 'replays/bad-free.jsonl', 'v3');
      const second = await replayInto(source, 'replays/bad-free.jsonl', 'merged');
      // The target already holds a run: copies get the target's next ids.
      await replayInto(target, 'replays/bad-free.jsonl', 'merged');
      const copies = await copyRuns(source, target, [second, first]);
      expect(copies.map((c) => [c.source, c.target])).toEqual([
        [second, 2],
        [first, 3],
      ]);
      const pinnedV3 = HEADS['replays/bad-free.jsonl@v3'];
      const pinnedMerged = HEADS['replays/bad-free.jsonl@merged'];
      expect(copies[1]).toMatchObject({
        status: 'complete',
        incomplete: false,
        headHash: pinnedV3?.head,
        opsHeadHash: pinnedV3?.opsHead,
        finalDigest: pinnedV3?.digest,
      });
      const copyOfFirst = await target.run(3);
      expect([copyOfFirst?.headHash, copyOfFirst?.opsHeadHash, copyOfFirst?.finalDigest]).toEqual([
        pinnedV3?.head,
        pinnedV3?.opsHead,
        pinnedV3?.digest,
      ]);
      expect((await target.run(2))?.headHash).toBe(pinnedMerged?.head);
      expect(await contents(target, 3)).toEqual(await contents(source, first));
      expect(await contents(target, 2)).toEqual(await contents(source, second));
      expect(await target.snapshots(3)).toEqual([8, 16, 24, 32, 40, 48, 56]);
      const report = await target.verify();
      expect(report.ok).toBe(true);
      expect(report.runs.map((r) => [r.run, r.ok, r.status])).toEqual([
        [1, true, 'complete'],
        [2, true, 'complete'],
        [3, true, 'complete'],
      ]);
    });

    it('copies every run when none is named, and a failed run as failed with its reason and place', async () => {
      const writer = await Promise.resolve(source.beginRun(runInfo(), { batchSize: 16 }));
      appendOps(writer, 30);
      writer.append(eventRow(31));
      await Promise.resolve(writer.finish('failed', { error: 'disk full', errorOp: 3, errorLine: 5 }));
      const complete = await Promise.resolve(source.beginRun(runInfo('merged')));
      appendOps(complete, 20);
      await Promise.resolve(complete.finish('complete', { finalDigest: '00000000000000ff' }));
      const copies = await copyRuns(source, target, []);
      expect(copies.map((c) => [c.source, c.target, c.status, c.events, c.ops])).toEqual([
        [1, 1, 'failed', 31, 3],
        [2, 2, 'complete', 20, 2],
      ]);
      expect(await target.run(1)).toMatchObject({
        status: 'failed',
        error: 'disk full',
        errorOp: 3,
        errorLine: 5,
        eventCount: 31,
        opCount: 3,
        finalDigest: null,
        headHash: (await source.run(1))?.headHash,
      });
      expect(await contents(target, 1)).toEqual(await contents(source, 1));
      expect(await contents(target, 2)).toEqual(await contents(source, 2));
    });

    it('refuses an incomplete run before writing anything, and copies it as incomplete when asked', async () => {
      const running = await Promise.resolve(source.beginRun(runInfo(), { batchSize: 16 }));
      appendOps(running, 3 * EVENTS_PER_OP);
      await Promise.resolve(running.flush());
      const error = await copyRuns(source, target, [running.run]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreError);
      expect((error as StoreError).code).toBe('copy-refused');
      expect((error as StoreError).message).toBe(
        `run 1 of ${source.path} is incomplete (no finish row: still being written, or its writer was stopped); nothing was copied. Copy it as incomplete with --incomplete`,
      );
      expect(await target.runs()).toEqual([]);

      const [copy] = await copyRuns(source, target, [running.run], { incomplete: true });
      expect(copy).toMatchObject({ source: 1, target: 1, status: 'running', incomplete: true, events: 30, ops: 3 });
      expect(copy?.headHash).toBe((await collect(source.events(1, { fromSeq: 30 })))[0]?.hash);
      expect(await target.run(1)).toMatchObject({ status: 'running', incomplete: true, eventCount: 30, opCount: 3 });
      expect(await contents(target, 1)).toEqual(await contents(source, 1));
      const report = await target.verify(1);
      expect(report.runs[0]).toMatchObject({ ok: true, incomplete: true, events: 30, ops: 3 });
    });

    it('refuses at the first event that hashes differently in the copy, and marks the copy failed', async () => {
      const writer = await Promise.resolve(source.beginRun(runInfo(), { batchSize: 16 }));
      appendOps(writer, 40);
      await Promise.resolve(writer.finish('complete', { finalDigest: '0000000000000001' }));
      const [row] = await checkCopyable(source, [1]);
      // The source as it reads after the check: event 23's payload has changed (no backend lets a row
      // change under a reader, so the change is made in what the copy reads).
      async function* events(run: number, filter?: EventFilter): AsyncGenerator<StoredEvent> {
        for await (const e of source.events(run, filter)) yield e.seq === 23 ? { ...e, payload: `${e.payload} ` } : e;
      }
      const changed = new Proxy(source, {
        get(store, key): unknown {
          if (key === 'events') return events;
          const value: unknown = Reflect.get(store, key, store);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(store) : value;
        },
      });
      const error = await copyRun(changed, target, row as RunRow, { batchSize: 16 }).catch((e: unknown) => e);
      const expectedHash = (await collect(source.events(1, { fromSeq: 23, toSeq: 23 })))[0]?.hash;
      expect((error as StoreError).code).toBe('copy-refused');
      expect((error as Error).message).toMatch(
        new RegExp(`^run 1: event seq 23 hashes to [0-9a-f]{64} in the copy, but the source stored ${expectedHash}$`),
      );
      expect(await target.run(1)).toMatchObject({
        status: 'failed',
        incomplete: false,
        error: `copy refused: ${(error as Error).message}`,
        eventCount: 23,
      });
      expect((await target.verify(1)).ok).toBe(true);
    });

    it('names a run that does not exist, and writes nothing', async () => {
      const writer = await Promise.resolve(source.beginRun(runInfo()));
      appendOps(writer, 10);
      await Promise.resolve(writer.finish('complete', { finalDigest: '0000000000000001' }));
      await expect(copyRuns(source, target, [1, 7])).rejects.toThrow(`no run 7 in ${source.path}`);
      expect(await target.runs()).toEqual([]);
    });
  });
}
