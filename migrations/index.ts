// SPDX-License-Identifier: GPL-2.0-only
/**
 * Every migration, by name, for kysely's Migrator. A static list rather than a folder scan, so it works the
 * same from dist/, from vitest and from a bundle. Names sort in the order they run.
 */

import type { Migration } from 'kysely';
import * as m0001 from './0001_initial.js';
import * as m0002 from './0002_run_failure.js';
import * as m0003 from './0003_fuzz_failures.js';
import * as m0004 from './0004_fuzz_claims.js';

export const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_run_failure': m0002,
  '0003_fuzz_failures': m0003,
  '0004_fuzz_claims': m0004,
};
