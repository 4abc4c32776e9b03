// SPDX-License-Identifier: GPL-2.0-only
/**
 * Trace format version 5: one pages_to_xarray call reports its runs in XaStoredRuns events and one
 * clear_xarray call in XaErasedRuns events (at most MAX_EVENT_RUNS runs each), where version 4 has one
 * XaStored / XaErased per run; and an iommupt mock domain keeps its IO page tables as a digested set. The
 * runs are the single events' runs, in order; without an iommupt mock the digests are version 4's.
 */
import { describe, expect, it } from 'vitest';
import { eventTypesOf as typesOf, replayAsVersion as run } from '../../support/versioned-replay.js';
import type { Event, EventOf } from '../../../src/events/events.js';
import { xaEventsOf } from '../../../src/events/runs.js';
import { digestAdd, zeroDigest } from '../../../src/lib/digest.js';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { replay } from '../../../src/replay/replayer.js';
import type { Domain } from '../../../src/state/state.js';

// 2100 scattered 4 KiB pages (the default layout: no two frames adjacent) mapped into an IOAS with a
// domain; an access pins all of them, then 40 of them again, then unpins both.
const PAGE = 4096;
const IOVA = 0x1000000;
const hex = (n: number): string => `0x${n.toString(16)}`;
const TRACE = [
  '{"op":"process","pid":"p","memlock":"unlimited"}',
  `{"op":"mmap","pid":"p","addr":"0x100000000","length":${2100 * PAGE}}`,
  '{"op":"open","ctx":"c","pid":"p"}',
  '{"op":"ioas_alloc","ioas":"A"}',
  '{"op":"domain_attach","domain":"d","ioas":"A","kind":"generic"}',
  `{"op":"ioas_map","ioas":"A","pid":"p","uptr":"0x100000000","length":${2100 * PAGE},"iova":"${hex(IOVA)}"}`,
  '{"op":"access_create","access":"a","ioas":"A"}',
  `{"op":"access_pin","access":"a","pid":"kthread","iova":"${hex(IOVA)}","length":${2100 * PAGE}}`,
  `{"op":"access_pin","access":"a","pid":"kthread","iova":"${hex(IOVA + 100 * PAGE)}","length":${40 * PAGE}}`,
  `{"op":"access_unpin","access":"a","iova":"${hex(IOVA + 100 * PAGE)}","length":${40 * PAGE}}`,
  `{"op":"access_unpin","access":"a","iova":"${hex(IOVA)}","length":${2100 * PAGE}}`,
];

/** The single xarray events a log stands for, with their ops. */
const xaSingles = (events: readonly [number, Event][]): [number, Event][] =>
  events.flatMap(([op, e]) => xaEventsOf(e).map((x): [number, Event] => [op, x]));

const listLengths = (events: readonly [number, Event][], op: number): number[] =>
  events
    .filter(([at, e]) => at === op && (e.type === 'XaStoredRuns' || e.type === 'XaErasedRuns'))
    .map(([, e]) => (e as EventOf<'XaStoredRuns'> | EventOf<'XaErasedRuns'>).runs.length);

