// SPDX-License-Identifier: GPL-2.0-only
/**
 * The failures a fuzzing farm found (tables of migration 0003): claimed, counted and listed by many
 * processes at once, written once here with kysely's builder, so the same statements run on every backend.
 *
 * Every write is one statement that the database makes atomic: a claim is INSERT ... ON CONFLICT DO
 * NOTHING on the primary key (variant, kind, fn), and the worker whose insert landed is the one that
 * claimed the failure; a hit is the same on (variant, kind, fn, seed, ops); the runs are set with an
 * UPDATE that only touches a row whose trace_run is still null. No worker reads to decide what to write, so
 * there is no check-then-insert race to lose; SQLite serialises the writers (each waits for the write lock
 * within the store's busy timeout), PostgreSQL's unique index does the same across machines.
 *
 * A claim names its holder and a lease end (migration 0004). A claim whose runs never came (its holder was
 * killed) is taken over with one UPDATE that sets a new holder only where the old one still holds it and no
 * runs are attached: a compare-and-set, so of many workers that saw the same abandoned claim one wins. Only
 * the holder renews its lease and attaches runs. When a claim counts as abandoned is the farm's call
 * (src/fuzz/claims.ts); these statements only make each step atomic.
 */

import type { StoreQuery } from './context.js';

/** The identity of a farm's failure: the variant label and, as `ioptrace fuzz` counts them, kind and function. */
export interface FailureIdentity {
  variant: string;
  kind: string;
  fn: string;
}

/** A failure as its first finder claims it. */
export interface FailureClaim extends FailureIdentity {
  seed: number;
  /** The op budget the trace was generated with: seed and ops regenerate it. */
  ops: number;
  /** Where it showed in that trace, and what it said. */
  op: number;
  detail: string;
}

/** One generated trace that showed a failure. */
export interface FailureHit extends FailureIdentity {
  seed: number;
  ops: number;
}

/** Who holds a claim (host/pid/token, see src/fuzz/claims.ts) and until when, in ms since the epoch. */
export interface ClaimHolder {
  claimant: string;
  leaseUntil: number;
}

/** A claimed failure with no runs attached yet, and who holds it (null on rows claimed before 0004). */
export interface OpenClaim extends FailureClaim {
  claimant: string | null;
  leaseUntil: number | null;
}

/** A failure as `runs --failures` lists it. */
export interface FarmFailure extends FailureClaim {
  /** Distinct traces (seed, op budget) that showed it, the first finder's included. */
  count: number;
  traceRun: number | null;
  reproducerRun: number | null;
  reproducerOps: number | null;
}

