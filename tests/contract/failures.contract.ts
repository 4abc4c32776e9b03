// SPDX-License-Identifier: GPL-2.0-only
/**
 * The failure queries of a fuzzing farm (src/store/queries/failures.ts) on a backend: a failure is claimed
 * once per (variant, kind, fn), whatever claims it later; a trace is counted once per (seed, op budget);
 * the runs are attached once. A backend joins with one line, `failuresContract('PostgreSQL', factory)`;
 * concurrent processes are tested end to end (tests/e2e/fuzz-farm.test.ts).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  attachFailureRunsQuery,
  claimFailureQuery,
  farmFailuresQuery,
  openClaimsQuery,
  recordHitQuery,
  renewClaimQuery,
  takeOverClaimQuery,
  type Store,
} from '../../src/store/index.js';
import type { StoreFactory } from './store.contract.js';

const BAD_FREE = { variant: 'v3', kind: 'bad_free', fn: 'pfn_reader_user_pin' };
const WARN = { variant: 'v3', kind: 'warn', fn: 'iopt_release_pages' };
const ME = { claimant: 'here/10/aa', leaseUntil: 5000 };
const OTHER = { claimant: 'there/20/bb', leaseUntil: 7000 };

export function failuresContract(backend: string, factory: StoreFactory): void {
  describe(`the fuzz farm's failure queries on ${backend}`, () => {
    let store: Store;
    let dispose: () => Promise<void>;

    beforeEach(async () => {
      ({ store, dispose } = await factory());
    });

    afterEach(async () => {
      await dispose();
    });

    it('claims a failure once, counts distinct traces, attaches runs once', async () => {
      expect(await store.query(farmFailuresQuery())).toEqual([]);
      const claim = { ...BAD_FREE, seed: 17, ops: 40, op: 9, detail: 'kfree of a pages still in use' };
      expect(await store.query(claimFailureQuery(claim, ME))).toBe(true);
      // A later claim, from any worker, changes nothing: the first finder's seed and detail stay.
      expect(await store.query(claimFailureQuery({ ...claim, seed: 3, detail: 'other' }, OTHER))).toBe(false);
      expect(await store.query(claimFailureQuery({ ...claim, variant: 'merged', seed: 0xffff_fffe }, OTHER))).toBe(
        true,
      );
      expect(
        await store.query(claimFailureQuery({ ...WARN, seed: 5, ops: 40, op: 41, detail: 'at teardown' }, ME)),
      ).toBe(true);
      const hits = [
        [BAD_FREE, 17, 40],
        [BAD_FREE, 17, 40],
        [BAD_FREE, 18, 40],
        [BAD_FREE, 17, 20],
        [WARN, 5, 40],
      ] as const;
      const added = [];
      for (const [key, seed, ops] of hits) added.push(await store.query(recordHitQuery({ ...key, seed, ops })));
      expect(added).toEqual([true, false, true, true, true]);

      // Only the holder attaches, once.
      const runs = { traceRun: 4, reproducerRun: 5, reproducerOps: 7 };
      expect(await store.query(attachFailureRunsQuery(BAD_FREE, OTHER.claimant, runs))).toBe(false);
      expect(await store.query(attachFailureRunsQuery(BAD_FREE, ME.claimant, runs))).toBe(true);
      expect(
        await store.query(
          attachFailureRunsQuery(BAD_FREE, ME.claimant, { traceRun: 8, reproducerRun: 9, reproducerOps: 1 }),
        ),
      ).toBe(false);
      expect(await store.query(farmFailuresQuery())).toEqual([
        {
          ...BAD_FREE,
          variant: 'merged',
          seed: 0xffff_fffe,
          ops: 40,
          op: 9,
          detail: 'kfree of a pages still in use',
          count: 0,
          traceRun: null,
          reproducerRun: null,
          reproducerOps: null,
        },
        { ...claim, count: 3, traceRun: 4, reproducerRun: 5, reproducerOps: 7 },
        {
          ...WARN,
          seed: 5,
          ops: 40,
          op: 41,
          detail: 'at teardown',
          count: 1,
          traceRun: null,
          reproducerRun: null,
          reproducerOps: null,
        },
      ]);
      expect((await store.query(farmFailuresQuery('merged'))).map((f) => f.variant)).toEqual(['merged']);
    });

    it('hands a claim with no runs over once, to whoever names its current holder; the holder renews it', async () => {
      const claim = { ...BAD_FREE, seed: 17, ops: 40, op: 9, detail: 'kfree of a pages still in use' };
      expect(await store.query(claimFailureQuery(claim, ME))).toBe(true);
      expect(await store.query(claimFailureQuery({ ...WARN, seed: 5, ops: 40, op: 41, detail: 'd' }, OTHER))).toBe(
        true,
      );
      expect(await store.query(openClaimsQuery('v3'))).toEqual([
        { ...claim, ...ME },
        { ...WARN, seed: 5, ops: 40, op: 41, detail: 'd', ...OTHER },
      ]);
      expect(await store.query(openClaimsQuery('merged'))).toEqual([]);
      // Renewing is the holder's alone.
      expect(await store.query(renewClaimQuery(BAD_FREE, { ...OTHER, leaseUntil: 9000 }))).toBe(false);
      expect(await store.query(renewClaimQuery(BAD_FREE, { ...ME, leaseUntil: 6000 }))).toBe(true);
      // Two workers saw ME holding it: the first compare-and-set wins, the second finds another holder.
      const third = { claimant: 'third/30/cc', leaseUntil: 8000 };
      expect(await store.query(takeOverClaimQuery(BAD_FREE, ME.claimant, OTHER))).toBe(true);
      expect(await store.query(takeOverClaimQuery(BAD_FREE, ME.claimant, third))).toBe(false);
      expect(await store.query(renewClaimQuery(BAD_FREE, { ...ME, leaseUntil: 9000 }))).toBe(false);
      expect(
        await store.query(
          attachFailureRunsQuery(BAD_FREE, ME.claimant, { traceRun: 1, reproducerRun: null, reproducerOps: null }),
        ),
      ).toBe(false);
      expect(
        await store.query(
          attachFailureRunsQuery(BAD_FREE, OTHER.claimant, { traceRun: 2, reproducerRun: 3, reproducerOps: 4 }),
        ),
      ).toBe(true);
      // A claim with runs is done: nobody takes it over.
      expect(await store.query(takeOverClaimQuery(BAD_FREE, OTHER.claimant, third))).toBe(false);
      expect(await store.query(openClaimsQuery('v3'))).toEqual([
        { ...WARN, seed: 5, ops: 40, op: 41, detail: 'd', ...OTHER },
      ]);
      expect((await store.query(farmFailuresQuery('v3'))).map((f) => [f.kind, f.traceRun, f.reproducerRun])).toEqual([
        ['bad_free', 2, 3],
        ['warn', null, null],
      ]);
    });
  });
}
