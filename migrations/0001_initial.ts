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
 * PostgreSQL (issue 17) has its own branch, upPostgres: the same tables and columns, with the types and
 * trigger syntax that differ there (see its comment). Adding that branch changed nothing for SQLite.
 */

import { PostgresAdapter, sql, type Kysely } from 'kysely';

const APPEND_ONLY: ReadonlyArray<readonly [table: string, message: string]> = [
  ['events', 'events are append-only'],
  ['ops', 'ops are append-only'],
  ['snapshots', 'snapshots are append-only'],
  ['event_blocks', 'event blocks are append-only'],
];

/** True when the migration runs on PostgreSQL (kysely's own adapter tells the dialect). */
export function onPostgres(db: Kysely<unknown>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

export async function up(db: Kysely<unknown>): Promise<void> {
  if (onPostgres(db)) {
    await upPostgres(db);
    return;
  }
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

/**
 * The PostgreSQL spelling of the same schema. What differs and why:
 * - integers are bigint (a global event id outgrows int4 on a busy farm; the driver returns them as numbers,
 *   refusing any beyond 2^53), ids are identities, snapshots are bytea;
 * - text columns are COLLATE "C": ORDER BY then compares bytes as SQLite does, so listings sort the same;
 * - payloads, results and JSON columns stay text, never jsonb: the hash chain is over the exact text;
 * - events carry `tx`, the id of the transaction that wrote them (pg_current_xact_id()): global ids are
 *   taken at insert and commit out of order, so a reader of the global order reads only ids written by
 *   transactions older than every one still running (tx < pg_snapshot_xmin(pg_current_snapshot()));
 * - append-only is a trigger function refusing UPDATE, DELETE and TRUNCATE; the role that may only append is
 *   created by the administrator (docs/postgres.md), not here: roles belong to the cluster.
 */
async function upPostgres(db: Kysely<unknown>): Promise<void> {
  await sql`create table runs (
    id bigint generated by default as identity primary key,
    trace_path text collate "C" not null,
    trace_sha256 text collate "C" not null,
    trace_text text not null,
    variant text collate "C" not null,
    flags text collate "C" not null,
    fault_plan text collate "C" not null,
    header text not null,
    status text collate "C" not null default 'running' constraint runs_status check (status in ('running', 'complete', 'failed')),
    error text collate "C",
    event_count bigint not null default 0,
    op_count bigint not null default 0,
    head_hash text collate "C",
    ops_head_hash text collate "C",
    final_digest text collate "C",
    created_seq bigint not null
  )`.execute(db);
  await sql`create table ops (
    run bigint not null,
    idx bigint not null,
    line bigint not null,
    op text collate "C" not null,
    errno text collate "C",
    result text not null,
    first_seq bigint not null,
    last_seq bigint not null,
    digest text collate "C" not null,
    hash text collate "C" not null,
    constraint ops_pk primary key (run, idx)
  )`.execute(db);
  await sql`create table events (
    id bigint generated by default as identity primary key,
    run bigint not null,
    seq bigint not null,
    op bigint not null,
    type text collate "C" not null,
    v bigint not null,
    payload text not null,
    hash text collate "C" not null,
    tx xid8 not null default pg_current_xact_id()
  )`.execute(db);
  await sql`create unique index events_run_seq on events (run, seq)`.execute(db);
  await sql`create table event_blocks (
    run bigint not null references runs (id),
    first_seq bigint not null,
    last_seq bigint not null,
    types text collate "C" not null,
    constraint event_blocks_pk primary key (run, first_seq)
  )`.execute(db);
  await sql`create table snapshots (
    run bigint not null references runs (id),
    seq bigint not null,
    op bigint not null,
    digest text collate "C" not null,
    format bigint not null,
    state bytea not null,
    constraint snapshots_pk primary key (run, seq)
  )`.execute(db);
  await sql`create function ioptrace_refuse() returns trigger language plpgsql as $$
    begin raise exception '%', tg_argv[0] using errcode = 'restrict_violation'; end $$`.execute(db);
  for (const [table, message] of APPEND_ONLY) {
    await sql`create trigger ${sql.id(`${table}_no_change`)} before update or delete on ${sql.table(table)}
      for each row execute function ioptrace_refuse(${sql.lit(message)})`.execute(db);
    await sql`create trigger ${sql.id(`${table}_no_truncate`)} before truncate on ${sql.table(table)}
      for each statement execute function ioptrace_refuse(${sql.lit(message)})`.execute(db);
  }
  await sql`create trigger runs_no_update_when_finished before update on runs for each row
    when (old.status <> 'running') execute function ioptrace_refuse('a finished run is immutable')`.execute(db);
  await sql`create trigger runs_no_delete before delete on runs for each row
    execute function ioptrace_refuse('runs are never deleted')`.execute(db);
  await sql`create trigger runs_no_truncate before truncate on runs for each statement
    execute function ioptrace_refuse('runs are never deleted')`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Dropping a table drops its triggers and indexes.
  for (const table of ['snapshots', 'event_blocks', 'events', 'ops', 'runs']) {
    await db.schema.dropTable(table).execute();
  }
  if (onPostgres(db)) await sql`drop function ioptrace_refuse()`.execute(db);
}