/** Inserts the failure, held by `holder`, unless a row with its identity exists; true when this call inserted it. */
export function claimFailureQuery(claim: FailureClaim, holder: ClaimHolder): StoreQuery<boolean> {
  return async ({ db }) => {
    const result = await db
      .insertInto('fuzz_failures')
      .values({
        variant: claim.variant,
        kind: claim.kind,
        fn: claim.fn,
        seed: claim.seed,
        ops: claim.ops,
        op: claim.op,
        detail: claim.detail,
        trace_run: null,
        reproducer_run: null,
        reproducer_ops: null,
        claimant: holder.claimant,
        lease_until: holder.leaseUntil,
      })
      .onConflict((oc) => oc.columns(['variant', 'kind', 'fn']).doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
  };
}

/** Counts one trace for a failure; true when it was not counted before. */
export function recordHitQuery(hit: FailureHit): StoreQuery<boolean> {
  return async ({ db }) => {
    const result = await db
      .insertInto('fuzz_hits')
      .values({ variant: hit.variant, kind: hit.kind, fn: hit.fn, seed: hit.seed, ops: hit.ops })
      .onConflict((oc) => oc.columns(['variant', 'kind', 'fn', 'seed', 'ops']).doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
  };
}

/** Sets the runs of a failure `claimant` holds, once; true when this call set them. */
export function attachFailureRunsQuery(
  failure: FailureIdentity,
  claimant: string,
  runs: { traceRun: number; reproducerRun: number | null; reproducerOps: number | null },
): StoreQuery<boolean> {
  return async ({ db }) => {
    const result = await db
      .updateTable('fuzz_failures')
      .set({ trace_run: runs.traceRun, reproducer_run: runs.reproducerRun, reproducer_ops: runs.reproducerOps })
      .where('variant', '=', failure.variant)
      .where('kind', '=', failure.kind)
      .where('fn', '=', failure.fn)
      .where('claimant', '=', claimant)
      .where('trace_run', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  };
}

/** Moves the lease end of a claim `holder.claimant` still holds; false when it no longer does. */
export function renewClaimQuery(failure: FailureIdentity, holder: ClaimHolder): StoreQuery<boolean> {
  return async ({ db }) => {
    const result = await db
      .updateTable('fuzz_failures')
      .set({ lease_until: holder.leaseUntil })
      .where('variant', '=', failure.variant)
      .where('kind', '=', failure.kind)
      .where('fn', '=', failure.fn)
      .where('claimant', '=', holder.claimant)
      .where('trace_run', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  };
}

/**
 * Gives a claim with no runs to `to`, if `from` (the holder the caller saw) still holds it; true when this
 * call took it.
 */
export function takeOverClaimQuery(
  failure: FailureIdentity,
  from: string | null,
  to: ClaimHolder,
): StoreQuery<boolean> {
  return async ({ db }) => {
    const result = await db
      .updateTable('fuzz_failures')
      .set({ claimant: to.claimant, lease_until: to.leaseUntil })
      .where('variant', '=', failure.variant)
      .where('kind', '=', failure.kind)
      .where('fn', '=', failure.fn)
      .where('claimant', from === null ? 'is' : '=', from)
      .where('trace_run', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  };
}

/** The claims of `variant` whose runs are not attached yet, by kind and function. */
export function openClaimsQuery(variant: string): StoreQuery<OpenClaim[]> {
  return async ({ db }) => {
    const rows = await db
      .selectFrom('fuzz_failures')
      .select(['variant', 'kind', 'fn', 'seed', 'ops', 'op', 'detail', 'claimant', 'lease_until'])
      .where('variant', '=', variant)
      .where('trace_run', 'is', null)
      .orderBy('kind')
      .orderBy('fn')
      .execute();
    return rows.map((r) => ({
      variant: r.variant,
      kind: r.kind,
      fn: r.fn,
      seed: Number(r.seed),
      ops: r.ops,
      op: r.op,
      detail: r.detail,
      claimant: r.claimant,
      leaseUntil: r.lease_until === null ? null : Number(r.lease_until),
    }));
  };
}

/**
 * Every failure of the store (of one variant when given), by variant, kind and function, with its count.
 * A store read without migration 0003 (read-only, see migrations/0003) has found nothing.
 */
export function farmFailuresQuery(variant?: string): StoreQuery<FarmFailure[]> {
  return async ({ db }) => {
    const tables = await db.introspection.getTables();
    if (!tables.some((t) => t.name === 'fuzz_failures')) return [];
    let query = db
      .selectFrom('fuzz_failures as f')
      .select((eb) => [
        'f.variant',
        'f.kind',
        'f.fn',
        'f.seed',
        'f.ops',
        'f.op',
        'f.detail',
        'f.trace_run',
        'f.reproducer_run',
        'f.reproducer_ops',
        eb
          .selectFrom('fuzz_hits as h')
          .whereRef('h.variant', '=', 'f.variant')
          .whereRef('h.kind', '=', 'f.kind')
          .whereRef('h.fn', '=', 'f.fn')
          .select((h) => h.fn.countAll().as('n'))
          .as('count'),
      ])
      .orderBy('f.variant')
      .orderBy('f.kind')
      .orderBy('f.fn');
    if (variant !== undefined) query = query.where('f.variant', '=', variant);
    const rows = await query.execute();
    return rows.map((r) => ({
      variant: r.variant,
      kind: r.kind,
      fn: r.fn,
      // bigint and count(*) come back as text from PostgreSQL's driver.
      seed: Number(r.seed),
      ops: r.ops,
      op: r.op,
      detail: r.detail,
      count: Number(r.count ?? 0),
      traceRun: r.trace_run,
      reproducerRun: r.reproducer_run,
      reproducerOps: r.reproducer_ops,
    }));
  };
}
