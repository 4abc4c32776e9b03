// SPDX-License-Identifier: GPL-2.0-only
/**
 * Trace format version 4: version 3 with allocations and mappings in bounded PFN run lists. A trace
 * replays to the same state after every op as it does in version 3 (the same digests); only the events
 * that say how the frames came differ: FrameRunsAllocated where version 3 has one FramesAllocated per block.
 */
import { describe, expect, it } from 'vitest';
import { eventTypesOf as typesOf, replayAsVersion as run } from '../../support/versioned-replay.js';
import { MAX_EVENT_RUNS } from '../../../src/events/events.js';

// 2100 scattered pages: more runs than one event carries. Two of them pinned through a domain, so the fork
// copies them; a memfd of scattered pages mapped into the IOAS.
const TRACE = [
  '{"op":"process","pid":"p","memlock":"unlimited"}',
  '{"op":"mmap","pid":"p","addr":"0x100000000","length":8601600}',
  '{"op":"write","pid":"p","addr":"0x100001000","data":"aabb"}',
  '{"op":"open","ctx":"c","pid":"p"}',
  '{"op":"ioas_alloc","ioas":"A"}',
  '{"op":"domain_attach","domain":"d","ioas":"A"}',
  '{"op":"ioas_map","ioas":"A","pid":"p","uptr":"0x100000000","length":8192,"iova":"0x1000000"}',
  '{"op":"fork","pid":"p","child":"q"}',
  '{"op":"memfd","file":"f","pid":"p","length":20480}',
  '{"op":"map_file","ioas":"A","pid":"p","file":"f","start":0,"length":20480,"iova":"0x2000000"}',
  '{"op":"write","pid":"q","addr":"0x100002000","data":"cc"}',
  '{"op":"read","pid":"q","addr":"0x100001000","length":2,"expect":{"data":"aabb"}}',
];

describe('trace version 4', () => {
  it('replays to the digests of version 3 after every op, with runs of frames instead of blocks', () => {
    const v3 = run(3, TRACE);
    const v4 = run(4, TRACE);
    expect(v4.result.mismatches).toEqual([]);
    expect(v4.result.violations).toEqual([]);
    expect(v4.result.ops.map((o) => [o.op, o.digest])).toEqual(v3.result.ops.map((o) => [o.op, o.digest]));
    expect(MAX_EVENT_RUNS).toBe(1024);
    // The mmap: 2100 blocks in 3 events of at most 1024 runs, mapped by 3 VmaMapped.
    expect(typesOf(v3.events, 2)).toEqual({ OpStarted: 1, FramesAllocated: 2100, VmaMapped: 1, OpFinished: 1 });
    expect(typesOf(v4.events, 2)).toEqual({ OpStarted: 1, FrameRunsAllocated: 3, VmaMapped: 3, OpFinished: 1 });
    const mapped = v4.events.flatMap(([op, e]) =>
      op === 2 && e.type === 'VmaMapped' ? [[e.vpn, e.npages, e.runs.length]] : [],
    );
    expect(mapped).toEqual([
      [0x100000, 1024, 1024],
      [0x100000 + 1024, 1024, 1024],
      [0x100000 + 2048, 52, 52],
    ]);
    // The fork copies the two pinned pages: their frames come in one event; the child's mapping (each
    // page its own run) in 3.
    expect(typesOf(v3.events, 8)).toMatchObject({ FramesAllocated: 2, MemoryWritten: 1, VmaMapped: 1 });
    expect(typesOf(v4.events, 8)).toMatchObject({ FrameRunsAllocated: 1, MemoryWritten: 1, VmaMapped: 3 });
    // The memfd's five folios: one event.
    expect(typesOf(v4.events, 9)).toMatchObject({ FrameRunsAllocated: 1, MemfdCreated: 1 });
    expect(v4.result.ops[12]?.outputs).toEqual({ data: 'aabb' });
  });
});
