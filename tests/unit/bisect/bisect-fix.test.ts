// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { bisectFix, fixSteps, searchFlips, variantAt } from '../../../src/bisect/bisect-fix.js';
import type { FixBisectReport } from '../../../src/bisect/bisect-fix.js';
import { renderBisectFix } from '../../../src/bisect/render.js';
import { ACCESS_DOMAIN_DESTORY, BAD_FREE, FIXTURES, trace, variant } from '../../support/bisect-traces.js';

function fix(path: string, good: string, bad: string, all = false): FixBisectReport {
  return bisectFix(trace(path), variant(good), variant(bad), { all });
}

const summary = (r: FixBisectReport): [string, number, number | null, string | null][] =>
  r.flips.map((f) => [f.flag, f.k, f.line, f.opName]);

describe('searchFlips', () => {
  const same = (x: string, y: string): boolean => x === y;
  const over =
    (outcomes: string): ((k: number) => string) =>
    (k) =>
      outcomes[k] as string;

  it('finds a single change in O(log F) outcomes', () => {
    const seen = new Set<number>();
    const at = (k: number): string => (seen.add(k), k < 11 ? 'A' : 'B');
    expect(searchFlips(26, at, same, false)).toEqual([11]);
    expect(seen.size).toBe(7);
  });

  it('finds each change of a stepwise outcome, and every change of one that comes back with all', () => {
    expect(searchFlips(6, over('AABBBCC'), same, false)).toEqual([2, 5]);
    // A -> B -> A -> C: bisection meets the first return only by luck; every step sees all three changes.
    expect(searchFlips(6, over('AABAAAC'), same, false)).toEqual([6]);
    expect(searchFlips(6, over('AABAAAC'), same, true)).toEqual([2, 3, 6]);
    expect(searchFlips(3, over('AAAA'), same, false)).toEqual([]);
    expect(searchFlips(0, over('A'), same, false)).toEqual([]);
  });
});

describe('fixSteps and variantAt', () => {
  it('walk the flags both sides differ on in upstream order, adding or removing', () => {
    const steps = fixSteps(variant('merged'), variant('upstream'));
    expect(steps.map((s) => s.flag.name).slice(0, 4)).toEqual([
      'gup-unshare-flags',
      'uptr-overflow-check',
      'unpin-domain-batch-last-index',
      'carry-store-order',
    ]);
    // The 20 post-merge flags of upstream (access-replace, ioas-map-file, ioas-change-process,
    // area-num-locks, vfio-unmap-empty-success and mock-iommupt included); the proposed flag is in neither.
    expect(steps).toHaveLength(20);
    expect(steps.map((s) => s.flag.name)).not.toContain('mm-mode-uncharge-dead-mm');
    expect(variantAt(variant('merged'), steps, 2).fixes.slice(-2)).toEqual([
      'gup-unshare-flags',
      'uptr-overflow-check',
    ]);
    const back = fixSteps(variant('upstream'), variant('upstream-carry-end-one'));
    expect(back.map((s) => [s.flag.name, s.action])).toEqual([['carry-end-one', 'remove']]);
  });
});

