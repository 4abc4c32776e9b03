// SPDX-License-Identifier: GPL-2.0-only
/**
 * The state digest and the two hash-chain heads (events, ops) of every shipped trace on every variant,
 * recorded into an in-memory store. tests/fixtures/heads.json pins them so that a restructuring that
 * changes an event, an op row or the state digest shows up; tests/support/pin-heads.ts writes the fixture.
 */
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { resolveVariant } from '../../src/kernel/variants.js';
import { parseTraceText } from '../../src/replay/parse.js';
import { recordReplay } from '../../src/replay/record.js';
import { openStore } from '../../src/store/index.js';

export const ROOT = join(import.meta.dirname, '../..');
export const HEADS_FIXTURE = join(ROOT, 'tests/fixtures/heads.json');

export interface Heads {
  digest: string;
  head: string;
  opsHead: string | null;
}

function shippedTraces(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.jsonl'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
    .sort();
}

export const SHIPPED_TRACES = shippedTraces(join(ROOT, 'replays'));
export const PINNED_VARIANTS = ['merged', 'upstream', 'v3'] as const;

/** The heads of one trace on one variant, keyed `trace@variant`. */
export async function computeHeadsOf(path: string, variant: string): Promise<Record<string, Heads>> {
  // An asynchronous read: the event loop turns between runs, so the test worker stays responsive.
  const text = await readFile(join(ROOT, path), 'utf8');
  const store = await openStore(':memory:');
  try {
    const { fixes } = resolveVariant(variant);
    const rec = await recordReplay(store, parseTraceText(text, path), {
      tracePath: path,
      traceText: text,
      variant,
      fixes,
    });
    // Promise.resolve: the store's reads are becoming asynchronous; this reads the same either way.
    const row = await Promise.resolve(store.run(rec.run));
    return { [`${path}@${variant}`]: { digest: rec.result.digest, head: rec.head, opsHead: row?.opsHeadHash ?? null } };
  } finally {
    await store.close();
  }
}
