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
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    exclude: ['tests/long/**', 'tests/kernel/**', '**/node_modules/**'],
    setupFiles: ['tests/setup.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: 'forks',
  },
});
