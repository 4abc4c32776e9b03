// SPDX-License-Identifier: GPL-2.0-only
// The runs list reads each run's findings from a stream of its op rows (opsInOrder), the run page from the
// rows it already holds: both must find the same violations, WARNs and unmet expectations.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseTraceText } from '../../src/replay/parse.js';
import { recordReplay } from '../../src/replay/record.js';
import { opsInOrder, openStore } from '../../src/store/index.js';
import { findingCounts, runFindings } from '../../src/web/findings.js';
import { tempDir } from '../support/store-rows.js';

const tmp = tempDir();
afterAll(() => tmp.remove());

// Line 5 expects success of an unmap of nothing, which is ENOENT.
const TRACE = [
  '{"format":"ioptrace-trace","version":1}',
  '{"op":"process","pid":1,"expect":"ok"}',
  '{"op":"open","ctx":1,"pid":1,"expect":"ok"}',
  '{"op":"ioas_alloc","ioas":"A","expect":"ok"}',
  '{"op":"ioas_unmap","ioas":"A","iova":"0x1000000","length":4096,"expect":"ok"}',
  '',
].join('\n');

describe('findings of a stored run', () => {
  it('are the same from streamed op rows as from the whole array, unmet expectations included', async () => {
    const store = await openStore(join(tmp.dir, 'f.db'));
    try {
      const recorded = await recordReplay(store, parseTraceText(TRACE, 't.jsonl'), {
        tracePath: 't.jsonl',
        traceText: TRACE,
        variant: 'upstream',
        fixes: [],
      });
      const run = recorded.run;
      const streamed = await runFindings(store, run, opsInOrder(store, run));
      expect(streamed).toEqual(await runFindings(store, run, await store.ops(run)));
      expect(streamed.filter((f) => f.kind === 'unmet')).toEqual([
        { kind: 'unmet', what: 'errno', seq: 0, op: 4, text: 'line 5: expected errno ok, got ENOENT' },
      ]);
      expect(findingCounts(streamed)).toEqual({ violation: 0, warn: 0, unmet: 1 });
    } finally {
      await store.close();
    }
  });
});
