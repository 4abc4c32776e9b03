// SPDX-License-Identifier: GPL-2.0-only
/**
 * Where a failed run stopped: the op that was being replayed and its trace line, next to the reason that
 * 0001 already keeps in runs.error. Both stay null for complete and running runs. Never edit once landed.
 *
 * Only columns are added, so a store without this migration can still be read (src/store/sqlite.ts lets a
 * read-only open skip it: an archived ledger on read-only media cannot be migrated).
 */

import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('runs').addColumn('error_op', 'integer').execute();
  await db.schema.alterTable('runs').addColumn('error_line', 'integer').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('runs').dropColumn('error_line').execute();
  await db.schema.alterTable('runs').dropColumn('error_op').execute();
}
