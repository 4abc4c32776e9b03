// SPDX-License-Identifier: GPL-2.0-only
/**
 * File-backed pages (IOMMU_IOAS_MAP_FILE, flag ioas-map-file): per-folio pin counts and charges of a memfd
 * of 2 MiB folios mapped at an offset, through a domain and through an access; the file's lifetime; the
 * rollback of batch_from_folios; the fail-nth sweep of a small file map; and the stale folio slot that
 * pfn_reader_release_pins unpins on an error path.
 */
import { describe, expect, it } from 'vitest';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { batchFromFolios, batchInit } from '../../../src/kernel/pages-batch.js';
import { memfdCreate, memfdPinFolios, folioPins } from '../../../src/machine/memfd.js';
import type { FolioHandle } from '../../../src/machine/memfd.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { replay } from '../../../src/replay/replayer.js';
import type { ReplayResult } from '../../../src/replay/replayer.js';
import { failNthSweep } from '../../../src/replay/failnth.js';
import type { State } from '../../../src/state/state.js';
import { rangeGet, rangeSegments } from '../../../src/structures/range-map.js';
import { yielder } from '../../support/yield.js';
import { proc, warns, world } from '../../support/world.js';

const HEADER = '{"format":"ioptrace-trace","version":1}';
/** The first two 2 MiB folios of the default layout (naturally aligned, one PFN of gap between blocks). */
const FOLIO0 = 0x40000;
const FOLIO1 = 0x40400;

interface Snapshot {
  /** Pins per folio (the sum over its 512 PFNs) of the file's two folios. */
  folioPins: [number, number];
  /** Runs of PFNs with the same pin count, over both folios: [pfn, count, pins]. */
  pinRuns: [number, number, number][];
  npinned: number[];
  lastNpinned: number[];
  userLockedVm: number;
  mmLockedVm: number;
  pinnedVm: number;
  fileRefs: number | null;
  frames: number;
}

function snapshot(s: State): Snapshot {
  const pinsOf = (first: number): number => {
    let n = 0;
    for (const seg of rangeSegments(s.frames, first, 512)) n += seg.value.pins * seg.count;
    return n;
  };
  const runs: [number, number, number][] = [];
  for (const first of [FOLIO0, FOLIO1]) {
    for (const seg of rangeSegments(s.frames, first, 512)) {
      if (seg.value.pins > 0) runs.push([seg.start, seg.count, seg.value.pins]);
    }
  }
  const pages = Object.values(s.pages);
  let frames = 0;
  for (const seg of rangeSegments(s.frames, FOLIO0, FOLIO1 + 512 - FOLIO0)) frames += seg.count;
  return {
    folioPins: [pinsOf(FOLIO0), pinsOf(FOLIO1)],
    pinRuns: runs,
    npinned: pages.map((p) => p.npinned),
    lastNpinned: pages.map((p) => p.lastNpinned),
    userLockedVm: s.users[1000]?.lockedVm ?? 0,
    mmLockedVm: s.mms[1]?.lockedVm ?? 0,
    pinnedVm: s.mms[1]?.pinnedVm ?? 0,
    fileRefs: s.files['mfd']?.refs ?? null,
    frames,
  };
}

/** Replay a trace body on a variant, with a snapshot of the state after every op (by line). */
function run(
  body: string[],
  variant = 'upstream',
  add: string[] = [],
  remove: string[] = [],
): { r: ReplayResult; at: Map<number, Snapshot> } {
  const at = new Map<number, Snapshot>();
  const trace = parseTraceText([HEADER, ...body].join('\n'), 'map-file');
  const r = replay(trace, { ...resolveVariant(variant, add, remove), onOp: (rec, s) => at.set(rec.line, snapshot(s)) });
  return { r, at };
}

const found = (r: ReplayResult): string[] => [...r.violations, ...r.warns].map((f) => `${f.kind} ${f.fn}`);

/** A process (RLIMIT_MEMLOCK 8 MiB) with a 4 MiB memfd of two 2 MiB folios, a context and an IOAS. */
function prologue(account: 'user' | 'mm' = 'user'): string[] {
  return [
    '{"op":"process","pid":1,"memlock":8388608}',
    '{"op":"memfd","pid":1,"file":"mfd","length":4194304,"huge":"2M","expect":"ok"}',
    `{"op":"open","ctx":"c","pid":1,"account":"${account}"}`,
    '{"op":"ioas_alloc","ioas":"A"}',
  ];
}

