// SPDX-License-Identifier: GPL-2.0-only
/**
 * B5 guest: a 16 GiB guest of 2 MiB huge pages with a mock and a generic domain, mapped whole, 100,000
 * access pin/unpin ops of random 1..64 page ranges, then everything unmapped (generate.ts), replayed into a
 * database file. It runs in a process of its own, so the peak RSS is this workload's alone.
 *
 * "No per-page storage" is measured, not assumed: a 16 GiB guest is 4,194,304 pages of 4 KiB, so anything
 * kept per page would cost at least a byte per page. The figures are the largest state the run stored
 * (its largest snapshot, decoded: the v8 serialisation of the whole State), the events of the op that
 * maps the whole guest, and the database bytes, each per guest page.
 */

import Database from 'better-sqlite3';
import { serialize } from 'node:v8';
import { deserializeState } from '../src/state/snapshot.js';
import { measureAppend } from './append.js';
import type { AppendMeasurement } from './append.js';
import type { GuestOptions } from './generate.js';
import { PAGE_SIZE, SETUP_OPS, TEARDOWN_OPS } from './generate.js';

export interface SnapshotStats {
  snapshots: number;
  snapshotBytes: number;
  /**
   * The largest snapshot as stored (compressed, in its format), and its State as one v8 serialisation (what
   * a format-1 snapshot held before compression; format 2 stores the same State in parts).
   */
  maxCompressedBytes: number;
  maxStateBytes: number;
}

export function snapshotStats(dbPath: string, run: number): SnapshotStats {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const total = db
      .prepare<[number], { n: number; bytes: number | null }>(
        'SELECT count(*) AS n, sum(length(state)) AS bytes FROM snapshots WHERE run = ?',
      )
      .get(run);
    const largest = db
      .prepare<[number], { state: Buffer; format: number }>(
        'SELECT state, format FROM snapshots WHERE run = ? ORDER BY length(state) DESC LIMIT 1',
      )
      .get(run);
    return {
      snapshots: total?.n ?? 0,
      snapshotBytes: total?.bytes ?? 0,
      maxCompressedBytes: largest?.state.byteLength ?? 0,
      maxStateBytes: largest === undefined ? 0 : serialize(deserializeState(largest.state, largest.format)).byteLength,
    };
  } finally {
    db.close();
  }
}

export interface GuestMeasurement {
  append: AppendMeasurement;
  snapshots: SnapshotStats;
  guestPages: number;
}

export async function measureGuest(dbPath: string, options: GuestOptions): Promise<GuestMeasurement> {
  const append = await measureAppend(dbPath, options);
  return { append, snapshots: snapshotStats(dbPath, append.record.run), guestPages: options.guestBytes / PAGE_SIZE };
}

/** The B5 figures: throughput, memory, and storage per event and per guest page. */
export function guestFigures(m: GuestMeasurement): Record<string, number> {
  const r = m.append.record;
  const accessPhaseOps = r.traceOps - SETUP_OPS - TEARDOWN_OPS;
  return {
    opsPerSec: r.traceOps / r.seconds,
    accessOpsPerSec: accessPhaseOps / r.accessSeconds,
    traceOps: r.traceOps,
    events: r.events,
    recordSeconds: r.seconds,
    setupSeconds: r.setupSeconds,
    peakRssMiB: m.append.peakRssMiB,
    dbBytesPerEvent: r.dbBytes / r.events,
    dbBytes: r.dbBytes,
    maxStateBytes: m.snapshots.maxStateBytes,
    maxStateBytesPerPage: m.snapshots.maxStateBytes / m.guestPages,
    mapEvents: r.mapEvents,
    mapEventsPerPage: r.mapEvents / m.guestPages,
    dbBytesPerPage: r.dbBytes / m.guestPages,
    violations: r.violations + r.warns + r.mismatches,
  };
}
