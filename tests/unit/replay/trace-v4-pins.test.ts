// SPDX-License-Identifier: GPL-2.0-only
/**
 * Trace format version 4, pins: a pin or unpin call over scattered frames reports its PFN runs in
 * PagesPinnedRuns / PagesUnpinnedRuns events of at most MAX_EVENT_RUNS runs, and batch_unpin's npinned
 * changes in one NpinnedChanged, where version 3 has one event per run. The state after every op is the
 * same (the same digests).
 */
import { describe, expect, it } from 'vitest';
import { eventTypesOf as typesOf, replayAsVersion as run } from '../../support/versioned-replay.js';
import type { Event } from '../../../src/events/events.js';
import { mappedEventsOf, pinEventsOf } from '../../../src/events/runs.js';
import { DEFAULT_GUEST, guestTrace } from '../../../bench/generate.js';
import type { PinEvent } from '../../../src/events/runs.js';

// 2100 scattered pages mapped whole into an IOAS with a domain (pinned through the domain), then read
// through an access (pinned and unpinned one page), then unmapped.
const TRACE = [
  '{"op":"process","pid":"p","memlock":"unlimited"}',
  '{"op":"mmap","pid":"p","addr":"0x100000000","length":8601600}',
  '{"op":"open","ctx":"c","pid":"p"}',
  '{"op":"ioas_alloc","ioas":"A"}',
  '{"op":"domain_attach","domain":"d","ioas":"A"}',
  '{"op":"ioas_map","ioas":"A","pid":"p","uptr":"0x100000000","length":8601600,"iova":"0x1000000"}',
  '{"op":"access_create","access":"a","ioas":"A"}',
  '{"op":"access_rw","access":"a","iova":"0x1001000","length":2}',
  '{"op":"ioas_unmap","ioas":"A","all":true}',
];

