// SPDX-License-Identifier: GPL-2.0-only
/**
 * The initial schema of the event store: runs, ops, events, event_blocks, snapshots (see
 * src/store/schema.ts for what each column holds). Never edit once landed: add a new numbered migration.
 *
 * The append rate decides the shape of events: only the primary key and UNIQUE (run, seq). An index on
 * (run, type, seq) cost about a third of the append rate (inserts land mid-index, one point per type);
 * event_blocks answers type queries instead. Ops rows give the seq range of an op, so no (run, op) index.
 * events and ops carry no foreign key to runs: the check costs a fifth of an event insert and guards
 * nothing, since the writer inserts the run first and runs can never be deleted (trigger below).
 * ops and event_blocks are WITHOUT ROWID: small rows looked up by their key, one b-tree instead of two.
 *
 * The triggers are SQLite syntax; a Postgres dialect will need its own branch here.
 */

import { sql, type Kysely } from 'kysely';

const APPEND_ONLY: ReadonlyArray<readonly [table: string, message: string]> = [
  ['events', 'events are append-only'],
  ['ops', 'ops are append-only'],
  ['snapshots', 'snapshots are append-only'],
  ['event_blocks', 'event blocks are append-only'],
];

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('runs')
    .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
    .addColumn('trace_path', 'text', (c) => c.notNull())
    .addColumn('trace_sha256', 'text', (c) => c.notNull())
    .addColumn('trace_text', 'text', (c) => c.notNull())
    .addColumn('variant', 'text', (c) => c.notNull())
    .addColumn('flags', 'text', (c) => c.notNull())
    .addColumn('fault_plan', 'text', (c) => c.notNull())
    .addColumn('header', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('running'))
    .addColumn('error', 'text')
    .addColumn('event_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('op_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('head_hash', 'text')
    .addColumn('ops_head_hash', 'text')
    .addColumn('final_digest', 'text')
    .addColumn('created_seq', 'integer', (c) => c.notNull())
    .addCheckConstraint('runs_status', sql`status in ('running', 'complete', 'failed')`)
    .execute();

  await db.schema
    .createTable('ops')
    .addColumn('run', 'integer', (c) => c.notNull())
    .addColumn('idx', 'integer', (c) => c.notNull())
    .addColumn('line', 'integer', (c) => c.notNull())
    .addColumn('op', 'text', (c) => c.notNull())
    .addColumn('errno', 'text')
    .addColumn('result', 'text', (c) => c.notNull())
    .addColumn('first_seq', 'integer', (c) => c.notNull())
    .addColumn('last_seq', 'integer', (c) => c.notNull())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('ops_pk', ['run', 'idx'])
    .modifyEnd(sql`without rowid`)
    .execute();

  await db.schema
    .createTable('events')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('run', 'integer', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('op', 'integer', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('v', 'integer', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('events_run_seq').unique().on('events').columns(['run', 'seq']).execute();

  await db.schema
    .createTable('event_blocks')
    .addColumn('run', 'integer', (c) => c.notNull().references('runs.id'))
    .addColumn('first_seq', 'integer', (c) => c.notNull())
    .addColumn('last_seq', 'integer', (c) => c.notNull())
    .addColumn('types', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('event_blocks_pk', ['run', 'first_seq'])
    .modifyEnd(sql`without rowid`)
    .execute();

  await db.schema
    .createTable('snapshots')
    .addColumn('run', 'integer', (c) => c.notNull().references('runs.id'))
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('op', 'integer', (c) => c.notNull())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('format', 'integer', (c) => c.notNull())
    .addColumn('state', 'blob', (c) => c.notNull())
    .addPrimaryKeyConstraint('snapshots_pk', ['run', 'seq'])
    .execute();

  for (const [table, message] of APPEND_ONLY) {
    await sql`create trigger ${sql.id(`${table}_no_update`)} before update on ${sql.table(table)}
      begin select raise(abort, ${sql.lit(message)}); end`.execute(db);
    await sql`create trigger ${sql.id(`${table}_no_delete`)} before delete on ${sql.table(table)}
      begin select raise(abort, ${sql.lit(message)}); end`.execute(db);
  }
  // A run changes once, from 'running' to its final status: the head hash it then records is final.
  await sql`create trigger runs_no_update_when_finished before update on runs when old.status <> 'running'
    begin select raise(abort, 'a finished run is immutable'); end`.execute(db);
  await sql`create trigger runs_no_delete before delete on runs
    begin select raise(abort, 'runs are never deleted'); end`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Dropping a table drops its triggers and indexes.
  for (const table of ['snapshots', 'event_blocks', 'events', 'ops', 'runs']) {
    await db.schema.dropTable(table).execute();
  }
}
