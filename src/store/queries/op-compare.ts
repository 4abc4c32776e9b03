// SPDX-License-Identifier: GPL-2.0-only
/**
 * Two runs' op rows side by side, for run bisect (src/bisect/bisect-runs.ts): the ops of run A joined with
 * the same ops (by index) of run B, compared inside the database. Ops are far fewer than events, and the
 * stretches query returns one row per stretch of differing ops, so a bisect of long runs reads little.
 */
import { InternalError } from '../../lib/errors.js';
import type { QueryContext, StoreQuery } from './context.js';

/** The ops of run A joined with the same ops of run B, over [from, to). */
function joined({ db }: QueryContext, runA: number, runB: number, from: number, to: number) {
  return db
    .selectFrom('ops as a')
    .innerJoin('ops as b', (join) => join.onRef('b.idx', '=', 'a.idx').on('b.run', '=', runB))
    .where('a.run', '=', runA)
    .where('a.idx', '>=', from)
    .where('a.idx', '<', to);
}

/**
 * Stretches [first, last] of ops in [from, to) whose stored rows differ (digest, errno or result), as
 * gaps-and-islands inside the database: only one row per stretch comes back.
 */
export function differingStretchesQuery(
  runA: number,
  runB: number,
  from: number,
  to: number,
): StoreQuery<[number, number][]> {
  return async (ctx) => {
    const differing = joined(ctx, runA, runB, from, to)
      .where((eb) =>
        eb.or([
          eb('a.digest', '<>', eb.ref('b.digest')),
          eb('a.errno', 'is distinct from', eb.ref('b.errno')),
          eb('a.result', '<>', eb.ref('b.result')),
        ]),
      )
      .select((eb) => [
        'a.idx as idx',
        eb(
          'a.idx',
          '-',
          eb.fn.agg<number>('row_number').over((ob) => ob.orderBy('a.idx')),
        ).as('island'),
      ]);
    const rows = await ctx.db
      .selectFrom(differing.as('d'))
      .select((eb) => [eb.fn.min('d.idx').as('first'), eb.fn.max('d.idx').as('last')])
      .groupBy('d.island')
      .orderBy('first')
      .execute();
    return rows.map((r) => {
      const first = Number(r.first);
      const last = Number(r.last);
      if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last)) {
        throw new InternalError(`ops of runs ${runA} and ${runB}: a stretch bound is not an integer`);
      }
      return [first, last];
    });
  };
}

/** One op index of both runs: the two stored digests, and whether errno or result differ. */
export interface OpPairRow {
  idx: number;
  digestA: string;
  digestB: string;
  /** errno or result differ. */
  otherDiffers: boolean;
}

/** Up to `limit` op pairs of [from, to), by index. */
export function opPairsQuery(
  runA: number,
  runB: number,
  from: number,
  to: number,
  limit: number,
): StoreQuery<OpPairRow[]> {
  return async (ctx) => {
    const rows = await joined(ctx, runA, runB, from, to)
      .select((eb) => [
        'a.idx as idx',
        'a.digest as da',
        'b.digest as db',
        eb
          .or([eb('a.errno', 'is distinct from', eb.ref('b.errno')), eb('a.result', '<>', eb.ref('b.result'))])
          .as('other'),
      ])
      .orderBy('a.idx')
      .limit(limit)
      .execute();
    return rows.map((r) => {
      if (typeof r.idx !== 'number' || typeof r.da !== 'string' || typeof r.db !== 'string') {
        throw new InternalError(
          `ops rows of runs ${runA} and ${runB} at op ${String(r.idx)} have a column of the wrong type`,
        );
      }
      // `other` is SQL's boolean: 0 or 1 in SQLite, a boolean elsewhere.
      return { idx: r.idx, digestA: r.da, digestB: r.db, otherDiffers: Boolean(r.other) };
    });
  };
}
