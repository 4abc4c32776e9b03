// SPDX-License-Identifier: GPL-2.0-only
/**
 * What a fuzzing farm found (`ioptrace fuzz --record`, `--workers N`; `ioptrace runs --failures`): one row
 * per distinct failure and one per generated trace that showed it. Never edit once landed.
 *
 * Deduplication across processes and machines is the database's job, not a check-then-insert: the primary
 * key of fuzz_failures is (variant, kind, fn), the identity `ioptrace fuzz` counts failures by within a
 * campaign (src/fuzz/dedupe.ts), with the variant label added so that one shared store can hold campaigns
 * on several variants. A worker that sees a failure inserts its row with ON CONFLICT DO NOTHING: the one
 * insert that lands claims the failure (and shrinks it and records its runs); every other worker's is a
 * no-op. fuzz_hits has one row per (failure, seed, op budget): a seed and an op budget name one generated
 * trace, so the count of a failure is the number of distinct traces that showed it, and a rerun of the same
 * seeds adds nothing.
 *
 * Plain column types and constraints only, the same DDL on SQLite and PostgreSQL: seeds are below 2^32, so
 * bigint (PostgreSQL's integer is 32-bit signed); run ids refer to runs.id without a foreign key, as the
 * event tables do (runs are never deleted). trace_run, reproducer_run and reproducer_ops are null until
 * the claiming worker has recorded them (null for good if it was stopped first); they are set once.
 *
 * Only tables are added, so a store without this migration can still be read (src/store/sqlite/open.ts lets
 * a read-only open skip it; the failure queries then answer with no failures).
 */

import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('fuzz_failures')
    .addColumn('variant', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('fn', 'text', (c) => c.notNull())
    .addColumn('seed', 'bigint', (c) => c.notNull())
    .addColumn('ops', 'integer', (c) => c.notNull())
    .addColumn('op', 'integer', (c) => c.notNull())
    .addColumn('detail', 'text', (c) => c.notNull())
    .addColumn('trace_run', 'integer')
    .addColumn('reproducer_run', 'integer')
    .addColumn('reproducer_ops', 'integer')
    .addPrimaryKeyConstraint('fuzz_failures_pk', ['variant', 'kind', 'fn'])
    .execute();
  await db.schema
    .createTable('fuzz_hits')
    .addColumn('variant', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('fn', 'text', (c) => c.notNull())
    .addColumn('seed', 'bigint', (c) => c.notNull())
    .addColumn('ops', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('fuzz_hits_pk', ['variant', 'kind', 'fn', 'seed', 'ops'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('fuzz_hits').execute();
  await db.schema.dropTable('fuzz_failures').execute();
}
