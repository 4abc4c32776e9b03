// SPDX-License-Identifier: GPL-2.0-only
// The cursor through the public API: over every op of shipped traces, each step forward lands on the digest
// the replay recorded for that op, and each step back by inverse patches lands on the digest of the op
// before (the initial state's before op 0).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  Cursor,
  MemorySink,
  MemorySource,
  digestHex,
  initialState,
  parseTraceText,
  replay,
  resolveVariant,
} from '../../../src/index.js';
import type { OpSpan } from '../../../src/index.js';
import { renderPatches } from '../../../src/timetravel/index.js';

function recordedRun(path: string, variant: string): { source: MemorySource; digests: string[] } {
  const sink = new MemorySink();
  const trace = parseTraceText(readFileSync(path, 'utf8'), path);
  const live = replay(trace, { variant, fixes: resolveVariant(variant).fixes, sink });
  const spans: OpSpan[] = live.ops.map((o) => ({
    index: o.index,
    firstSeq: o.firstSeq,
    lastSeq: o.lastSeq,
    digest: o.digest,
    name: o.op,
  }));
  return { source: new MemorySource(sink.events, sink.ops, [], spans), digests: live.ops.map((o) => o.digest) };
}

describe('Cursor from the public API', () => {
  for (const [path, variant] of [
    ['replays/bad-free.jsonl', 'v3'],
    ['replays/bad-free.jsonl', 'upstream'],
    ['replays/selftest/fail_nth.map_domain.jsonl', 'v3'],
  ] as const) {
    it(`${path} on ${variant}: forward then back over every op returns to each recorded digest`, async () => {
      const { source, digests } = recordedRun(path, variant);
      expect(digests.length).toBe(source.opCount());
      const cursor = await Cursor.open(source, -1);
      const start = digestHex(initialState().digest);
      expect(digestHex(cursor.state.digest)).toBe(start);
      const forward: number[] = [];
      for (let step = await cursor.forward(); step !== null; step = await cursor.forward()) {
        forward.push(step.op);
        expect(digestHex(cursor.state.digest), `after op ${step.op}`).toBe(digests[step.op]);
      }
      expect(forward).toEqual(digests.map((_, i) => i));
      const undone: number[] = [];
      for (let step = await cursor.back(); step !== null; step = await cursor.back()) {
        undone.push(step.op);
        expect(step.direction).toBe('back');
        expect(cursor.op).toBe(step.op - 1);
        expect(digestHex(cursor.state.digest), `undo op ${step.op}`).toBe(step.op === 0 ? start : digests[step.op - 1]);
      }
      expect(undone).toEqual(forward.slice().reverse());
    });
  }

  it('renders the patches of a step with the old value read before each patch (bad-free op 8 on v3)', async () => {
    const { source } = recordedRun('replays/bad-free.jsonl', 'v3');
    const cursor = await Cursor.open(source, 7);
    const before = cursor.state;
    const step = await cursor.forward();
    expect(step?.op).toBe(8);
    const texts = renderPatches(before, step?.patches ?? [], 2).map((p) => p.text);
    // v3 mmput()s the exited mm a reference it never took, and records three violations.
    expect(texts).toEqual(['replace mms.1.mm_users 0 -> -1', 'replace violations (count) 0 -> 3']);
    expect(step?.patches.length).toBe(6);
  });

  it('renders removals of array elements in the order immer applies them (bad-free op 7: exit)', async () => {
    const { source } = recordedRun('replays/bad-free.jsonl', 'v3');
    const cursor = await Cursor.open(source, 6);
    const before = cursor.state;
    const step = await cursor.forward();
    const texts = renderPatches(before, step?.patches ?? [], 5).map((p) => p.text);
    expect(texts).toEqual([
      'replace processes.1.exited no -> yes',
      'remove mms.1.pt.runs.root.keys.0 (was 0x7f0000000)',
      'remove mms.1.pt.runs.root.vals.0 (was {index 0x7f0000000, pfn 0x40000, count 1, n 2, indexStep 1, pfnStep 2})',
      'replace mms.1.pt.runs.size 1 -> 0',
      'replace mms.1.pt.digest.lo 0xb38bbd6a -> 0x0',
    ]);
  });

  it('reads each old value after the earlier patches of the same step (an array shifted by a removal)', () => {
    const texts = renderPatches(
      { list: [1, 2, 3] },
      [
        { op: 'remove', path: ['list', 0] },
        { op: 'replace', path: ['list', 0], value: 9 },
      ],
      10,
    ).map((p) => p.text);
    expect(texts).toEqual(['remove list.0 (was 1)', 'replace list.0 2 -> 9']);
  });

  it('summarises a step longer than the bound: only the first patches are rendered', () => {
    const patches = [0, 1, 2].map((i) => ({ op: 'replace' as const, path: ['n'], value: i + 1 }));
    expect(renderPatches({ n: 0 }, patches, 2).map((p) => p.text)).toEqual(['replace n 0 -> 1', 'replace n 1 -> 2']);
  });
});
