// SPDX-License-Identifier: GPL-2.0-only
// The long suite: sweeps of minutes that need not run on every `npm test` but run in CI (.ci/run) after it.
// Same rules as the main suite (vitest.config.ts, tests/README.md): yield every few seconds.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/long/**/*.test.ts'],
    setupFiles: ['tests/setup.ts'],
    // The concurrency test of the PostgreSQL store (tests/long/pg-concurrency.test.ts) needs a server.
    globalSetup: ['tests/support/pg-global.ts'],
    testTimeout: 1_200_000,
    hookTimeout: 180_000,
    pool: 'forks',
  },
});
