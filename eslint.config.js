// SPDX-License-Identifier: GPL-2.0-only
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
