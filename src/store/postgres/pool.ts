// SPDX-License-Identifier: GPL-2.0-only
/**
 * The pg connection pool behind a PostgreSQL store, and how its values come back.
 *
 * Integer columns are bigint (migrations/0001_initial.ts) and sums over them numeric; pg returns both as
 * strings by default. Every number the store holds is a safe integer, so this pool returns them as numbers,
 * the way better-sqlite3 does; a bigint beyond 2^53 comes back as a JS bigint, which the row checks refuse
 * (a 'bad-row' naming the column) rather than rounding it.
 */

import pg from 'pg';

const INT8_OID = 20;
const NUMERIC_OID = 1700;

function parseInt8(text: string): number | bigint {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : BigInt(text);
}

/** The parser of a text-format value of type `oid`: ours for int8 and numeric, pg's for the rest. */
function textParser(oid: number): (text: string) => unknown {
  if (oid === INT8_OID) return parseInt8;
  if (oid === NUMERIC_OID) return Number;
  const parser: unknown = pg.types.getTypeParser(oid, 'text');
  return parser as (text: string) => unknown;
}

// The store sends and reads text format only (pg's default), so only text parsers are asked for.
const types: pg.CustomTypesConfig = { getTypeParser: textParser };

/** True for the locations that name a PostgreSQL server rather than a SQLite file. */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(location);
}

/** The URL as shown in messages and Store.path: the password replaced by ***. */
export function shownUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

export function newPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, types, max, application_name: 'ioptrace' });
  // An idle client whose server went away emits 'error' on the pool; the next query reports it instead.
  pool.on('error', () => undefined);
  return pool;
}

/** How a pg error reads inside a StoreError message: its text and SQLSTATE. */
export function describePgCause(error: unknown): string {
  const e = error as { message?: unknown; code?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : String(error);
  return typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? `${message} (SQLSTATE ${e.code})` : message;
}
