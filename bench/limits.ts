// SPDX-License-Identifier: GPL-2.0-only
/**
 * The physical limits the store is measured against, with better-sqlite3 alone (bench/ is not src/, so it
 * may open SQLite directly). Both run in the same process and on the same machine as the figure beside
 * them, right after it.
 *
 * rawInsert (B1): the same number of rows, of the same mean payload size, into an events table made from
 * the store's own DDL (copied out of the store's database: same columns, same UNIQUE (run, seq) index),
 * with the store's settings (16 KiB pages, WAL, synchronous NORMAL), one prepared single-row INSERT,
 * and a transaction (BEGIN IMMEDIATE) per batch of the store's batch size. Payloads, types and hashes are
 * made before the clock starts; only the inserts and commits are timed.
 *
 * rawScan (B2): every payload of one run in seq order, from one statement, each decoded with decodeEvent,
 * the decoding the rebuild uses. Nothing else: no reducer, no state.
 */

import Database from 'better-sqlite3';
import { decodeEvent } from '../src/state/snapshot.js';
import { cpuSeconds, seconds, stopwatch } from './timing.js';

export interface RawInsertOptions {
  /** The store's database: its events DDL is copied. */
  storePath: string;
  /** Where the raw table goes (a new file). */
  path: string;
  rows: number;
  meanPayloadBytes: number;
  meanTypeBytes: number;
  batchSize: number;
}

export interface RawInsertResult {
  rows: number;
  seconds: number;
  cpuSeconds: number;
  rowsPerSec: number;
  payloadBytes: number;
}

/** The CREATE statements of the events table and its indexes, as the store's migration made them. */
export function eventsDdl(storePath: string): string[] {
  const db = new Database(storePath, { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare<[], { sql: string }>(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'events' AND type IN ('table', 'index') AND sql IS NOT NULL ORDER BY type DESC",
      )
      .all();
    if (!rows.some((r) => /^CREATE TABLE/i.test(r.sql))) throw new Error(`${storePath} has no events table`);
    return rows.map((r) => r.sql);
  } finally {
    db.close();
  }
}

/** Opens a new database file with the store's pragmas (see src/store/sqlite.ts). */
function openLikeStore(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('page_size = 16384');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  return db;
}

/** Text of exactly `bytes` ASCII characters that looks like an event payload (JSON, digits, names). */
export function fillerPayload(bytes: number, salt: number): string {
  const head = `{"type":"PagesPinned","v":1,"pfn":${1000000 + salt},"fn":"`;
  const tail = '"}';
  let body = '';
  let x = (salt * 2654435761) >>> 0;
  while (head.length + body.length + tail.length < bytes) {
    x = (Math.imul(x ^ (x >>> 15), 2246822507) + 0x9e3779b9) >>> 0;
    body += String.fromCharCode(97 + (x % 26));
  }
  return (head + body + tail).slice(0, Math.max(bytes, 0));
}

/** B1's limit: raw batched inserts of rows like the store's. */
export function rawInsert(options: RawInsertOptions): RawInsertResult {
  const { rows, batchSize } = options;
  const ddl = eventsDdl(options.storePath);
  const db = openLikeStore(options.path);
  try {
    for (const sql of ddl) db.exec(sql);
    // A pool of distinct rows, reused round robin: made before the clock starts.
    const POOL = 1024;
    const payloadBytes = Math.max(1, Math.round(options.meanPayloadBytes));
    const payloads = Array.from({ length: POOL }, (_, i) => fillerPayload(payloadBytes, i));
    const typeBytes = Math.max(1, Math.round(options.meanTypeBytes));
    const types = Array.from({ length: 16 }, (_, i) => `T${i.toString(36)}`.padEnd(typeBytes, 'x').slice(0, typeBytes));
    const hashes = Array.from({ length: POOL }, (_, i) => fillerPayload(64, i + POOL).slice(-64));
    const insert = db.prepare('INSERT INTO events (run, seq, op, type, v, payload, hash) VALUES (?, ?, ?, ?, ?, ?, ?)');
    const batch = db.transaction((first: number, last: number) => {
      for (let seq = first; seq <= last; seq++) {
        const k = seq % POOL;
        insert.run(1, seq, seq >>> 3, types[seq & 15], 1, payloads[k], hashes[k]);
      }
    });
    const cpu0 = cpuSeconds();
    const clock = stopwatch();
    for (let first = 1; first <= rows; first += batchSize)
      batch.immediate(first, Math.min(rows, first + batchSize - 1));
    const s = seconds(clock);
    return { rows, seconds: s, cpuSeconds: cpuSeconds() - cpu0, rowsPerSec: rows / s, payloadBytes };
  } finally {
    db.close();
  }
}

export interface RawScanResult {
  rows: number;
  seconds: number;
  cpuSeconds: number;
  rowsPerSec: number;
}

/** B2's limit: read and decode every payload of `run`, in seq order. */
export function rawScan(storePath: string, run: number): RawScanResult {
  const db = new Database(storePath, { readonly: true, fileMustExist: true });
  try {
    const scan = db.prepare<[number], string>('SELECT payload FROM events WHERE run = ? ORDER BY seq').pluck();
    const cpu0 = cpuSeconds();
    const clock = stopwatch();
    let rows = 0;
    // Counting the decoded types keeps the decoding from being optimised away.
    let typed = 0;
    for (const payload of scan.iterate(run)) {
      if (decodeEvent(payload).type.length > 0) typed++;
      rows++;
    }
    const s = seconds(clock);
    const cpu = cpuSeconds() - cpu0;
    if (typed !== rows) throw new Error('raw scan: an event without a type');
    return { rows, seconds: s, cpuSeconds: cpu, rowsPerSec: rows / s };
  } finally {
    db.close();
  }
}

export interface PayloadStats {
  events: number;
  meanPayloadBytes: number;
  meanTypeBytes: number;
}

/** Mean sizes of a run's stored rows (payloads are ASCII: characters are bytes). */
export function payloadStats(storePath: string, run: number): PayloadStats {
  const db = new Database(storePath, { readonly: true, fileMustExist: true });
  try {
    const row = db
      .prepare<[number], { n: number; p: number | null; t: number | null }>(
        'SELECT count(*) AS n, avg(length(payload)) AS p, avg(length(type)) AS t FROM events WHERE run = ?',
      )
      .get(run);
    return { events: row?.n ?? 0, meanPayloadBytes: row?.p ?? 0, meanTypeBytes: row?.t ?? 0 };
  } finally {
    db.close();
  }
}