describe('trace version 4 pins', () => {
  it('replays to the digests of version 3 after every op, with lists of pinned runs', () => {
    const v3 = run(3, TRACE);
    const v4 = run(4, TRACE);
    expect(v4.result.mismatches).toEqual([]);
    expect(v4.result.violations).toEqual([]);
    expect(v4.result.ops.map((o) => [o.op, o.digest])).toEqual(v3.result.ops.map((o) => [o.op, o.digest]));
    // The map: 2100 runs pinned in one pin_user_pages_fast call, reported in 3 lists of at most 1024 runs.
    expect(typesOf(v3.events, 6)).toMatchObject({ PagesPinned: 2100, NpinnedChanged: 1 });
    expect(typesOf(v4.events, 6)).toMatchObject({ PagesPinnedRuns: 3, NpinnedChanged: 1 });
    expect(typesOf(v4.events, 6)['PagesPinned']).toBeUndefined();
    // The unmap: one batch_unpin over the 2100 runs: 3 lists and one npinned change for the whole call.
    expect(typesOf(v3.events, 9)).toMatchObject({ PagesUnpinned: 2100, NpinnedChanged: 2100 });
    expect(typesOf(v4.events, 9)).toMatchObject({ PagesUnpinnedRuns: 3, NpinnedChanged: 1 });
    const lists = v4.events.flatMap(([op, e]) =>
      e.type === 'PagesPinnedRuns' || e.type === 'PagesUnpinnedRuns' || e.type === 'NpinnedChanged'
        ? [[op, e.type, 'runs' in e ? e.runs.length : e.delta, 'npages' in e ? e.npages : null, e.fn]]
        : [],
    );
    expect(lists).toEqual([
      [6, 'PagesPinnedRuns', 1024, 1024, 'pin_user_pages_fast'],
      [6, 'PagesPinnedRuns', 1024, 1024, 'pin_user_pages_fast'],
      [6, 'PagesPinnedRuns', 52, 52, 'pin_user_pages_fast'],
      [6, 'NpinnedChanged', 2100, null, 'pfn_reader_user_pin'],
      [9, 'PagesUnpinnedRuns', 1024, 1024, 'batch_unpin'],
      [9, 'PagesUnpinnedRuns', 1024, 1024, 'batch_unpin'],
      [9, 'PagesUnpinnedRuns', 52, 52, 'batch_unpin'],
      [9, 'NpinnedChanged', -2100, null, 'batch_unpin'],
    ]);
  });

  it('lists the same runs, in the same order, as the single events of version 3', () => {
    const singles = (events: [number, Event][]): [number, PinEvent][] =>
      events.flatMap(([op, e]) => pinEventsOf(e).map((r): [number, PinEvent] => [op, r]));
    const v3 = singles(run(3, TRACE).events);
    expect(v3).toHaveLength(4200);
    expect(singles(run(4, TRACE).events)).toEqual(v3);
  });

  it('maps the extents of one batch_to_domain in IommuMappedRuns lists, the same extents in the same order', () => {
    const v3 = run(3, TRACE);
    const v4 = run(4, TRACE);
    const extents = (events: [number, Event][]) =>
      events.flatMap(([op, e]) => mappedEventsOf(e).map((m): [number, Event] => [op, m]));
    expect(extents(v3.events)).toHaveLength(2100);
    expect(extents(v4.events)).toEqual(extents(v3.events));
    expect(typesOf(v4.events, 6)['IommuMapped']).toBeUndefined();
    expect(
      v4.events.flatMap(([op, e]) => (e.type === 'IommuMappedRuns' ? [[op, e.domain, e.extents.length, e.fn]] : [])),
    ).toEqual([
      // One list per batch_to_domain call: the batch holds 256 runs.
      ...Array.from({ length: 8 }, () => [6, 'd', 256, 'batch_to_domain']),
      [6, 'd', 52, 'batch_to_domain'],
    ]);
  });

  it('gives the digests of version 3 when an iommu_map of the batch fails and the call unmaps what it mapped', () => {
    const failing = [...TRACE.slice(0, 5), '{"op":"fault","nth":5,"site":"iommu_pages"}', ...TRACE.slice(5)];
    const v3 = run(3, failing);
    const v4 = run(4, failing);
    expect(v4.result.ops.map((o) => [o.op, o.digest, o.errno])).toEqual(
      v3.result.ops.map((o) => [o.op, o.digest, o.errno]),
    );
    const seen = (events: [number, Event][]) =>
      events.flatMap(([op, e]) => [...mappedEventsOf(e), ...pinEventsOf(e)].map((m): [number, Event] => [op, m]));
    expect(seen(v4.events)).toEqual(seen(v3.events));
    // The fifth IO page table allocation fails inside the map of the batch: ENOMEM, the mapped part undone.
    expect(v4.result.ops[7]?.errno).toBe('ENOMEM');
    expect(typesOf(v4.events, 7)).toMatchObject({ FaultInjected: 1, IommuMappedRuns: 3, IommuUnmapped: 1 });
    expect(typesOf(v4.events, 7)['IommuMapped']).toBeUndefined();
  });

  it('replays the benchmark guest of scattered 4 KiB pages (an iommupt mock and a generic domain) as version 3', () => {
    const guest = guestTrace({
      ...DEFAULT_GUEST,
      guestBytes: 8 * 1024 * 1024,
      accessOps: 40,
      chunkBytes: null,
      smallPages: true,
      seed: 1,
    });
    const lines = guest.text.trim().split('\n').slice(1);
    const v3 = run(3, lines);
    const v4 = run(4, lines);
    expect(v4.result.mismatches).toEqual([]);
    expect(v4.result.ops.map((o) => [o.op, o.digest])).toEqual(v3.result.ops.map((o) => [o.op, o.digest]));
    const seen = (events: [number, Event][]) =>
      events.flatMap(([op, e]) => [...mappedEventsOf(e), ...pinEventsOf(e)].map((m): [number, Event] => [op, m]));
    expect(seen(v4.events)).toEqual(seen(v3.events));
    expect([v3.events.length, v4.events.length]).toEqual([14003, 1733]);
    // The map of the whole guest: one list per batch and domain, split where an IO page table is allocated.
    expect(typesOf(v4.events, 7)).toMatchObject({ PagesPinnedRuns: 2, IoPageTablesChanged: 8, IommuMappedRuns: 10 });
  });
});
