// SPDX-License-Identifier: GPL-2.0-only
/**
 * Who holds a failure's claim, and until when (src/fuzz/claims.ts). Never edit once landed.
 *
 * Migration 0003 made the claim an insert that lands once: the worker whose insert landed shrinks the
 * failure and records its runs. A worker killed between its claim and the attaching of its runs left a row
 * with no runs that no other worker would ever take, so the failure was found but never recorded. With
 * these columns a claim names its holder (`claimant`: host, process id and a random token of the worker)
 * and a lease end (`lease_until`, milliseconds since the epoch, renewed as the work goes on). A row with no
 * runs whose holder is known dead (a process of this host that no longer exists) or whose lease has run out
 * may be taken over by another worker with one compare-and-set UPDATE on the old holder, which regenerates
 * the trace from the row's seed and op budget and finishes the work.
 *
 * Rows claimed before this migration have neither: with no runs they count as abandoned.
 *
 * Plain columns, the same DDL on SQLite and PostgreSQL (SQLite adds one column per ALTER TABLE).
 */

import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('fuzz_failures').addColumn('claimant', 'text').execute();
  await db.schema.alterTable('fuzz_failures').addColumn('lease_until', 'bigint').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('fuzz_failures').dropColumn('lease_until').execute();
  await db.schema.alterTable('fuzz_failures').dropColumn('claimant').execute();
}
