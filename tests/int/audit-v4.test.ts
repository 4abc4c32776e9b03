// SPDX-License-Identifier: GPL-2.0-only
/**
 * The audit of a version 4 trace: pins come in PagesPinnedRuns / PagesUnpinnedRuns lists and batch_unpin's
 * npinned change in one NpinnedChanged per call, and the ledger still balances against the state, as the
 * same trace in version 3 (one line per run) does.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ledgerLines } from '../../src/audit/ledger.js';
import { reconcile } from '../../src/audit/reconcile.js';
import { recordTrace, tempStore, type TempStore } from '../fixtures/audit/record.js';

let t: TempStore;
let dir: string;
beforeEach(async () => {
  t = await tempStore();
  dir = mkdtempSync(join(tmpdir(), 'ioptrace-audit-v4-'));
});
afterEach(async () => {
  await t.close();
  rmSync(dir, { recursive: true, force: true });
});

// 2100 scattered pages mapped whole through a domain, then unmapped.
const OPS = [
  '{"op":"process","pid":"p","memlock":"unlimited"}',
  '{"op":"mmap","pid":"p","addr":"0x100000000","length":8601600}',
  '{"op":"open","ctx":"c","pid":"p"}',
  '{"op":"ioas_alloc","ioas":"A"}',
  '{"op":"domain_attach","domain":"d","ioas":"A"}',
  '{"op":"ioas_map","ioas":"A","pid":"p","uptr":"0x100000000","length":8601600,"iova":"0x1000000"}',
  '{"op":"ioas_unmap","ioas":"A","all":true}',
];

function traceFile(version: number): string {
  const path = join(dir, `v${version}.jsonl`);
  writeFileSync(path, [`{"format":"ioptrace-trace","version":${version}}`, ...OPS, ''].join('\n'));
  return path;
}

describe('the audit of a version 4 trace', () => {
  it('balances the pins and npinned ledger lines of run lists as version 3 does one line per run', async () => {
    const balances: unknown[] = [];
    for (const version of [3, 4]) {
      const run = await recordTrace(t.store, traceFile(version), 'upstream');
      const r = await reconcile(t.store, run);
      expect(r.rules.filter((x) => !x.ok)).toEqual([]);
      const lines = await ledgerLines(t.store, run);
      const pins = lines.filter((l) => l.counter === 'pins' || l.counter === 'npinned');
      balances.push(pins.at(-1)?.value);
      if (version === 4) {
        expect(pins.map((l) => [l.op, l.type, l.counter, l.delta, l.value, l.fn])).toEqual([
          [6, 'PagesPinnedRuns', 'pins', 1024, 1024, 'pin_user_pages_fast'],
          [6, 'PagesPinnedRuns', 'pins', 1024, 2048, 'pin_user_pages_fast'],
          [6, 'PagesPinnedRuns', 'pins', 52, 2100, 'pin_user_pages_fast'],
          [6, 'NpinnedChanged', 'npinned', 2100, 2100, 'pfn_reader_user_pin'],
          [7, 'PagesUnpinnedRuns', 'pins', -1024, 1076, 'batch_unpin'],
          [7, 'PagesUnpinnedRuns', 'pins', -1024, 52, 'batch_unpin'],
          [7, 'PagesUnpinnedRuns', 'pins', -52, 0, 'batch_unpin'],
          [7, 'NpinnedChanged', 'npinned', -2100, 0, 'batch_unpin'],
        ]);
      } else {
        expect(pins).toHaveLength(2100 * 2 + 2100 + 1);
      }
    }
    expect(balances).toEqual([0, 0]);
  });
});
