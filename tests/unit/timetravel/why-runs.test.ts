// SPDX-License-Identifier: GPL-2.0-only
/**
 * why --pfn over a version 4 trace: a frame allocated in a run list, a huge page's COW in one event, and a
 * frame's pins, IOMMU mapping and unpins in run lists.
 */
import { describe, expect, it } from 'vitest';
import type { Event } from '../../../src/events/events.js';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { replay } from '../../../src/replay/replayer.js';
import { MemorySource } from '../../../src/timetravel/source.js';
import { why } from '../../../src/timetravel/why.js';

function source(lines: readonly string[]): MemorySource {
  const events: Event[] = [];
  const ops: number[] = [];
  replay(parseTraceText(`${['{"format":"ioptrace-trace","version":4}', ...lines].join('\n')}\n`), {
    variant: 'upstream',
    fixes: resolveVariant('upstream').fixes,
    sink: {
      accept: (event, _seq, op) => {
        events.push(event);
        ops.push(op);
      },
    },
  });
  return MemorySource.fromEvents(events, ops, { snapshotEvery: 0 });
}

describe('why --pfn in version 4', () => {
  it('finds the run of a scattered frame and the page of a huge copy on write', async () => {
    const run = source([
      '{"op":"process","pid":"p"}',
      '{"op":"process","pid":"q"}',
      '{"op":"mmap","pid":"p","addr":"0x100000","length":12288}',
      '{"op":"mmap","pid":"p","addr":"0x40000000","length":2097152,"huge":"2M","pfns":[[512,512]]}',
      '{"op":"mmap","pid":"q","addr":"0x40000000","length":2097152,"huge":"2M","pfns":[[512,512]]}',
      '{"op":"write","pid":"p","addr":"0x40003000","data":"aa"}',
    ]);
    const texts = async (pfn: number): Promise<string[]> => (await why(run, { pfn })).map((w) => w.text);
    expect(await texts(0x40002)).toEqual([
      'allocated as part of pfn 0x40002 (4K)',
      'mapped at vpn 0x101 of mm 1 (rw 4K)',
    ]);
    expect(await texts(0x203)).toEqual([
      'allocated as part of pfn 0x200..0x3ff (2M)',
      'mapped at vpn 0x40003 of mm 1 (rw 2M)',
      'mapped at vpn 0x40003 of mm 2 (rw 2M)',
      'copied on write away from vpn 0x40003 of mm 1 (now pfn 0x40203) in do_wp_page',
    ]);
  });

  it('follows a scattered frame through the pin, IOMMU map and unpin lists', async () => {
    const run = source([
      '{"op":"process","pid":"p","memlock":"unlimited"}',
      '{"op":"mmap","pid":"p","addr":"0x100000","length":12288}',
      '{"op":"open","ctx":"c","pid":"p"}',
      '{"op":"ioas_alloc","ioas":"A"}',
      '{"op":"domain_attach","domain":"d","ioas":"A"}',
      '{"op":"ioas_map","ioas":"A","pid":"p","uptr":"0x100000","length":12288,"iova":"0x1000000"}',
      '{"op":"ioas_unmap","ioas":"A","all":true}',
    ]);
    const texts = (await why(run, { pfn: 0x40002 })).map((w) => [w.type, w.text]);
    expect(texts).toEqual([
      ['FrameRunsAllocated', 'allocated as part of pfn 0x40002 (4K)'],
      ['VmaMapped', 'mapped at vpn 0x101 of mm 1 (rw 4K)'],
      ['PagesPinnedRuns', 'pinned in pfn 0x40002 by pin_user_pages_fast (mm 1)'],
      [
        'IommuMappedRuns',
        'mapped in domain d at iova 0x1001000 (iova 0x1001000 + 0x1000 -> paddr 0x40002000) by batch_to_domain',
      ],
      ['IommuUnmapped', 'unmapped from domain d (iova 0x1000000 + 0x3000) by iopt_area_unmap_domain_range'],
      ['PagesUnpinnedRuns', 'unpinned in pfn 0x40002 dirty by batch_unpin'],
    ]);
  });
});
