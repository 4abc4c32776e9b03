// SPDX-License-Identifier: GPL-2.0-only
/**
 * What a path holds before the store touches it, and read-only opening that works on read-only media.
 *
 * Opening a file for writing would let SQLite change it (journal mode in the header, a hot journal rolled
 * back, our migrations run in someone else's database), so a path that exists is first looked at: its
 * first bytes, then its tables through a read-only connection. Only an ioptrace store or an empty database
 * is ever opened for writing.
 *
 * Read-only media: a WAL database needs its -shm file to be read, and SQLite cannot create one in a
 * read-only directory. This build of SQLite has URI filenames off, so `?immutable=1` is not available;
 * instead such a database (whose -wal is absent or empty, so the main file holds every commit) is read
 * into memory and opened from there, read-only.
 */

import Database from 'better-sqlite3';
import { DEFAULT_MIGRATION_LOCK_TABLE, DEFAULT_MIGRATION_TABLE } from 'kysely';
import { accessSync, closeSync, constants, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { NotAStoreError, StoreError } from '../errors.js';
import { describeCause } from './cause.js';

/** The 16 bytes every SQLite 3 database file starts with. */
const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

/** The migration every ioptrace store has run; another program's kysely database lacks it. */
const FIRST_MIGRATION = '0001_initial';

const MIGRATION_TABLES: readonly string[] = [DEFAULT_MIGRATION_TABLE, DEFAULT_MIGRATION_LOCK_TABLE];

/** readFileSync reads at most 2 GiB; a larger WAL database on read-only media must be copied first. */
const MAX_IN_MEMORY = 2 ** 31 - 1;

export type FileKind = 'missing' | 'empty' | 'sqlite';

const UNTOUCHED = 'it was left untouched';

/** Looks at `path` without changing it; throws NotAStoreError for anything but SQLite, nothing or an empty file. */
export function inspectFile(path: string): FileKind {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw new StoreError('open-failed', `cannot open ${path}: ${describeCause(error)}`, { path }, { cause: error });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) {
      throw new NotAStoreError('not-a-store', `${path} is not an ioptrace store (not a regular file)`, { path });
    }
    if (stat.size === 0) return 'empty';
    const head = Buffer.alloc(SQLITE_MAGIC.length);
    const read = readSync(fd, head, 0, head.length, 0);
    if (read < head.length || !head.equals(SQLITE_MAGIC)) {
      throw new NotAStoreError(
        'not-a-store',
        `${path} is not an ioptrace store (not an SQLite database); ${UNTOUCHED}`,
        {
          path,
        },
      );
    }
    return 'sqlite';
  } finally {
    closeSync(fd);
  }
}

/** Opens an existing database read-only, in place when SQLite can, else from memory (see the top comment). */
export function openReadOnly(path: string, timeout: number): Database.Database {
  const raw = new Database(path, { readonly: true, fileMustExist: true, timeout });
  try {
    // SQLite opens lazily: a missing -shm shows only at the first read.
    raw.prepare('SELECT count(*) FROM sqlite_schema').get();
    return raw;
  } catch (error) {
    raw.close();
    if ((error as { code?: unknown }).code !== 'SQLITE_CANTOPEN' || directoryWritable(path)) throw error;
    return openFromMemory(path, error);
  }
}

function directoryWritable(path: string): boolean {
  try {
    accessSync(dirname(path), constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function openFromMemory(path: string, cause: unknown): Database.Database {
  if (fileSize(`${path}-wal`) > 0) {
    throw new StoreError(
      'open-failed',
      `cannot read ${path} in place: its directory is read-only and ${path}-wal holds commits that SQLite can only read through a ${path}-shm file it cannot create there; copy ${path} and ${path}-wal to a writable directory and open the copy`,
      { path },
      { cause },
    );
  }
  const size = fileSize(path);
  if (size > MAX_IN_MEMORY) {
    throw new StoreError(
      'open-failed',
      `cannot read ${path} in place: its directory is read-only and, as a WAL database of ${size} bytes, it is too large to read into memory; copy it to a writable directory and open the copy`,
      { path, size },
      { cause },
    );
  }
  const image = readFileSync(path);
  // Header bytes 18 and 19 are the file format versions: 2 says WAL, 1 the rollback journal. Without the
  // -wal file the two layouts are the same, and an in-memory database cannot use WAL.
  if (image.length >= 20 && image[18] === 2 && image[19] === 2) {
    image[18] = 1;
    image[19] = 1;
  }
  return new Database(image, { readonly: true });
}

/** What an open SQLite database holds: nothing yet, or an ioptrace store; anything else is refused. */
export function storeContents(raw: Database.Database, path: string): 'empty' | 'store' {
  let tables: string[];
  try {
    tables = raw
      .prepare<[], string>(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name",
      )
      .pluck()
      .all();
  } catch (error) {
    if ((error as { code?: unknown }).code === 'SQLITE_NOTADB') {
      throw new NotAStoreError(
        'not-a-store',
        `${path} is not an ioptrace store (not an SQLite database); ${UNTOUCHED}`,
        {
          path,
        },
      );
    }
    throw new StoreError('open-failed', `cannot open ${path}: ${describeCause(error)}`, { path }, { cause: error });
  }
  if (tables.length === 0) return 'empty';
  // Another ioptrace process creating this store: kysely makes its migration tables before it takes the
  // migration lock, so between the two only they exist, with none of another program's migrations in them.
  if (tables.every((t) => MIGRATION_TABLES.includes(t))) {
    const names = tables.includes(DEFAULT_MIGRATION_TABLE)
      ? raw.prepare<[], string>(`SELECT name FROM ${DEFAULT_MIGRATION_TABLE}`).pluck().all()
      : [];
    if (names.length === 0) return 'empty';
  }
  if (tables.includes(DEFAULT_MIGRATION_TABLE) && tables.includes('runs')) {
    const migrations = raw.prepare<[], string>(`SELECT name FROM ${DEFAULT_MIGRATION_TABLE}`).pluck().all();
    if (migrations.includes(FIRST_MIGRATION)) return 'store';
  }
  const shown =
    tables.length > 6 ? `${tables.slice(0, 6).join(', ')} and ${tables.length - 6} more` : tables.join(', ');
  throw new NotAStoreError(
    'not-a-store',
    `${path} is an SQLite database of another program (tables ${shown}), not an ioptrace store; ${UNTOUCHED}`,
    { path, tables },
  );
}
