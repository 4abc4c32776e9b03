// SPDX-License-Identifier: GPL-2.0-only
/**
 * Append-only on PostgreSQL, enforced by the server: the triggers of migration 0001 refuse UPDATE, DELETE
 * and TRUNCATE even to the superuser, and the append role of docs/postgres.md can replay and finish runs
 * but can neither delete rows nor drop the triggers.
 */
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { freshDatabase } from '../support/pg-server.js';
import { appendOps, runInfo } from '../support/store-rows.js';

const pgUrl = inject('pgUrl');

async function attempt(url: string, statement: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
    return 'done';
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end();
  }
}

async function writeRun(url: string): Promise<number> {
  const store = await openStore(url);
  try {
    const writer = await store.beginRun(runInfo(), { batchSize: 16 });
    appendOps(writer, 40);
    writer.putSnapshot(40, 3, '00000000000000aa', new Uint8Array([1, 2, 3]), 1);
    await writer.finish('complete', { finalDigest: 'feedfacecafebeef' });
    expect((await store.verify()).ok).toBe(true);
    return writer.run;
  } finally {
    await store.close();
  }
}

describe.skipIf(pgUrl === '')(
  `append-only on PostgreSQL ${pgUrl === '' ? `(skipped: ${inject('pgSkip')})` : ''}`,
  () => {
    it('refuses UPDATE, DELETE and TRUNCATE to the owner, and changing a finished run', async () => {
      const db = await freshDatabase(pgUrl);
      await writeRun(db);
      const refusals: [string, string][] = [
        ['UPDATE events SET payload = payload', 'events are append-only'],
        ['DELETE FROM events', 'events are append-only'],
        ['TRUNCATE events', 'events are append-only'],
        ['UPDATE ops SET line = 1', 'ops are append-only'],
        ['DELETE FROM ops', 'ops are append-only'],
        ['DELETE FROM snapshots', 'snapshots are append-only'],
        ['TRUNCATE snapshots, event_blocks', 'snapshots are append-only'],
        ['DELETE FROM event_blocks', 'event blocks are append-only'],
        ["UPDATE runs SET status = 'failed'", 'a finished run is immutable'],
        ['DELETE FROM runs', 'runs are never deleted'],
      ];
      for (const [statement, message] of refusals)
        expect([statement, await attempt(db, statement)]).toEqual([statement, message]);
      const store = await openStore(db, { readonly: true });
      try {
        expect((await store.verify()).ok).toBe(true);
        expect(await store.eventCount(1)).toBe(40);
      } finally {
        await store.close();
      }
    });

    it('lets the append role of docs/postgres.md write runs, and nothing else', async () => {
      const db = await freshDatabase(pgUrl);
      await writeRun(db);
      const role = `ioptrace_append_${process.pid}_${Date.now().toString(36)}`;
      const database = new URL(db).pathname.slice(1);
      for (const grant of [
        `CREATE ROLE ${role} LOGIN`,
        `GRANT CONNECT ON DATABASE ${database} TO ${role}`,
        `GRANT USAGE ON SCHEMA public TO ${role}`,
        `GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`,
        `GRANT INSERT ON runs, events, ops, snapshots, event_blocks TO ${role}`,
        `GRANT UPDATE (status, error, error_op, error_line, event_count, op_count, head_hash, ops_head_hash, final_digest) ON runs TO ${role}`,
        `GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${role}`,
      ]) {
        expect(await attempt(db, grant)).toBe('done');
      }
      const asRole = new URL(db);
      asRole.username = role;
      const roleUrl = asRole.toString();
      expect(await writeRun(roleUrl)).toBe(2);
      for (const table of ['events', 'ops', 'snapshots', 'event_blocks', 'runs']) {
        expect(await attempt(roleUrl, `DELETE FROM ${table}`)).toBe(`permission denied for table ${table}`);
        expect(await attempt(roleUrl, `TRUNCATE ${table}`)).toBe(`permission denied for table ${table}`);
      }
      expect(await attempt(roleUrl, 'UPDATE events SET payload = payload')).toBe('permission denied for table events');
      expect(await attempt(roleUrl, 'DROP TRIGGER events_no_change ON events')).toBe(
        'must be owner of relation events',
      );
      expect(await attempt(roleUrl, "UPDATE runs SET status = 'failed' WHERE id = 2")).toBe(
        'a finished run is immutable',
      );
    });
  },
);
