import { describe, expect, it } from 'vitest';
import { why } from '../../../src/timetravel/why.js';
import type { EventType } from '../../../src/events/events.js';
import type { EventSource } from '../../../src/timetravel/source.js';
import { BadInputError } from '../../../src/lib/errors.js';
import { scriptedRun, pfnOf, ids } from '../../support/recorded-runs.js';

const run = scriptedRun({ snapshotEvery: 16 });
const brief = (entries: Awaited<ReturnType<typeof why>>): [number, number, string][] =>
  entries.map((w) => [w.seq, w.op, w.type]);

describe('why --pfn', () => {
  it('lists who allocated, mapped, pinned, stored, mapped for DMA, reported, unmapped, erased and unpinned PFN 0x40045', async () => {
    const entries = await why(run.source, { pfn: pfnOf(1) + 5 });
    expect(brief(entries)).toEqual([
      [6, 1, 'FramesAllocated'],
      [7, 1, 'VmaMapped'],
      [36, 4, 'PagesPinned'],
      [39, 4, 'XaStored'],
      [40, 4, 'IommuMapped'],
      [202, 16, 'ViolationDetected'],
      [218, 18, 'IommuUnmapped'],
      [220, 18, 'XaErased'],
      [221, 18, 'PagesUnpinned'],
    ]);
    expect(entries.map((w) => w.text)).toEqual([
      'allocated as part of pfn 0x40000..0x403ff (4K)',
      'mapped at vpn 0x145 of mm 1 (rw 4K)',
      'pinned in pfn 0x40040..0x4007f by pin_user_pages_remote (mm 1)',
      'stored at index 5 of pages 104 (index 0..63 <- pfn 0x40040..0x4007f)',
      'mapped in domain d1 at iova 0x1045000 (iova 0x1040000 + 0x40000 -> paddr 0x40040000) by iommu_map',
      'violation pin_leak in batch_from_xarray_clear: lost',
      'unmapped from domain d1 (iova 0x1040000 + 0x40000) by iommu_unmap',
      'erased from index 5 of pages 104 (index 0..63)',
      'unpinned in pfn 0x40040..0x4007f dirty by unpin_user_pages',
    ]);
  });

  it('follows a copy on write from the old page to the new one', async () => {
    expect(brief(await why(run.source, { pfn: 0x403ff }))).toEqual([
      [6, 1, 'FramesAllocated'],
      [7, 1, 'VmaMapped'],
      [197, 15, 'CowBroken'],
    ]);
    const fresh = await why(run.source, { pfn: 0x40400 });
    expect(brief(fresh)).toEqual([
      [196, 15, 'FramesAllocated'],
      [197, 15, 'CowBroken'],
      [198, 15, 'MemoryWritten'],
    ]);
    expect(fresh[1]?.text).toBe('copy on write of pfn 0x403ff at vpn 0x4ff of mm 1 in wp_page_copy');
  });

  it('finds nothing for a PFN the run never touched', async () => {
    expect(await why(run.source, { pfn: 0x90000 })).toEqual([]);
  });

  it('limits the answer to a seq range', async () => {
    expect(brief(await why(run.source, { pfn: pfnOf(1) + 5 }, { first: 37, last: 218 })).map(([seq]) => seq)).toEqual([
      39, 40, 202, 218,
    ]);
  });

  it('reads only the event types that can touch a page', async () => {
    const asked: (readonly EventType[] | undefined)[] = [];
    const spy: EventSource = {
      ...run.source,
      eventCount: () => run.source.eventCount(),
      snapshotAtOrBefore: (seq) => run.source.snapshotAtOrBefore(seq),
      snapshotSeqs: () => run.source.snapshotSeqs(),
      opCount: () => run.source.opCount(),
      ops: (a, b) => run.source.ops(a, b),
      eventChunks: (first, last) => run.source.eventChunks(first, last),
      replayChunks: (first, last) => run.source.replayChunks(first, last),
      events: (first, last, types) => {
        asked.push(types);
        return run.source.events(first, last, types);
      },
    };
    await why(spy, { pfn: 0x40000 });
    expect(asked).toHaveLength(1);
    expect(asked[0]).not.toContain('OpStarted');
    expect(asked[0]).not.toContain('NpinnedChanged');
  });
});

describe('why --index', () => {
  it('lists the life of index 5 of pages 104: its pages, area, xarray entry, domain mapping, tree, findings and the pins of its PFN', async () => {
    const entries = await why(run.source, { pages: ids(1).pages, index: 5 });
    expect(brief(entries)).toEqual([
      [32, 4, 'PagesAllocated'],
      [34, 4, 'AreaPagesSet'],
      [36, 4, 'PagesPinned'],
      [39, 4, 'XaStored'],
      [40, 4, 'IommuMapped'],
      [42, 4, 'ItreeInserted'],
      [202, 16, 'ViolationDetected'],
      [218, 18, 'IommuUnmapped'],
      [219, 18, 'ItreeRemoved'],
      [220, 18, 'XaErased'],
      [221, 18, 'PagesUnpinned'],
      [226, 18, 'AreaFreed'],
      [227, 18, 'PagesReleased'],
    ]);
    expect(entries.map((w) => w.text)).toEqual([
      'pages 104 allocated: 64 pages at uptr 0x140000 by iopt_alloc_pages',
      'area 105 of i1 uses pages 104: index 5 at iova 0x1045000..0x1045fff',
      'pfn 0x40045 pinned in pfn 0x40040..0x4007f by pin_user_pages_remote',
      'xa stored pfn 0x40045 (index 0..63 <- pfn 0x40040..0x4007f)',
      'mapped in domain d1 through area 105: iova 0x1045000 -> pfn 0x40045 by iommu_map',
      'inserted into domains_itree: node 105 index 0..63',
      'violation pin_leak in batch_from_xarray_clear: lost',
      'unmapped from domain d1 through area 105: iova 0x1045000 by iommu_unmap',
      'removed from domains_itree: node 105 index 0..63',
      'xa erased (index 0..63)',
      'pfn 0x40045 unpinned dirty in pfn 0x40040..0x4007f by unpin_user_pages',
      'area 105 of i1 freed',
      'pages 104 released by iopt_release_pages',
    ]);
  });

  it('includes a WARN that names the index and leaves out one that names another', async () => {
    expect(
      (await why(run.source, { pages: ids(1).pages, index: 3 })).filter((w) => w.type === 'Warned').map((w) => w.seq),
    ).toEqual([201]);
    expect((await why(run.source, { pages: ids(1).pages, index: 4 })).filter((w) => w.type === 'Warned')).toEqual([]);
  });

  it('refuses a negative index', async () => {
    await expect(why(run.source, { pages: 1, index: -1 })).rejects.toThrow(BadInputError);
  });
});
