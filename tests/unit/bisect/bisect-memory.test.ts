// SPDX-License-Identifier: GPL-2.0-only
/**
 * Run bisect of two variants in memory: the answers the issue asks for (bad-free.jsonl, access_domain_destory)
 * and those of the reproducers in tests/fixtures/bisect/, written for these tests.
 */
import { describe, expect, it } from 'vitest';
import { bisectInMemory } from '../../../src/bisect/memory.js';
import type { Divergence } from '../../../src/bisect/divergence.js';
import { renderDifference } from '../../../src/state/diff.js';
import { ACCESS_DOMAIN_DESTORY, BAD_FREE, FIXTURES, trace, variant } from '../../support/bisect-traces.js';

function divergence(path: string, a: string, b: string, strict = false): Divergence {
  const r = bisectInMemory(trace(path), variant(a), variant(b), { derived: !strict });
  if (r.divergence === null) throw new Error(`${path}: ${a} and ${b} do not diverge`);
  return r.divergence;
}

describe('bisect of bad-free.jsonl, v3 against merged', () => {
  const d = divergence(BAD_FREE, 'v3', 'merged');

  it('diverges at the access_pin op on line 33, both sides failing with EFAULT', () => {
    expect([d.op, d.line, d.name]).toEqual([8, 33, 'access_pin']);
    expect(d.differs).toEqual(['state']);
    expect([d.a.errno, d.b.errno]).toEqual(['EFAULT', 'EFAULT']);
    expect([d.a.events, d.b.events]).toEqual([10, 6]);
  });

  it('names the mm counter in the state diff and the heap allocation freed by pfn_reader_user_pin', () => {
    expect(d.diff.lines).toEqual(['violations (count): 3 -> 0', 'mms 1 mm_users: -1 -> 0']);
    expect(d.diff.named.mms).toEqual([1]);
    expect(d.diff.named.counters).toEqual(['mms 1 mm_users', 'violations (count)']);
    expect(d.diff.named.allocations).toEqual([4, 5]);
    expect(d.diff.onlyA).toContain('HeapFreed alloc 4 fn pfn_reader_user_pin');
    expect(d.diff.onlyA).toContain('MmPut mm 1 fn pfn_reader_user_destroy');
    expect(d.diff.onlyB).toEqual([
      'HeapAllocated alloc 5 size 0x38 owner iommufd tag iopt_pages_access fn iopt_area_add_access',
      'HeapFreed alloc 5 fn iopt_area_add_access',
      'HeapFreed alloc 4 fn iommufd_test_access_pages',
    ]);
  });

  it('shows the derived IOVA alignment, which differs since access_create, without counting it', () => {
    expect(d.diff.uncounted.map(renderDifference)).toEqual(['ioases A iova_alignment: 0x1 -> 0x1000']);
  });

  it('with --strict, diverges already at the access_create on line 24 (the [merged] access alignment)', () => {
    const s = divergence(BAD_FREE, 'v3', 'merged', true);
    expect([s.op, s.line, s.name]).toEqual([6, 24, 'access_create']);
    expect(s.diff.lines).toEqual(['ioases A iova_alignment: 0x1 -> 0x1000']);
  });

  it('diverges at the same op between v3 and v3 with only mmget-fail-no-kfree', () => {
    const r = bisectInMemory(trace(BAD_FREE), variant('v3'), variant('v3', ['mmget-fail-no-kfree']));
    expect(r.divergence?.line).toBe(33);
    expect(r.scan.ranges).toEqual([[8, 11]]);
  });
});

