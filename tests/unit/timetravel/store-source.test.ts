import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { openStore } from '../../../src/store/index.js';
import type { Store } from '../../../src/store/index.js';
import { encodeJson } from '../../../src/lib/codec.js';
import { StoreSource } from '../../../src/timetravel/store-source.js';
import { stateAt } from '../../../src/timetravel/state-at.js';
import { verifyRebuild } from '../../../src/timetravel/rebuild.js';
import { why } from '../../../src/timetravel/why.js';
import { watch } from '../../../src/timetravel/watch.js';
import { Cursor } from '../../../src/timetravel/cursor.js';
import { NotFoundError } from '../../../src/lib/errors.js';
import { scriptedRun, pfnOf, ids } from '../../support/recorded-runs.js';

const run = scriptedRun({ snapshotEvery: 16 });
let dir: string;
let store: Store;
let source: StoreSource;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ioptrace-tt-'));
  store = await openStore(join(dir, 'run.db'));
  const writer = await store.beginRun({
    tracePath: 'scripted.jsonl',
    traceSha256: createHash('sha256').update('scripted').digest('hex'),
    traceText: '',
    variant: 'v3',
    flags: [],
    faultPlan: null,
    header: null,
  });
  const ops = await run.source.ops(0, run.source.opCount() - 1);
  for (const span of ops) {
    for await (const { seq, op, event } of run.source.events(span.firstSeq, span.lastSeq)) {
      writer.append({ seq, op, type: event.type, v: event.v, payload: encodeJson(event) });
      const snap = await run.source.snapshotAtOrBefore(seq);
      if (snap !== undefined && snap.seq === seq) writer.putSnapshot(seq, op, snap.digest, snap.state, snap.format);
    }
    writer.endOp({
      index: span.index,
      line: span.index,
      op: span.name ?? '?',
      errno: null,
      result: '{}',
      firstSeq: span.firstSeq,
      lastSeq: span.lastSeq,
      digest: span.digest ?? '',
    });
  }
  await writer.finish('complete', { finalDigest: run.recorder.digests[run.events.length] ?? '' });
  source = await StoreSource.open(store, writer.run);
});

afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('StoreSource', () => {
  it('reads back the counts, ops and snapshots of the run', async () => {
    expect(source.eventCount()).toBe(307);
    expect(source.opCount()).toBe(25);
    expect(source.snapshotSeqs()).toEqual(run.source.snapshotSeqs());
    expect(await source.ops(3, 4)).toEqual(await run.source.ops(3, 4));
  });

  it('gives the live state at every seq', async () => {
    for (let seq = 0; seq <= 307; seq++) expect(await stateAt(source, seq), `seq ${seq}`).toEqual(run.live[seq]);
  });

  it('rebuilds with the digests recorded for every op and snapshot', async () => {
    expect(await verifyRebuild(source)).toMatchObject({ ok: true, events: 307, ops: 25, snapshots: 19 });
  });

  it('answers why and watch as the memory source does', async () => {
    expect(await why(source, { pfn: pfnOf(1) + 5 })).toEqual(await why(run.source, { pfn: pfnOf(1) + 5 }));
    expect(await why(source, { pages: ids(1).pages, index: 5 })).toEqual(
      await why(run.source, { pages: ids(1).pages, index: 5 }),
    );
    expect(await watch(source, 'npinned != last_npinned')).toEqual({ seq: 22, op: 3 });
    expect(await watch(source, 'violations > 0')).toEqual({ seq: 202, op: 16 });
  });

  it('steps a cursor through the stored run with the recorded digest after every op', async () => {
    const c = await Cursor.open(source, -1);
    while ((await c.forward()) !== null);
    expect(c.state).toEqual(run.live[307]);
    while ((await c.back()) !== null);
    expect(c.state).toEqual(run.live[0]);
  });

  it('refuses a run that is not in the store', async () => {
    await expect(StoreSource.open(store, 99)).rejects.toThrow(NotFoundError);
  });
});
