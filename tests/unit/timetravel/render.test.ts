import { describe, expect, it } from 'vitest';
import { renderState } from '../../../src/timetravel/render.js';
import { initialState } from '../../../src/state/state.js';
import { digestHex } from '../../../src/lib/digest.js';
import type { State } from '../../../src/state/state.js';
import { scriptedRun } from '../../support/recorded-runs.js';

describe('renderState', () => {
  it('lays out the initial state', () => {
    expect(renderState(initialState())).toEqual([
      `digest ${digestHex(initialState().digest)}  ops done 0  next id 1  next pfn 0x40000`,
      'config: variant upstream, fixes [], page size 4096, test build yes, temp memory limit 65536, gup zero on overflow yes',
      'counters: warns 0, violations 0',
      'fault: none',
      'processes (0)',
      'mms (0)',
      'users (0)',
      'frames (0 runs, 0 pages)',
      'heap (0 allocations, 0 bytes)',
      'ctxs (0)',
      'ioases (0)',
      'pages (0)',
      'accesses (0)',
      'domains (0)',
      'page data (0 pages written)',
    ]);
  });

  it('shows processes, runs, IOAS areas, pages with xarray runs and trees, domains and page data', () => {
    const run = scriptedRun({ snapshotEvery: 0, maps: 2, unmaps: 1 });
    const lines = renderState(run.live[run.live.length - 1] as State);
    expect(lines.slice(1)).toEqual([
      'config: variant v3, fixes [], page size 4096, test build yes, temp memory limit 65536, gup zero on overflow yes',
      'counters: warns 1, violations 1',
      'fault: none',
      'processes (1)',
      '  p1: mm 1, uid 1000, memlock unlimited, cap_ipc_lock no',
      'mms (1)',
      '  mm 1: pid p1, users 1, count 1, locked_vm 0, pinned_vm 0',
      '    vma vpn 0x100..0x4ff rw 4K',
      '    pt vpn 0x100..0x4fe -> pfn 0x40000..0x403fe',
      '    pt vpn 0x4ff -> pfn 0x40400',
      'users (1)',
      '  uid 1000: locked_vm 64',
      'frames (4 runs, 1024 pages)',
      '  pfn 0x40000..0x4003f: pins 0, maps 1, 4K, dirty',
      '  pfn 0x40040..0x4007f: pins 1, maps 1, 4K, clean',
      '  pfn 0x40080..0x403fe: pins 0, maps 1, 4K, clean',
      '  pfn 0x40400: pins 0, maps 1, 4K, clean',
      'heap (1 allocations, 192 bytes)',
      '  #106: 192 bytes, iommufd, iopt_area, by iopt_area_alloc',
      'ctxs (1)',
      '  c1: pid p1, account user',
      'ioases (1)',
      '  i1: ctx c1, iova alignment 0x1, large pages yes, domains [d1], accesses []',
      '    area 105: iova 0x1040000..0x107ffff, pages 104 index 0..63, offset 0, rw, storage d1, accesses 0',
      'pages (1)',
      '  pages 104: npages 64, npinned 64, last_npinned 64, refs 1, uptr 0x140000, rw, account user, source p1 mm 1 uid 1000',
      '    xa index 0..63 -> pfn 0x40040..0x4007f',
      '    domains_itree node 105: index 0..63',
      'accesses (0)',
      'domains (1)',
      '  d1: mock, pgsizes [0x1000], aperture 0x0..0xffffffffffff, mapped 0x40000 bytes in 1 pieces',
      '    iova 0x1040000..0x107ffff -> paddr 0x40040000, pgsize 0x1000, rw, extent 107 head tail',
      'page data (1 pages written)',
      '  pfn 0x40400: 4096 bytes',
    ]);
  });

  it('caps every list at maxItems and says how many were left out', () => {
    const run = scriptedRun({ snapshotEvery: 0, maps: 2, unmaps: 1 });
    const lines = renderState(run.live[run.live.length - 1] as State, { maxItems: 1 });
    expect(lines.filter((l) => l.includes('more'))).toEqual(['    ... 1 more', '  ... 3 more']);
  });
});
