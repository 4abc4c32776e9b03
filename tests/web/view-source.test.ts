// SPDX-License-Identifier: GPL-2.0-only
// The server keeps the event source of a finished run between view requests, but reads a run that is still
// being written afresh each time: a view asked for after more events were committed sees them.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJson } from '../../src/lib/codec.js';
import { digestHex } from '../../src/lib/digest.js';
import { openStore } from '../../src/store/index.js';
import type { RunWriter, Store } from '../../src/store/index.js';
import { MemorySource } from '../../src/timetravel/source.js';
import { stateAt } from '../../src/timetravel/state-at.js';
import { startServer } from '../../src/web/server.js';
import type { RunningServer } from '../../src/web/server.js';
import { liveRun } from '../contract/event-source.contract.js';
import { opRow, runInfo, tempDir } from '../support/store-rows.js';

const tmp = tempDir();
const run = liveRun();
const opOf: number[] = [];
for (const span of run.ops) for (let seq = span.firstSeq; seq <= span.lastSeq; seq++) opOf.push(span.index);
const memory = new MemorySource(run.sink.events, opOf);
let store: Store;
let server: RunningServer;
let writer: RunWriter;
let ended = 0;

function appendUpTo(last: number): void {
  for (let seq = writer.seq + 1; seq <= last; seq++) {
    const event = run.sink.events[seq - 1];
    if (event === undefined) throw new Error(`no event ${seq}`);
    writer.append({ seq, op: opOf[seq - 1] ?? 0, type: event.type, v: event.v, payload: encodeJson(event) });
    // Ops end in order, each once its last event is in (an op without events ends with the one before).
    while (ended < run.ops.length && (run.ops[ended]?.lastSeq ?? 0) <= seq) {
      const span = run.ops[ended] as (typeof run.ops)[number];
      writer.endOp({ ...opRow(ended), firstSeq: span.firstSeq, lastSeq: span.lastSeq });
      ended++;
    }
  }
}

async function view(seq: number): Promise<{ status: number; digest: string | undefined }> {
  const res = await fetch(new URL(`api/runs/${writer.run}/view?seq=${seq}`, server.url));
  const body = (await res.json()) as { view?: { digest: string } };
  return { status: res.status, digest: body.view?.digest };
}

async function digestAt(seq: number): Promise<string> {
  return digestHex((await stateAt(memory, seq)).digest);
}

beforeAll(async () => {
  store = await openStore(join(tmp.dir, 'view.db'));
  server = await startServer({ store });
  writer = await store.beginRun(runInfo());
});

afterAll(async () => {
  await server.close();
  await store.close();
  tmp.remove();
});

describe('GET /api/runs/RUN/view', () => {
  it('sees the events committed since the last request while the run is written, and keeps a finished run', async () => {
    expect(run.sink.events).toHaveLength(60);
    appendUpTo(30);
    await writer.flush();
    expect(await view(30)).toEqual({ status: 200, digest: await digestAt(30) });
    expect((await view(45)).status).toBe(400);
    appendUpTo(60);
    await writer.flush();
    expect(await view(45)).toEqual({ status: 200, digest: await digestAt(45) });
    await writer.finish('complete', { finalDigest: await digestAt(60) });
    expect(await view(60)).toEqual({ status: 200, digest: await digestAt(60) });
    expect(await view(12)).toEqual({ status: 200, digest: await digestAt(12) });
  });
});
