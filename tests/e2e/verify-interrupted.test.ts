// SPDX-License-Identifier: GPL-2.0-only
// verify on stores nobody tampered with: a writer killed with SIGKILL at every point of a batch, and verify
// running while a writer commits. Incomplete is not broken (exit 0); tampering is (exit 1, the row named).
import Database from 'better-sqlite3';
import { childLines } from '../support/child-lines.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyCommand } from '../../src/cli/commands/verify.js';
import { eventHash } from '../../src/store/chain.js';
import { tempDir } from '../support/store-rows.js';
import { ROOT, builtChild, cli } from '../support/built-cli.js';

/** The writer child (tests/support/children/store-writer.ts), built by tsc: it starts in a fraction of a second. */
const CHILD = builtChild('store-writer');
// Long: every kill point starts a process.
const SLOW = 240_000;

let tmp: ReturnType<typeof tempDir>;
let db: string;
const children: ChildProcess[] = [];

function start(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [CHILD, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.on('exit', () => resolve());
  });
}

async function verify(): Promise<{ exitCode: number; text: string[] }> {
  const out = await verifyCommand.run([], {}, { db, json: false, stderr: process.stderr });
  return { exitCode: out.exitCode, text: out.text };
}

beforeEach(() => {
  tmp = tempDir();
  db = join(tmp.dir, 'ledger.db');
});

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited(child);
  }
  tmp.remove();
});

const incomplete = (events: number, batches: number, ops: number): string =>
  `run 1: incomplete, not broken: ${events} events in ${batches} whole ${batches === 1 ? 'batch' : 'batches'}, ${ops} ops; no finish row (still being written, or its writer was stopped)`;

/** Kills the pause-mode writer at step `n` of `batch` and returns the step it stopped at. */
async function killAt(batch: number, n: number): Promise<string> {
  const child = start(['pause', db, String(batch), String(n)]);
  const [line] = await childLines(child, (l) => l.length > 0);
  child.kill('SIGKILL');
  await exited(child);
  return line ?? '';
}

// The child writes 250 events in batches of 100, ops of 10 events, a snapshot every 50 events. An op row
// is buffered after its last event, which commits the batch, so the op rows of a batch lag by one: batch 1
// holds ops 0..8, batch 2 ops 9..18, batch 3 (with the finish row) ops 19..24. A batch's first step is
// `begin`: the write lock is held and nothing of the batch is written yet.
// Events go in statements of up to 256 rows, a smaller chunk as a multiple of 32 rows and the rest (100 = 96 + 4).
const BATCH_2 = ['begin', 'events', 'events', 'block', 'ops', 'snapshots', 'snapshots', 'commit'];
const BATCH_3 = ['begin', 'events', 'events', 'block', 'ops', 'snapshots', 'snapshots', 'finish', 'commit'];

describe('verify after a writer killed with SIGKILL at every point of a batch', () => {
  it(
    'batch 2: incomplete with the whole batches committed before, exit 0',
    async () => {
      const seen: string[] = [];
      for (let n = 1; n <= BATCH_2.length; n++) {
        tmp.remove();
        tmp = tempDir();
        db = join(tmp.dir, 'ledger.db');
        const line = await killAt(2, n);
        seen.push(line.replace('paused ', ''));
        const committed = line === 'paused commit';
        expect(await verify()).toEqual({
          exitCode: 0,
          text: [committed ? incomplete(200, 2, 19) : incomplete(100, 1, 9)],
        });
      }
      expect(seen).toEqual(BATCH_2);
    },
    SLOW,
  );

  it(
    'batch 3 (with the finish row): incomplete until it commits, then ok, exit 0',
    async () => {
      const seen: string[] = [];
      for (let n = 1; n <= BATCH_3.length; n++) {
        tmp.remove();
        tmp = tempDir();
        db = join(tmp.dir, 'ledger.db');
        const line = await killAt(3, n);
        seen.push(line.replace('paused ', ''));
        const committed = line === 'paused commit';
        expect(await verify()).toEqual({
          exitCode: 0,
          text: [committed ? 'run 1: ok, 250 events, 25 ops' : incomplete(200, 2, 19)],
        });
      }
      expect(seen).toEqual(BATCH_3);
      // Past the last step the child finishes by itself.
      tmp.remove();
      tmp = tempDir();
      db = join(tmp.dir, 'ledger.db');
      expect(
        await childLines(start(['pause', db, '3', String(BATCH_3.length + 1)]), (l) => l.includes('done')),
      ).toEqual(['done']);
    },
    SLOW,
  );
});