describe('a memfd of 2 MiB folios mapped at an offset', () => {
  // Line numbers: the header is line 1, so prologue lines are 2..5.
  const body = [
    ...prologue(),
    '{"op":"domain_attach","domain":"D","ioas":"A"}', // line 6
    // 1 MiB from byte 0x180000: file pages 384..639, 128 in each folio, mapped at IOVA 16 MiB.
    '{"op":"map_file","ioas":"A","pid":1,"file":"mfd","start":"0x180000","length":"0x100000","iova":"0x1000000","expect":{"iova":"0x1000000"}}', // 7
    // An access pins 4 pages across the folio boundary. The area already holds them: an index is pinned once
    // while any tree covers it, so the access reads the PFNs from the domain and adds no pin.
    '{"op":"access_create","access":"x","ioas":"A","expect":"ok"}', // 8
    '{"op":"access_pin","access":"x","pid":"kthread","iova":"0x107e000","length":16384,"expect":"ok"}', // 9
    '{"op":"access_unpin","access":"x","iova":"0x107e000","length":16384,"expect":"ok"}', // 10
    '{"op":"access_destroy","access":"x","expect":"ok"}', // 11
    // A second mapping of the same file from a sub-page offset: bytes 0x1ff800..0x2007ff, pages 511 and 512
    // (with no access left: an access needs PAGE_SIZE-aligned areas).
    '{"op":"map_file","ioas":"A","pid":1,"file":"mfd","start":"0x1ff800","length":"0x1000","iova":"0x2000800","expect":{"iova":"0x2000800"}}', // 12
    '{"op":"ioas_unmap","ioas":"A","iova":"0x1000000","length":"0x100000","expect":{"unmapped":"0x100000"}}', // 13
    '{"op":"exit","pid":1,"expect":"ok"}', // 14: the fd closes; the second mapping still holds the file
    '{"op":"ioas_unmap","ioas":"A","all":true,"expect":{"unmapped":"0x1000"}}', // 15: the last reference goes
  ];
  const { r, at } = run(body);

  it('replays clean: every expectation met, no WARN, no violation', () => {
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
  });

  it('pins one pin per used page: 128 on each folio, none outside the mapped pages, and charges 256 pages', () => {
    expect(at.get(7)).toEqual({
      folioPins: [128, 128],
      pinRuns: [
        [FOLIO0 + 384, 128, 1],
        [FOLIO1, 128, 1],
      ],
      npinned: [256],
      lastNpinned: [256],
      userLockedVm: 256,
      mmLockedVm: 0,
      pinnedVm: 256,
      fileRefs: 2,
      frames: 1024,
    });
  });

  it('a sub-page file offset maps the two pages it touches, one in each folio, and charges them', () => {
    expect(at.get(12)).toEqual({
      folioPins: [129, 129],
      pinRuns: [
        [FOLIO0 + 384, 127, 1],
        [FOLIO0 + 511, 1, 2],
        [FOLIO1, 1, 2],
        [FOLIO1 + 1, 127, 1],
      ],
      npinned: [256, 2],
      lastNpinned: [256, 2],
      userLockedVm: 258,
      mmLockedVm: 0,
      pinnedVm: 258,
      fileRefs: 3,
      frames: 1024,
    });
  });

  it('an access over the folio boundary reads the PFNs of both folios and pins nothing more', () => {
    expect(at.get(9)).toMatchObject({ folioPins: [128, 128], npinned: [256], userLockedVm: 256 });
    const pin = r.ops.find((o) => o.line === 9);
    expect(pin?.outputs['pfns']).toEqual([
      [FOLIO0 + 510, 2],
      [FOLIO1, 2],
    ]);
  });

  it('unpins exactly what it pinned, and the file outlives its fd while a mapping holds it', () => {
    expect(at.get(10)?.folioPins).toEqual([128, 128]);
    expect(at.get(11)?.folioPins).toEqual([128, 128]);
    expect(at.get(13)).toMatchObject({ folioPins: [1, 1], npinned: [2], userLockedVm: 2, fileRefs: 2 });
    // exit_files drops the fd; the iopt_pages still holds the file and its page cache.
    expect(at.get(14)).toMatchObject({ folioPins: [1, 1], fileRefs: 1, frames: 1024 });
    // The last unmap releases the pages, which fputs the last reference: the folios are freed.
    expect(at.get(15)).toMatchObject({ folioPins: [0, 0], npinned: [], userLockedVm: 0, fileRefs: null, frames: 0 });
  });
});