describe('trace version 5 xarray runs', () => {
  it('replays to the digests of version 4 after every op, with the same xarray runs in lists', () => {
    const v4 = run(4, TRACE);
    const v5 = run(5, TRACE);
    expect(v5.result.mismatches).toEqual([]);
    expect(v5.result.violations).toEqual([]);
    expect(v5.result.warns).toEqual([]);
    expect(v5.result.ops.map((o) => [o.op, o.errno, o.digest])).toEqual(
      v4.result.ops.map((o) => [o.op, o.errno, o.digest]),
    );
    expect(xaSingles(v5.events)).toEqual(xaSingles(v4.events));
    // The first pin: 2100 runs of one page each, stored by one pages_to_xarray call per batch of 1050
    // pages, each call in lists of 1024 and 26.
    expect(typesOf(v4.events, 8)['XaStored']).toBe(2100);
    expect(typesOf(v5.events, 8)['XaStored']).toBeUndefined();
    expect(listLengths(v5.events, 8)).toEqual([1024, 26, 1024, 26]);
    // The second pin holds pages already in the xarray: no store. Its unpin erases nothing either; the
    // last unpin erases the 2100 runs.
    expect(listLengths(v5.events, 9)).toEqual([]);
    expect(listLengths(v5.events, 10)).toEqual([]);
    expect(typesOf(v4.events, 11)['XaErased']).toBe(2100);
    expect(listLengths(v5.events, 11)).toEqual([1024, 1024, 52]);
    const first = v5.events.find(([, e]) => e.type === 'XaStoredRuns')?.[1] as EventOf<'XaStoredRuns'>;
    const pfn0 = first.runs[0]?.[1] ?? -1;
    // Every other frame: the default layout leaves a gap after each 4 KiB page.
    expect(first.runs.slice(0, 3)).toEqual([
      [0, pfn0, 1],
      [1, pfn0 + 2, 1],
      [2, pfn0 + 4, 1],
    ]);
    expect(v4.events.length - v5.events.length).toBe(2100 - 4 + (2100 - 3));
  });

  it('ends the list at the fault point halfway through pages_to_xarray, then erases the stored half', () => {
    const lines = [
      ...TRACE.slice(0, 7),
      '{"op":"fault","nth":1,"site":"pages_to_xarray"}',
      `{"op":"access_pin","access":"a","pid":"kthread","iova":"${hex(IOVA)}","length":${6 * PAGE},"expect":"EINVAL"}`,
    ];
    const v4 = run(4, lines);
    const v5 = run(5, lines);
    expect(v5.result.mismatches).toEqual([]);
    expect(v5.result.ops.map((o) => [o.errno, o.digest])).toEqual(v4.result.ops.map((o) => [o.errno, o.digest]));
    expect(xaSingles(v5.events)).toEqual(xaSingles(v4.events));
    const order = v5.events
      .filter(([op, e]) => op === 9 && ['XaStoredRuns', 'FaultInjected', 'XaErasedRuns'].includes(e.type))
      .map(([, e]) => [e.type, 'runs' in e ? e.runs.length : null]);
    expect(order).toEqual([
      ['XaStoredRuns', 3],
      ['FaultInjected', null],
      ['XaErasedRuns', 3],
    ]);
  });

  it('keeps the IO page tables of an iommupt mock as a digested set holding the tables version 4 lists', () => {
    const lines = TRACE.slice(0, 6).map((l) => l.replace(',"kind":"generic"', ''));
    // The domain after the map (op 6): the end of a version 2 trace releases everything.
    const afterMap = (version: number): Domain => {
      let domain: Domain | undefined;
      replay(parseTraceText(`${[`{"format":"ioptrace-trace","version":${version}}`, ...lines].join('\n')}\n`), {
        variant: 'upstream',
        fixes: resolveVariant('upstream').fixes,
        onOp: (record, state) => {
          if (record.index === 6) domain = structuredClone(state.domains['d']);
        },
      });
      if (domain === undefined) throw new Error('no domain after the map');
      return domain;
    };
    const v4 = afterMap(4);
    const v5 = afterMap(5);
    const tables4 = v4.ioPageTables ?? {};
    const set = v5.ioPageTableSet;
    expect(v5.ioPageTables).toBeUndefined();
    expect(v4.ioPageTableSet).toBeUndefined();
    // 2100 pages of 4 KiB at IOVA 0x1000000: 9 level-0 tables of 1 MiB, and the level-1 table of 512 MiB.
    expect(Object.keys(tables4)).toHaveLength(10);
    expect(Object.keys(set?.keys ?? {}).sort()).toEqual(Object.keys(tables4).sort());
    expect(set?.count).toBe(10);
    const digest = zeroDigest();
    for (const key of Object.keys(tables4)) digestAdd(digest, [key]);
    expect(set?.digest).toEqual(digest);
    // The same mappings either way: only the tables' part of the domain's record hashes differently.
    expect(v5.mappings.digest).toEqual(v4.mappings.digest);
    const attach = run(5, lines).events.find(([, e]) => e.type === 'DomainAllocated')?.[1];
    expect(attach).toMatchObject({ pageTable: 'iommupt', tableSet: true });
  });
});