describe('bisectFix', () => {
  it('finds mmget-fail-no-kfree for bad-free.jsonl (v3 -> upstream) at the access_pin of line 33, in 7 replays', () => {
    const r = fix(BAD_FREE, 'upstream', 'v3');
    expect(summary(r)).toEqual([['mmget-fail-no-kfree', 1, 33, 'access_pin']]);
    const first = r.flips[0];
    expect(first?.commit).toBe('v4 posting (review of v3 07/15)');
    expect(first?.section).toBe('9a');
    expect(first?.change.findingsGone).toEqual([
      'violation bad_free pfn_reader_user_pin',
      'violation double_free iommufd_test_access_pages',
      'violation mmput_underflow pfn_reader_user_destroy',
    ]);
    expect(r.monotonic).toBe(true);
    // The two ends, then a binary search over the 30 flags of upstream down to the first one.
    expect(r.replays).toBe(7);
  });

  it('finds unpin-domain-batch-last-index, then carry-end-one, for access_domain_destory (merged -> upstream)', () => {
    const r = fix(ACCESS_DOMAIN_DESTORY, 'upstream', 'merged');
    expect(summary(r)).toEqual([
      ['unpin-domain-batch-last-index', 3, 61, 'domain_detach'],
      ['carry-end-one', 6, 61, 'domain_detach'],
    ]);
    expect(r.flips[0]?.commit).toBe('727c28c1cef2');
    expect(r.flips[0]?.change.findingsGone).toEqual([
      'warn __iopt_area_unfill_domain',
      'warn __iopt_area_unfill_domain',
      'warn batch_clear_carry',
      'warn batch_clear_carry',
    ]);
    expect(r.flips[1]?.commit).toBe('b7c822fa6b77');
    expect(r.monotonic).toBe(false);
    const lines = renderBisectFix(r, ACCESS_DOMAIN_DESTORY);
    expect(lines).toContain(
      'first flag that changes the outcome: unpin-domain-batch-last-index (727c28c1cef2), line 61',
    );
    expect(lines).toContain(
      'not monotonic: the outcome changes 2 times along the flag order (at least; --all replays every step):',
    );
  });

  it('finds the same two changes replaying every step, and none other (carry-store-order changes nothing here)', () => {
    const r = fix(ACCESS_DOMAIN_DESTORY, 'upstream', 'merged', true);
    expect(summary(r)).toEqual([
      ['unpin-domain-batch-last-index', 3, 61, 'domain_detach'],
      ['carry-end-one', 6, 61, 'domain_detach'],
    ]);
    expect(r.exhaustive).toBe(true);
    // variant_0 (merged) through variant_20 (upstream): 21 replays.
    expect(r.replays).toBe(21);
  });

  it('access-pin-short: fill-xarray-upages-bytes at the pin on line 14', () => {
    const r = fix(`${FIXTURES}/access-pin-short.jsonl`, 'upstream', 'v3');
    expect(summary(r)).toEqual([['fill-xarray-upages-bytes', 4, 14, 'access_pin']]);
    expect(r.flips[0]?.change.mismatchesGone).toEqual([
      'line 14 errno: expected ok, got EFAULT',
      'line 15 errno: expected ok, got ENOENT',
    ]);
  });

  it('map-no-prot: map-requires-prot (996dc53ac289) at the map on line 11', () => {
    const r = fix(`${FIXTURES}/map-no-prot.jsonl`, 'upstream', 'merged');
    expect(summary(r)).toEqual([['map-requires-prot', 11, 11, 'ioas_map']]);
    expect(r.flips[0]?.commit).toBe('996dc53ac289');
  });

  it('split-domains-itree: split-updates-domains-itree (e7250ab7ca49) at the vfio_unmap on line 13', () => {
    const r = fix(`${FIXTURES}/split-domains-itree.jsonl`, 'upstream', 'v3');
    expect(summary(r)).toEqual([['split-updates-domains-itree', 20, 13, 'vfio_unmap']]);
    expect(r.flips[0]?.commit).toBe('e7250ab7ca49');
    expect(r.flips[0]?.completesMerged).toBe(false);
  });

  it('unmap-all-empty: blames the last pre-merge flag and says the unflagged [merged] behaviour turns on with it', () => {
    const r = fix(`${FIXTURES}/unmap-all-empty.jsonl`, 'upstream', 'v3');
    expect(summary(r)).toEqual([['reader-destroy-locked-reset', 12, 12, 'ioas_unmap']]);
    expect(r.flips[0]?.completesMerged).toBe(true);
    expect(renderBisectFix(r, 'unmap-all-empty.jsonl')).toContain(
      '  this step also completes the pre-merge flags: the unflagged [merged] behaviour turns on with it and may be the cause',
    );
  });

  it('reports no flag when both ends have one outcome, and no step for one variant', () => {
    const r = fix(BAD_FREE, 'upstream', 'merged');
    expect(r.flips).toEqual([]);
    expect(r.monotonic).toBeNull();
    expect(r.replays).toBe(2);
    expect(fix(BAD_FREE, 'v3', 'v3').steps).toEqual([]);
  });

  it('describes the divergence at the flip when asked', () => {
    const r = bisectFix(trace(BAD_FREE), variant('upstream'), variant('v3'), { diff: true });
    expect(r.flips[0]?.divergence?.diff.lines).toEqual(['violations (count): 3 -> 0', 'mms 1 mm_users: -1 -> 0']);
  });
});