describe('charges in MM mode (the VFIO-compatible context)', () => {
  it('charges mm.locked_vm of the mapping process, without any mm reference of the file reader', () => {
    const { r, at } = run([
      ...prologue('mm'),
      '{"op":"domain_attach","domain":"D","ioas":"A"}',
      '{"op":"map_file","ioas":"A","pid":1,"file":"mfd","start":"0x180000","length":"0x100000","iova":"0x1000000","expect":{"iova":"0x1000000"}}',
      '{"op":"ioas_unmap","ioas":"A","all":true,"expect":{"unmapped":"0x100000"}}',
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(7)).toMatchObject({ folioPins: [128, 128], userLockedVm: 0, mmLockedVm: 256, pinnedVm: 256 });
    expect(at.get(8)).toMatchObject({ folioPins: [0, 0], mmLockedVm: 0, pinnedVm: 0 });
  });

  it('is refused past RLIMIT_MEMLOCK with every pin undone', () => {
    const { r, at } = run([
      '{"op":"process","pid":1,"memlock":1048576}',
      '{"op":"memfd","pid":1,"file":"mfd","length":4194304,"huge":"2M","expect":"ok"}',
      '{"op":"open","ctx":"c","pid":1}',
      '{"op":"ioas_alloc","ioas":"A"}',
      '{"op":"domain_attach","domain":"D","ioas":"A"}',
      // 257 pages against a limit of 256.
      '{"op":"map_file","ioas":"A","pid":1,"file":"mfd","start":"0x17f000","length":"0x101000","iova":"0x1000000","expect":"ENOMEM"}',
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(7)).toMatchObject({ folioPins: [0, 0], npinned: [], userLockedVm: 0, fileRefs: 1 });
  });
});

describe('the file and the flag', () => {
  it('a range past the end of the file fails at the first pin, with nothing left pinned', () => {
    const { r, at } = run([
      ...prologue(),
      '{"op":"domain_attach","domain":"D","ioas":"A"}',
      '{"op":"map_file","ioas":"A","pid":1,"file":"mfd","start":"0x300000","length":"0x200000","iova":"0x1000000","expect":"EINVAL"}',
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(7)).toMatchObject({ folioPins: [0, 0], npinned: [], fileRefs: 1 });
  });

  it('a closed fd cannot be mapped (EBADF) though a mapping keeps the file; without a domain nothing is pinned', () => {
    const { r, at } = run([
      '{"op":"process","pid":1,"memlock":8388608}',
      // Process 2 creates the memfd and hands its fd over (SCM_RIGHTS is not modelled), then exits.
      '{"op":"process","pid":2}',
      '{"op":"memfd","pid":2,"file":"mfd","length":4194304,"huge":"2M","expect":"ok"}',
      '{"op":"open","ctx":"c","pid":1}',
      '{"op":"ioas_alloc","ioas":"A"}',
      '{"op":"map_file","ioas":"A","pid":1,"file":"mfd","start":0,"length":8192,"expect":{"iova":"0x2000"}}', // 7
      '{"op":"exit","pid":2}', // 8
      '{"op":"map_file","ioas":"A","pid":1,"file":"mfd","start":0,"length":8192,"expect":"EBADF"}', // 9
      '{"op":"ioas_unmap","ioas":"A","all":true,"expect":{"unmapped":"0x2000"}}', // 10
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(7)).toMatchObject({ folioPins: [0, 0], npinned: [0], fileRefs: 2 });
    expect(at.get(8)).toMatchObject({ fileRefs: 1, frames: 1024 });
    expect(at.get(9)).toMatchObject({ fileRefs: 1, frames: 1024 });
    expect(at.get(10)).toMatchObject({ fileRefs: null, frames: 0 });
  });

  it('is ENOTTY before v6.13 (merged, or upstream without ioas-map-file)', () => {
    const body = [
      ...prologue(),
      '{"op":"map_file","ioas":"A","pid":1,"file":"mfd","start":0,"length":8192,"expect":"ENOTTY"}',
    ];
    expect(run(body, 'merged').r.mismatches).toEqual([]);
    const { r } = run(body, 'upstream');
    expect(r.mismatches.map((m) => `${m.line} ${m.field} ${String(m.actual)}`)).toEqual(['6 errno ok']);
    const without = run(body, 'upstream', [], ['ioas-map-file']);
    expect(without.r.mismatches).toEqual([]);
  });
});

describe('batch_from_folios rollback', () => {
  /** Two pinned 2 MiB folios of a memfd, pinned from page 510 (2 pages of folio 0, then folio 1). */
  function pinned(): { w: ReturnType<typeof world>; folios: (FolioHandle | undefined)[] } {
    const w = world('upstream');
    proc(w, 'p1');
    expect(memfdCreate(w.sim, 'p1', 'mfd', 4n << 20n, '2M')).toBe(0);
    const folios: (FolioHandle | undefined)[] = [];
    const r = memfdPinFolios(w.sim, 'mfd', 510n * 4096n, 514n * 4096n - 1n, folios, 8);
    expect(r).toEqual({ rc: 2, offset: 510 * 4096 });
    expect(folios).toEqual([
      { pfn: FOLIO0, npfns: 512, pinPfn: FOLIO0 + 510 },
      { pfn: FOLIO1, npfns: 512, pinPfn: FOLIO1 },
    ]);
    return { w, folios };
  }

  it('moves each folio as one run and adds nr - 1 pins', () => {
    const { w, folios } = pinned();
    const { batch } = batchInit(w.sim, 4, 'test');
    if (batch === null) throw new Error('no batch');
    expect(batchFromFolios(w.sim, batch, folios, 0, 510, 4)).toEqual({ rc: 0, next: 2, offset: 0 });
    expect(batch.b.pfns.slice(0, batch.b.end)).toEqual([FOLIO0 + 510, FOLIO1]);
    expect(batch.b.npfns.slice(0, batch.b.end)).toEqual([2, 2]);
    expect(folios.map((f) => folioPins(w.sim, f as FolioHandle))).toEqual([2, 2]);
    expect(rangeGet(w.sim.state.frames, FOLIO0 + 511)?.pins).toBe(1);
  });

  it('takes a folio back out of the batch when folio_add_pins fails, and stops at it', () => {
    const { w, folios } = pinned();
    // Drop folio 1's only pin behind the reader's back: folio_add_pins then finds it unpinned.
    w.sim.emit({ type: 'PagesUnpinned', v: 1, pfn: FOLIO1, count: 1, dirty: false, fn: 'test' });
    const { batch } = batchInit(w.sim, 4, 'test');
    if (batch === null) throw new Error('no batch');
    expect(batchFromFolios(w.sim, batch, folios, 0, 510, 4)).toEqual({ rc: -22, next: 1, offset: 0 });
    expect(batch.b.end).toBe(1);
    expect(batch.b.totalPfns).toBe(2);
    expect(batch.b.npfns[0]).toBe(2);
    expect(warns(w)).toEqual([['folio_add_pins', '!folio_maybe_dma_pinned(folio)']]);
    expect(folioPins(w.sim, folios[1] as FolioHandle)).toBe(0);
  });

  it('a batch that is full leaves the folio for the next batch', () => {
    const { w, folios } = pinned();
    // One run of room: the first folio goes in, the second does not fit (not contiguous with it).
    const { batch } = batchInit(w.sim, 1, 'test');
    if (batch === null) throw new Error('no batch');
    expect(batch.b.arraySize).toBe(1);
    expect(batchFromFolios(w.sim, batch, folios, 0, 510, 4)).toEqual({ rc: 0, next: 1, offset: 0 });
    expect(batch.b.totalPfns).toBe(2);
    expect(folioPins(w.sim, folios[1] as FolioHandle)).toBe(1);
  });
});

describe('fail-nth of a file map through a domain with tiny batches', () => {
  // 8 pages of 4 KiB folios with a 32-byte temp limit: a 4-folio array and 2-run batches, two full pins.
  const trace = parseTraceText(
    [
      HEADER,
      '{"op":"process","pid":1,"memlock":"unlimited"}',
      '{"op":"memfd","pid":1,"file":"mfd","length":32768}',
      '{"op":"open","ctx":"c","pid":1}',
      '{"op":"ioas_alloc","ioas":"A"}',
      '{"op":"temp_memory_limit","bytes":32}',
      '{"op":"domain_attach","domain":"D1","ioas":"A"}',
      '{"op":"map_file","ioas":"A","pid":1,"file":"mfd","start":0,"length":32768,"expect":{"iova":"0x1000000"}}',
      '{"op":"domain_detach","domain":"D1"}',
      '{"op":"domain_attach","domain":"D2","ioas":"A"}',
    ].join('\n'),
    'map-file-failnth',
  );

  // 23 fault points in the clean run are the mock's business of neither era (object allocations, temp
  // buffers, the gup point of each of the two pin calls, the charge). The xarray mock adds its
  // iommufd_should_fail to each of the 16 iommu_map calls (8 pages, not physically contiguous, into D1 and
  // then D2): 39 points. The iommupt mock (upstream) has none there but allocates 6 table levels: each
  // domain's top table at attach and, on its first map, a level-1 and a level-0 table: 29 points. Then the
  // run that fires nothing.
  for (const [label, remove, runs] of [
    ['upstream (the iommupt mock)', [], 30],
    ['upstream with the xarray mock', ['mock-iommupt'], 40],
  ] as const) {
    it(`${label}: every fault point fails in turn, with no WARN and no violation, and the teardown leaves nothing`, async () => {
      const pause = yielder();
      const { fixes } = resolveVariant('upstream', [], remove);
      const fired: boolean[] = [];
      const findings: string[] = [];
      for (let n = 1; n <= 200; n++) {
        const one = failNthSweep(trace, { variant: 'upstream', fixes, firstN: n, maxN: n });
        for (const s of one.steps) fired.push(s.fired);
        for (const f of one.findings) findings.push(`N=${f.n} ${f.kind} ${f.fn}`);
        if (!one.truncated) break;
        await pause();
      }
      expect(findings).toEqual([]);
      expect(fired.length).toBe(runs);
      expect(fired.slice(0, -1).every(Boolean)).toBe(true);
      expect(fired.at(-1)).toBe(false);
    });
  }
});

describe('a stale folio slot on the error path (upstream as read)', () => {
  // 7 pages of 4 KiB folios, temp limit 32: pin_memfd_pages fills slots 0..3 (pages 0..3), then 0..2
  // (pages 4..6), so slot 3 still names page 3's folio, whose pins went to the domain with the second
  // batch. The third iommu_map fails: pfn_reader_release_pins unpins slots 2..3 (capacity, not the folios
  // of this pin), so page 3 loses the pin the domain holds, and the unwind's unmap unpins it again.
  it('the unwind unpins page 3 twice: a double unpin on upstream with the xarray mock (its iommu_map point)', () => {
    const { r } = run(
      [
        '{"op":"process","pid":1,"memlock":"unlimited"}',
        '{"op":"memfd","pid":1,"file":"mfd","length":28672}',
        '{"op":"open","ctx":"c","pid":1}',
        '{"op":"ioas_alloc","ioas":"A"}',
        '{"op":"temp_memory_limit","bytes":32}',
        '{"op":"domain_attach","domain":"D1","ioas":"A"}',
        '{"op":"fault","nth":3,"site":"iommu_map"}',
        '{"op":"map_file","ioas":"A","pid":1,"file":"mfd","start":0,"length":28672,"expect":"ENOENT"}',
      ],
      'upstream',
      [],
      ['mock-iommupt'],
    );
    expect(r.mismatches).toEqual([]);
    expect(r.violations.map((v) => `${v.kind} ${v.fn} line ${v.line}: ${v.detail}`)).toEqual([
      'double_unpin batch_unpin line 9: unpin of 1 page(s) at pfn 262150 that hold no pin',
    ]);
  });

  it('the same double unpin on upstream with the iommupt mock, whose map fails where it adds a table level', () => {
    // At IOVA 0x10fc000 page 4 is the first to reach the next 1 MiB: its map needs a new level-0 table, the
    // third page-table allocation of the map (after the level-1 and level-0 tables of page 0).
    const body = (site: string, expect: string) => [
      '{"op":"process","pid":1,"memlock":"unlimited"}',
      '{"op":"memfd","pid":1,"file":"mfd","length":28672}',
      '{"op":"open","ctx":"c","pid":1}',
      '{"op":"ioas_alloc","ioas":"A"}',
      '{"op":"temp_memory_limit","bytes":32}',
      '{"op":"domain_attach","domain":"D1","ioas":"A"}',
      `{"op":"fault","nth":3,"site":"${site}"}`,
      `{"op":"map_file","ioas":"A","pid":1,"file":"mfd","start":0,"length":28672,"iova":"0x10fc000","expect":"${expect}"}`,
    ];
    const { r } = run(body('iommu_pages', 'ENOMEM'));
    expect(r.mismatches).toEqual([]);
    expect(r.violations.map((v) => `${v.kind} ${v.fn} line ${v.line}: ${v.detail}`)).toEqual([
      'double_unpin batch_unpin line 9: unpin of 1 page(s) at pfn 262150 that hold no pin',
    ]);
    // The xarray mock's point no longer exists: the same fault on it lets the map through.
    const old = run(body('iommu_map', 'ok')).r;
    expect(old.mismatches).toEqual([]);
    expect(old.violations).toEqual([]);
  });
});
