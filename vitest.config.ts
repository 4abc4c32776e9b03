// SPDX-License-Identifier: GPL-2.0-only
// How the suite stays green on a loaded 2-core machine (details and measurements: tests/README.md):
// - the worker's RPC with the main process times out after 60 s without a turn of the worker's event loop,
//   and the runner goes from test to test with microtasks only: tests/setup.ts yields after every test, and
//   a test longer than a few seconds yields inside (tests/support/yield.ts), or runs in a child process;
// - sweeps of minutes go to the long suite (tests/long/, vitest.long.config.ts, `npm run test:long`),
//   which CI runs after `npm test`;
// - pool 'forks' keeps vitest's default of (cores - 1) workers: one worker on 2 cores, so the main
//   process and the CLI children the e2e tests spawn keep a core;
// - testTimeout catches a hung test, not a slow one: a loaded machine runs a test 3-4 times slower.
// Four projects: the tests of the code (main), and the tests of the built CLI (e2e: tests/e2e and
// tests/native run `node dist/src/cli/bin.js`), whose global setup builds dist/ with tsc when src is
// newer; and the tests on both store backends (postgres: tests/contract and tests/pg), whose global setup
// starts a throwaway PostgreSQL server (tests/support/pg-global.ts); the tests of the built CLI on PostgreSQL
// (e2e-postgres: tests/e2e/*-postgres.test.ts) need both setups. Vitest runs a project's global setup only when some of its tests are to run, so a run of unit
// tests never waits for a build.
import { defineConfig } from 'vitest/config';

const BUILT = ['tests/e2e/**/*.test.ts', 'tests/native/**/*.test.ts', 'tests/web/browser.test.ts'];
// The tests that run on both backends: their global setup starts a throwaway PostgreSQL server.
const POSTGRES = ['tests/contract/**/*.test.ts', 'tests/pg/**/*.test.ts'];
// The tests of the built CLI on a PostgreSQL store: both global setups.
const BUILT_POSTGRES = ['tests/e2e/**/*-postgres.test.ts'];

export default defineConfig({
  test: {
    setupFiles: ['tests/setup.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: ['tests/**/*.test.ts'],
          exclude: ['tests/long/**', 'tests/kernel/**', ...BUILT, ...POSTGRES, '**/node_modules/**'],
        },
      },
      {
        extends: true,
        test: { name: 'postgres', include: POSTGRES, globalSetup: ['tests/support/pg-global.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: BUILT,
          exclude: [...BUILT_POSTGRES, '**/node_modules/**'],
          globalSetup: ['tests/support/build-dist.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e-postgres',
          include: BUILT_POSTGRES,
          globalSetup: ['tests/support/build-dist.ts', 'tests/support/pg-global.ts'],
        },
      },
    ],
  },
});
