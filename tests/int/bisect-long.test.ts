// SPDX-License-Identifier: GPL-2.0-only
/**
 * Run bisect over the store on generated traces long enough to take every path of the stored scan: stretches
 * found by the database (equal corrections) and rows neutralised one by one across several chunks (a derived
 * alignment that differs for more than ROW_CHUNK ops), each checked against the in-memory bisect.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bisectRuns } from '../../src/bisect/bisect-runs.js';
import { bisectInMemory } from '../../src/bisect/memory.js';
import { parseVariantSpec } from '../../src/kernel/variant-spec.js';
import { parseTraceText } from '../../src/replay/parse.js';
import { recordReplay } from '../../src/replay/record.js';
import { openStore, type Store } from '../../src/store/index.js';
import { tempDir } from '../support/store-rows.js';

let tmp: ReturnType<typeof tempDir>;
let store: Store;

beforeEach(async () => {
  tmp = tempDir();
  store = await openStore(join(tmp.dir, 'long.db'));
});

afterEach(async () => {
  await store.close();
  tmp.remove();
});

const HEAD = [
  '{"format":"ioptrace-trace","version":1}',
  '{"op":"process","pid":1,"memlock":"unlimited"}',
  '{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":16384}',
  '{"op":"open","ctx":1,"pid":1}',
  '{"op":"ioas_alloc","ioas":"A"}',
  '{"op":"ioas_map","ioas":"A","pid":1,"uptr":"0x7f0000000000","length":16384,"iova":"0x100000"}',
];
const rlimit = (i: number): string => `{"op":"rlimit","pid":1,"memlock":${65536 + (i % 5) * 4096}}`;

async function both(text: string, a: string, b: string) {
  const trace = parseTraceText(text, 'long.jsonl');
  const runs: number[] = [];
  for (const spec of [a, b]) {
    const v = parseVariantSpec(spec);
    const recorded = await recordReplay(store, trace, {
      tracePath: 'long.jsonl',
      traceText: text,
      variant: v.label,
      fixes: v.fixes,
    });
    runs.push(recorded.run);
  }
  const stored = await bisectRuns(store, runs[0] as number, runs[1] as number);
  const memory = bisectInMemory(trace, parseVariantSpec(a), parseVariantSpec(b));
  return { stored, memory };
}

describe('bisectRuns over long stored runs', () => {
  it('neutralises row by row across chunks while v3 and merged disagree on the alignment, and finds the late pin', async () => {
    // access_create raises the merged alignment for the rest of the run; 10,000 ops later v3 fails a 2-page pin.
    const lines = [...HEAD, '{"op":"access_create","access":"x","ioas":"A"}'];
    for (let i = 0; i < 10000; i++) lines.push(rlimit(i));
    lines.push('{"op":"access_pin","access":"x","pid":1,"iova":"0x101000","length":8192}');
    const { stored, memory } = await both(lines.join('\n'), 'v3', 'merged');
    expect([stored.divergence?.op, stored.divergence?.line, stored.divergence?.name]).toEqual([
      10007,
      10008,
      'access_pin',
    ]);
    expect(stored.ranges).toEqual([[10007, 10008]]);
    expect(stored.ranges).toEqual(memory.scan.ranges);
    expect(stored.compared).toBe(10009);
    expect(stored.divergence?.diff.lines).toEqual(memory.divergence?.diff.lines);
  });

  it('finds many separate stretches in the database where the runs re-converge after each', async () => {
    // Each map without prot succeeds only without map-requires-prot; the unmap after it makes the states equal again.
    const lines = [...HEAD];
    for (let i = 0; i < 300; i++) {
      lines.push(rlimit(i), rlimit(i + 1));
      lines.push(
        '{"op":"ioas_map","ioas":"A","pid":1,"uptr":"0x7f0000000000","length":4096,"iova":"0x200000","read":false,"write":false}',
      );
      lines.push('{"op":"ioas_unmap","ioas":"A","iova":"0x200000","length":4096}');
    }
    const { stored, memory } = await both(lines.join('\n'), 'upstream', 'upstream-map-requires-prot');
    expect(stored.divergence?.op).toBe(8);
    expect(stored.ranges).toHaveLength(300);
    expect(stored.ranges[0]).toEqual([8, 9]);
    expect(stored.ranges[299]).toEqual([1204, 1205]);
    expect(stored.differingOps).toBe(600);
    expect(stored.ranges).toEqual(memory.scan.ranges);
  });
});
