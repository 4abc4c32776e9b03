// SPDX-License-Identifier: GPL-2.0-only
// The kernel suite: tests that boot the ground-truth kernel in QEMU (`npm run test:kernel`, after the
// selftest table). Not part of `npm test`: the first run builds the kernel (minutes to an hour).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/kernel/**/*.test.ts'],
    setupFiles: ['tests/setup.ts'],
    testTimeout: 3_600_000,
    hookTimeout: 180_000,
    pool: 'forks',
  },
});