describe('bisect of iommufd_ioas.access_domain_destory', () => {
  it('merged against upstream: diverges at the first mock domain, an iommupt page table only on upstream', () => {
    const d = divergence(ACCESS_DOMAIN_DESTORY, 'merged', 'upstream');
    expect([d.op, d.line, d.name]).toEqual([18, 55, 'domain_attach']);
    const sizes = Array.from({ length: 27 }, (_, i) => `0x${(1n << BigInt(11 + i)).toString(16)}`).join(', ');
    expect(d.diff.lines).toEqual([
      'domains mock_domain.D1 table levels: (none) -> {}',
      `domains mock_domain.D1 pgsize_bitmap: [0x800] -> [${sizes}]`,
    ]);
  });

  it('merged against upstream with the xarray mock: diverges at the first domain_detach (line 61), where PFNs 0x40a02..0x40bff stay pinned', () => {
    const d = divergence(ACCESS_DOMAIN_DESTORY, 'merged', 'upstream-mock-iommupt');
    expect([d.op, d.line, d.name]).toEqual([23, 61, 'domain_detach']);
    expect(d.diff.named.pfns).toEqual([[0x40a02, 0x40bff]]);
    expect(d.diff.lines).toEqual([
      'violations (count): 4 -> 0',
      'WARNs (count): 2 -> 0',
      'mms 1 pinned_vm: 511 -> 1',
      'users 1000 locked_vm: 511 -> 1',
      'frames pfn 0x40a02..0x40bff dirty: no -> yes',
      'frames pfn 0x40a02..0x40bff pins: 1 -> 0',
      'pages 9 last_npinned: 511 -> 1',
      'pages 9 npinned: 511 -> 1',
    ]);
    expect(d.diff.onlyB).toContain('PagesUnpinned pfn 0x40a02 count 510 dirty true fn batch_unpin');
  });

  it('v3 against upstream: diverges earlier, at the no_domain access_pin of line 42 that v3 fails (WARN, -EFAULT)', () => {
    const d = divergence(ACCESS_DOMAIN_DESTORY, 'v3', 'upstream');
    expect([d.op, d.line, d.name]).toEqual([9, 42, 'access_pin']);
    expect(d.differs).toEqual(['state', 'errno', 'result']);
    expect([d.a.errno, d.b.errno]).toEqual(['EFAULT', null]);
    expect(d.diff.onlyA).toContain('Warned fn pfn_reader_user_pin condition !rc objects {pages:2,start:1,npages:0}');
    expect(d.diff.named.pfns).toEqual([[0x40201, 0x40201]]);
  });
});

describe('bisect of the reproducers', () => {
  it('access-pin-short: v3 fails the 2-page pin on line 14 that merged does', () => {
    const d = divergence(`${FIXTURES}/access-pin-short.jsonl`, 'v3', 'merged');
    expect([d.op, d.line, d.name, d.a.errno, d.b.errno]).toEqual([7, 14, 'access_pin', 'EFAULT', null]);
  });

  it('unmap-all-empty: the runs differ only in the result of the unmap on line 12, not in state', () => {
    const r = bisectInMemory(trace(`${FIXTURES}/unmap-all-empty.jsonl`), variant('v3'), variant('merged'));
    const d = r.divergence as Divergence;
    expect([d.op, d.line, d.differs, d.a.errno, d.b.errno]).toEqual([5, 12, ['errno', 'result'], 'ENOENT', null]);
    expect(d.diff.state).toEqual([]);
    expect(r.scan.ranges).toEqual([[5, 6]]);
  });

  it('split-domains-itree: without split-updates-domains-itree the vfio_unmap on line 13 leaves the freed node 5', () => {
    const d = divergence(`${FIXTURES}/split-domains-itree.jsonl`, 'upstream-split-updates-domains-itree', 'upstream');
    expect([d.op, d.line, d.name]).toEqual([7, 13, 'vfio_unmap']);
    expect(d.diff.lines).toContain('pages 4 domains_itree node 5: {start 0, last 3} -> (none)');
    expect(d.diff.lines).toContain('frames pfn 0x40002 pins: 1 -> 0');
    expect(d.diff.named.areas).toEqual([13, 14, 15]);
  });

  it('map-no-prot: upstream refuses the map without prot on line 11', () => {
    const d = divergence(`${FIXTURES}/map-no-prot.jsonl`, 'merged', 'upstream');
    expect([d.op, d.line, d.name, d.a.errno, d.b.errno]).toEqual([6, 11, 'ioas_map', null, 'EINVAL']);
  });

  it('finds no divergence between a variant and itself', () => {
    const r = bisectInMemory(trace(BAD_FREE), variant('upstream'), variant('upstream'));
    expect(r.divergence).toBeNull();
    expect(r.scan.compared).toBe(12);
  });
});
