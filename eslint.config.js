// SPDX-License-Identifier: GPL-2.0-only
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layers of src/ (layers.json, shared with tests/unit/architecture/layers.test.ts): a folder imports
 * only from lower tiers. One config object per folder and depth below src/, because a relative import names
 * its target by counting `../` from the importing file.
 *
 * The store's dialect boundary rides on the same rule (a later config object for the same files would
 * replace these patterns, not add to them): kysely is imported only under src/store/, better-sqlite3
 * only under src/store/sqlite/ and pg only under src/store/postgres/ (tests/unit/architecture/store-boundary.test.ts checks the same by walking
 * the imports). bench/, tests/ and migrations/ are outside src/: they measure, tamper with and migrate
 * the SQLite file itself.
 */
const KYSELY = {
  regex: '^kysely(?:/|$)',
  message:
    'store boundary: only src/store/ imports kysely; use the Store interface or a query of src/store/queries/ (docs/architecture.md).',
};
const SQLITE_DRIVER = {
  regex: '^better-sqlite3(?:/|$)',
  message:
    'store boundary: only src/store/sqlite/ imports better-sqlite3; the rest of the store is dialect-neutral (docs/architecture.md).',
};

const PG_DRIVER = {
  regex: '^pg(?:/|$)',
  message:
    'store boundary: only src/store/postgres/ imports pg; the rest of the store is dialect-neutral (docs/architecture.md).',
};

function layerRules() {
  const { tiers } = JSON.parse(readFileSync(join(import.meta.dirname, 'layers.json'), 'utf8'));
  const tierOf = new Map(tiers.flatMap((t, i) => t.folders.map((f) => [f, { rank: i, name: t.name }])));
  const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // How an import at `depth` directories below src/ names `target` (a folder or the root index.ts).
  const targetRegex = (depth, target) => {
    const up = depth === 0 ? '\\./' : `(?:\\.\\./){${depth}}`;
    const name = target.endsWith('.ts') ? `${escape(target.slice(0, -3))}\\.js$` : `${escape(target)}(?:/|$)`;
    return `^${up}${name}`;
  };
  const configs = [];
  for (const [folder, { rank, name }] of tierOf) {
    const forbidden = [...tierOf].filter(([other, t]) => other !== folder && t.rank >= rank);
    const depths = folder.endsWith('.ts') ? [0] : [1, 2, 3, 4];
    for (const depth of depths) {
      const files = depth === 0 ? [`src/${folder}`] : [`src/${folder}/${'*/'.repeat(depth - 1)}*.ts`];
      const patterns = forbidden.map(([other, t]) => ({
        regex: targetRegex(depth, other),
        message: `layers: src/${folder} (tier "${name}") may not import src/${other} (tier "${t.name}"); see layers.json and docs/architecture.md.`,
      }));
      const rule = (drivers) => ({ 'no-restricted-imports': ['error', { patterns: [...patterns, ...drivers] }] });
      if (folder !== 'store') {
        configs.push({ files, rules: rule([KYSELY, SQLITE_DRIVER, PG_DRIVER]) });
      } else if (depth === 2) {
        // src/store/sqlite/*.ts and src/store/postgres/*.ts may use their own driver; queries/ neither.
        configs.push({
          files,
          ignores: ['src/store/sqlite/**', 'src/store/postgres/**'],
          rules: rule([SQLITE_DRIVER, PG_DRIVER]),
        });
        configs.push({ files: ['src/store/sqlite/*.ts'], rules: rule([PG_DRIVER]) });
        configs.push({ files: ['src/store/postgres/*.ts'], rules: rule([SQLITE_DRIVER]) });
      } else {
        configs.push({ files, rules: rule([SQLITE_DRIVER, PG_DRIVER]) });
      }
    }
  }
  return configs;
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'replays/**', 'bench/results.json'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // CLI option values arrive as `unknown` from node:util parseArgs and are printed with String().
      '@typescript-eslint/no-base-to-string': 'off',
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true, allowNullish: true },
      ],
    },
  },
  ...layerRules(),
  {
    // Spread arguments go on the call stack one by one: past about 100k elements (a long run's ledger,
    // a big report) Math.max(...xs) or out.push(...xs) throws RangeError. src/lib/arrays.ts has maxOf,
    // minOf and pushAll; a forwarded fixed-size tuple may be spread with a disable comment saying so.
    files: ['src/**/*.ts', 'bench/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'CallExpression > SpreadElement.arguments, NewExpression > SpreadElement.arguments',
          message:
            'No spread into arguments (unbounded arrays overflow the stack): use maxOf/minOf/pushAll of src/lib/arrays.ts or a loop.',
        },
      ],
      'prefer-spread': 'off',
    },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);
