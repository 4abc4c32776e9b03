// SPDX-License-Identifier: GPL-2.0-only
// The browser view's server and the answers behind it are part of the library API: a tool embeds the
// server with `startServer` and gets over HTTP what it gets by calling the answer functions itself.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, runsAnswer, startServer, stateAnswer, whyAnswer } from '../../src/index.js';
import type { RunningServer, Store } from '../../src/index.js';
import { toJson } from '../../src/lib/format.js';
import { tempDir } from '../support/store-rows.js';
import { buildWebStore } from '../support/web-store.js';

const tmp = tempDir();
let store: Store;
let server: RunningServer;

beforeAll(async () => {
  const db = join(tmp.dir, 'library.db');
  await buildWebStore(db);
  store = await openStore(db, { readonly: true });
  server = await startServer({ store });
});

afterAll(async () => {
  await server.close();
  await store.close();
  tmp.remove();
});

async function get(path: string): Promise<unknown> {
  const res = await fetch(new URL(path, server.url));
  expect(res.status).toBe(200);
  return res.json();
}

/** What the API sends for an answer: the answer through the JSON form the CLI prints. */
const asSent = (answer: unknown): unknown => JSON.parse(toJson(answer));

describe('the server through the library API', () => {
  it('listens on loopback and lists the same runs as runsAnswer', async () => {
    expect(new URL(server.url).hostname).toBe('127.0.0.1');
    const runs = await runsAnswer(store);
    expect(runs.map((r) => [r.id, r.label, r.status])).toEqual([
      [1, 'v3', 'complete'],
      [2, 'v3', 'complete'],
      [3, 'v3+carry-end-one', 'complete'],
    ]);
    expect(await get('/api/runs')).toEqual(asSent(runs));
  });

  it('answers the state at an event and why a PFN is pinned as the answer functions do', async () => {
    const { opRow: _op, ...state } = await stateAnswer(store, 1, 39);
    expect(await get('/api/runs/1/state?seq=39')).toEqual(asSent(state));
    const why = await whyAnswer(store, 2, { pfn: 0x40000 });
    expect(why.events.map((e) => e.type).slice(0, 3)).toEqual(['FramesAllocated', 'VmaMapped', 'PagesPinned']);
    expect(await get('/api/runs/2/why?pfn=0x40000')).toEqual(asSent(why));
  });
});