describe('bisectFix attribution: the flag that removes the defect, not the first that changes anything', () => {
  const attributed = (list: FixBisectReport['removed']): string[] =>
    list.map((r) => `${r.finding}#${r.occurrence} line ${r.line}: ${r.flag ?? '-'}`);

  it('held-carry: carry-end-one removes the first violation; reader-destroy-locked-reset only adds a WARN', () => {
    const r = fix(`${FIXTURES}/held-carry.jsonl`, 'upstream', 'v3');
    expect(r.answer).toMatchObject({
      flag: 'carry-end-one',
      commit: 'b7c822fa6b77',
      k: 18,
      removes: { finding: 'violation batch_out_of_bounds batch_unpin', occurrence: 0, line: 17, op: 10 },
      op: 10,
      line: 17,
      opName: 'domain_detach',
    });
    // The first change along the walk is still reported, as what it is.
    expect(r.flips[0]?.flag).toBe('reader-destroy-locked-reset');
    expect(attributed(r.removed)).toEqual([
      'violation batch_out_of_bounds batch_unpin#0 line 17: carry-end-one',
      'warn __iopt_area_unfill_domain#0 line 17: unpin-domain-batch-last-index',
      'violation invariant invariants#0 line 17: carry-end-one',
      'violation pin_leak invariants#0 line 17: carry-end-one',
      'violation invariant invariants#1 line 18: carry-end-one',
      'warn iopt_release_pages#0 line 20: carry-end-one',
      'violation accounting_mismatch invariants#0 line 20: carry-end-one',
      'violation accounting_mismatch invariants#1 line 20: carry-end-one',
      'violation pin_leak teardown#0 line 22: carry-end-one',
      'violation accounting_mismatch teardown#0 line 22: carry-end-one',
    ]);
    expect(attributed(r.introduced)).toEqual(['warn batch_clear_carry#0 line 17: reader-destroy-locked-reset']);
    const lines = renderBisectFix(r, `${FIXTURES}/held-carry.jsonl`);
    expect(lines[3]).toBe(
      "fixed by: carry-end-one (b7c822fa6b77, v6.5-rc4, spec 5): it removes the bad run's first violation, violation batch_out_of_bounds batch_unpin (line 17, op 10)",
    );
    // Replaying every step gives the same attribution.
    const all = fix(`${FIXTURES}/held-carry.jsonl`, 'upstream', 'v3', true);
    expect(all.answer?.flag).toBe('carry-end-one');
    expect(attributed(all.removed)).toEqual(attributed(r.removed));
  });

  it('wrapped-uptr: uptr-overflow-check removes the WARN of the wrapped pin', () => {
    const r = fix(`${FIXTURES}/wrapped-uptr.jsonl`, 'upstream', 'v3');
    expect([r.answer?.flag, r.answer?.k, r.answer?.line, r.answer?.opName]).toEqual([
      'uptr-overflow-check',
      14,
      10,
      'ioas_map',
    ]);
    expect(r.answer?.removes).toEqual({
      finding: 'warn pfn_reader_user_pin',
      occurrence: 0,
      violation: false,
      op: 7,
      line: 12,
    });
    expect(attributed(r.removed)).toEqual(['warn pfn_reader_user_pin#0 line 12: uptr-overflow-check']);
    expect(r.introduced).toEqual([]);
  });

  it('bad-free: mmget-fail-no-kfree removes the BAD_FREE, the first violation', () => {
    const r = fix(BAD_FREE, 'upstream', 'v3');
    expect([r.answer?.flag, r.answer?.removes.finding, r.answer?.removes.line]).toEqual([
      'mmget-fail-no-kfree',
      'violation bad_free pfn_reader_user_pin',
      33,
    ]);
  });
});
