// SPDX-License-Identifier: GPL-2.0-only
// B5's storage figures read the snapshots a run stored, whatever their format.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { recordGuest } from '../../../bench/append.js';
import { DEFAULT_GUEST, guestTrace } from '../../../bench/generate.js';
import { snapshotStats } from '../../../bench/guest.js';

const MiB = 1024 * 1024;
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('snapshotStats', () => {
  it('reads the largest snapshot of a recorded guest in the current format', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ioptrace-guest-'));
    dirs.push(dir);
    const db = join(dir, 'guest.db');
    const guest = guestTrace({
      ...DEFAULT_GUEST,
      guestBytes: 8 * MiB,
      accessOps: 400,
      window: 4,
      chunkBytes: null,
      seed: 7,
    });
    const recorded = await recordGuest(db, guest);
    const stats = snapshotStats(db, recorded.run);
    // 400 access ops of about 11.5 events, a snapshot every 1,024 events of a small state.
    expect([recorded.events, stats.snapshots]).toEqual([4733, 4]);
    expect(stats.maxCompressedBytes).toBeGreaterThan(0);
    expect(stats.maxStateBytes).toBeGreaterThan(stats.maxCompressedBytes);
  });
});