describe('verify still names tampering in an interrupted run', () => {
  /** A raw connection that does what a tamperer would: drops the append-only triggers first. */
  function tamper(sql: string, ...params: unknown[]): void {
    const raw = new Database(db);
    try {
      raw.exec('DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; DROP TRIGGER event_blocks_no_delete;');
      raw.prepare(sql).run(...params);
    } finally {
      raw.close();
    }
  }

  beforeEach(async () => {
    // Killed in batch 2 before its block row: batch 1 (events 1..100) is what the store holds.
    expect(await killAt(2, BATCH_2.indexOf('block') + 1)).toBe('paused block');
  });

  it('a changed payload byte: BROKEN at that event, exit 1', async () => {
    const raw = new Database(db, { readonly: true });
    const row = raw.prepare('SELECT id, op, v, type, payload, hash FROM events WHERE run = 1 AND seq = 50').get() as {
      id: number;
      op: number;
      v: number;
      type: string;
      payload: string;
      hash: string;
    };
    const prev = raw.prepare('SELECT hash FROM events WHERE run = 1 AND seq = 49').pluck().get() as string;
    raw.close();
    const edited = row.payload.replace('"index":50', '"index":51');
    expect(edited).not.toBe(row.payload);
    tamper('UPDATE events SET payload = ? WHERE run = 1 AND seq = 50', edited);
    expect(await verify()).toEqual({
      exitCode: 1,
      text: [
        `run 1 (incomplete): BROKEN: event seq 50 (id ${row.id}): hash-mismatch, expected ${eventHash(prev, 50, row.op, row.v, row.type, edited)}, found ${row.hash}`,
      ],
    });
  });

  it('a deleted event row: BROKEN at the gap, exit 1', async () => {
    tamper('DELETE FROM events WHERE run = 1 AND seq = 60');
    expect(await verify()).toEqual({
      exitCode: 1,
      text: ['run 1 (incomplete): BROKEN: event seq 60: seq-gap, expected 60, found 61'],
    });
  });

  it("a deleted block row: the batch's events without their block are tampering, exit 1", async () => {
    tamper('DELETE FROM event_blocks WHERE run = 1 AND first_seq = 1');
    expect(await verify()).toEqual({
      exitCode: 1,
      text: [
        'run 1 (incomplete): BROKEN: event-blocks: expected a block listing type PagesPinned at seq 1, found no block',
      ],
    });
  });
});

describe('verify while a writer commits', () => {
  it(
    'is clean 5 times out of 5, and the run grows meanwhile',
    async () => {
      const writer = start(['slow', db, '100']);
      await childLines(writer, (l) => l.filter((line) => line.startsWith('committed ')).length >= 3);
      const pattern =
        /^run 1: incomplete, not broken: (\d+) events in (\d+) whole batches, (\d+) ops; no finish row \(still being written, or its writer was stopped\)$/;
      const events: number[] = [];
      for (let attempt = 0; attempt < 5; attempt++) {
        const r = await cli(['verify', '--db', db]);
        expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
        const match = pattern.exec(r.stdout.trim());
        expect(match, r.stdout).not.toBeNull();
        const [count, batches] = [Number(match?.[1]), Number(match?.[2])];
        expect(count).toBe(batches * 100);
        events.push(count);
      }
      expect(writer.exitCode).toBeNull();
      expect(events[4]).toBeGreaterThan(events[0] ?? Infinity);
    },
    SLOW,
  );
});
