// SPDX-License-Identifier: GPL-2.0-only
// The store the browser-view tests read: run 1 the shipped BAD_FREE (replays/bad-free.jsonl on v3), run 2 a
// held pin leak (tests/fixtures/bisect/held-carry.jsonl on v3: an access holds two pages while the domain
// is detached and v3 leaks 508 pins), run 3 the same trace with the carry fix (its bisect partner).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseVariantSpec } from '../../src/kernel/variant-spec.js';
import { parseTraceText } from '../../src/replay/parse.js';
import { recordReplay } from '../../src/replay/record.js';
import { openStore } from '../../src/store/index.js';

export const ROOT = join(import.meta.dirname, '../..');
export const BAD_FREE = 'replays/bad-free.jsonl';
export const HELD = 'tests/fixtures/bisect/held-carry.jsonl';

export async function buildWebStore(db: string): Promise<void> {
  const store = await openStore(db);
  try {
    for (const [path, spec] of [
      [BAD_FREE, 'v3'],
      [HELD, 'v3'],
      [HELD, 'v3+carry-end-one'],
    ] as const) {
      const text = readFileSync(join(ROOT, path), 'utf8');
      const v = parseVariantSpec(spec);
      await recordReplay(store, parseTraceText(text, path), {
        tracePath: path,
        traceText: text,
        variant: v.label,
        fixes: v.fixes,
      });
    }
  } finally {
    await store.close();
  }
}
