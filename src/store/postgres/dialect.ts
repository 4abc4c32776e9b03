// SPDX-License-Identifier: GPL-2.0-only
/**
 * The SQL spellings kysely does not abstract, on PostgreSQL. Payloads are text (the hash chain is over the
 * exact text), so a field is read through a jsonb cast. A number field of encodeJson may be a bigint
 * written "123n": the trailing n is dropped before the numeric cast, as SQLite's arithmetic reads the
 * leading digits of such a text. Text fields are COLLATE "C" so they sort bytewise, as on SQLite.
 */

import { sql, type RawBuilder } from 'kysely';
import { InternalError } from '../../lib/errors.js';
import type { SqlDialect } from '../queries/context.js';

/** A jsonb path literal of constant keys ('{tree,pages}'); keys come from the query files, never from input. */
function jsonPath(path: readonly string[]): string {
  for (const key of path) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new InternalError(`JSON key '${key}' is not a plain identifier`);
  }
  return `{${path.join(',')}}`;
}

function field(column: string, path: readonly string[]): RawBuilder<string | null> {
  return sql<string | null>`(${sql.ref(column)}::jsonb #>> ${sql.lit(jsonPath(path))})`;
}

export const postgresSql: SqlDialect = {
  jsonNumber: (column, path) => sql<number | null>`rtrim(${field(column, path)}, 'n')::numeric`,
  jsonText: (column, path) => sql<string | null>`(${field(column, path)} collate "C")`,
};
