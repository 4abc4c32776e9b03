// SPDX-License-Identifier: GPL-2.0-only
/**
 * The store's dialect boundary (docs/architecture.md): kysely is imported only under src/store/, and
 * better-sqlite3 only under src/store/sqlite/, so a second backend comes in as a sibling of sqlite/ and no
 * caller changes. Checked twice: by walking every import of src/ (type-only and dynamic ones too), and by
 * running the repository's eslint.config.js on real files with one such import added.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../../..');
const SRC = join(ROOT, 'src');

const SPECIFIER =
  /(?:\bimport|\bexport)\s[^;]*?\bfrom\s*'([^']+)'|\bimport\s*\(\s*'([^']+)'\s*\)|^\s*import\s+'([^']+)'/gms;

/** Every file of src/ that imports `pkg` (or a subpath of it), relative to the repository. */
function importersOf(pkg: string): string[] {
  const files = readdirSync(SRC, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
  const out: string[] = [];
  for (const file of files) {
    const code = readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/(^|[^:'"])\/\/.*$/gm, '$1');
    for (const m of code.matchAll(SPECIFIER)) {
      const spec = m[1] ?? m[2] ?? m[3] ?? '';
      if (spec === pkg || spec.startsWith(`${pkg}/`)) {
        out.push(relative(ROOT, file));
        break;
      }
    }
  }
  return out.sort();
}

describe('the store boundary, by the imports of src/', () => {
  it('imports kysely only under src/store/: the schema, migration, query files, the shared backend and the two dialects', () => {
    expect(importersOf('kysely')).toEqual([
      'src/store/backend.ts',
      'src/store/migrate.ts',
      'src/store/postgres/dialect.ts',
      'src/store/postgres/open.ts',
      'src/store/postgres/store.ts',
      'src/store/queries/context.ts',
      'src/store/queries/ledger.ts',
      'src/store/schema.ts',
      'src/store/sqlite/dialect.ts',
      'src/store/sqlite/file.ts',
      'src/store/sqlite/open.ts',
      'src/store/sqlite/store.ts',
    ]);
  });

  it('imports better-sqlite3 only under src/store/sqlite/', () => {
    expect(importersOf('better-sqlite3')).toEqual([
      'src/store/sqlite/connection.ts',
      'src/store/sqlite/file.ts',
      'src/store/sqlite/open.ts',
      'src/store/sqlite/thread-body.ts',
      'src/store/sqlite/writer-thread.ts',
    ]);
  });

  it('imports pg only under src/store/postgres/', () => {
    expect(importersOf('pg')).toEqual([
      'src/store/postgres/append.ts',
      'src/store/postgres/pool.ts',
      'src/store/postgres/read.ts',
      'src/store/postgres/store.ts',
      'src/store/postgres/verify.ts',
    ]);
  });

  it('gives callers no raw database: the Store interface names neither kysely nor a driver', () => {
    const types = readFileSync(join(SRC, 'store/types.ts'), 'utf8');
    expect(types).not.toMatch(/from 'kysely'|from 'better-sqlite3'|Kysely</);
    expect(types).not.toMatch(/readonly db\b/);
  });
});

const eslint = new ESLint({ cwd: ROOT, overrideConfig: [tseslint.configs.disableTypeChecked] });

/** The no-restricted-imports messages for `file` with `line` added at the top. */
async function importErrors(file: string, line: string): Promise<string[]> {
  const text = `${line}\n${readFileSync(join(ROOT, file), 'utf8')}`;
  const [result] = await eslint.lintText(text, { filePath: join(ROOT, file) });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

const KYSELY_MESSAGE =
  "'kysely' import is restricted from being used by a pattern. store boundary: only src/store/ imports kysely; use the Store interface or a query of src/store/queries/ (docs/architecture.md).";
const DRIVER_MESSAGE =
  "'better-sqlite3' import is restricted from being used by a pattern. store boundary: only src/store/sqlite/ imports better-sqlite3; the rest of the store is dialect-neutral (docs/architecture.md).";

describe('the store boundary, by eslint.config.js', () => {
  it('fails kysely in the audit and in the CLI', async () => {
    expect(await importErrors('src/audit/ledger.ts', "import { sql } from 'kysely';")).toEqual([KYSELY_MESSAGE]);
    expect(await importErrors('src/cli/commands/runs.ts', "import type { Kysely } from 'kysely';")).toEqual([
      KYSELY_MESSAGE,
    ]);
  });

  it('fails better-sqlite3 outside src/store/sqlite/, in the store itself too', async () => {
    expect(await importErrors('src/timetravel/store-source.ts', "import Database from 'better-sqlite3';")).toEqual([
      DRIVER_MESSAGE,
    ]);
    expect(await importErrors('src/store/queries/ledger.ts', "import Database from 'better-sqlite3';")).toEqual([
      DRIVER_MESSAGE,
    ]);
    expect(await importErrors('src/store/index.ts', "import Database from 'better-sqlite3';")).toEqual([
      DRIVER_MESSAGE,
    ]);
  });

  it('lets the query files use kysely and the SQLite backend use its driver', async () => {
    expect(await importErrors('src/store/queries/blocks.ts', "import { sql } from 'kysely';")).toEqual([]);
    expect(await importErrors('src/store/sqlite/read.ts', "import Database from 'better-sqlite3';")).toEqual([]);
  });

  it('keeps the layer rule in force on the store files that carry the boundary patterns', async () => {
    expect(await importErrors('src/store/queries/ledger.ts', "import '../../audit/ledger.js';")).toEqual([
      '\'../../audit/ledger.js\' import is restricted from being used by a pattern. layers: src/store (tier "state and store") may not import src/audit (tier "analyses"); see layers.json and docs/architecture.md.',
    ]);
    expect(await importErrors('src/store/sqlite/read.ts', "import '../../timetravel/index.js';")).toHaveLength(1);
  });
});
