// SPDX-License-Identifier: GPL-2.0-only
/**
 * Global setup of the test projects that need PostgreSQL (vitest.config.ts's `postgres` project, the long
 * suite): starts one throwaway server (pg-server.ts) for the whole run and stops it at the end; each test
 * file makes its own database on it (freshDatabase). IOPTRACE_TEST_PG=postgres://... uses that server
 * instead (its user must be able to CREATE DATABASE).
 *
 * Without a server the PostgreSQL describes are skipped with the reason printed, except under CI=true,
 * where a missing server fails the run: CI must test both backends.
 */
import type { TestProject } from 'vitest/node';
import { startPgServer, type PgServer } from './pg-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The superuser URL of the test server; '' when none could be started. */
    pgUrl: string;
    /** Why there is no server ('' when there is). */
    pgSkip: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const given = process.env['IOPTRACE_TEST_PG'];
  if (given !== undefined && given !== '') {
    project.provide('pgUrl', given);
    project.provide('pgSkip', '');
    return () => Promise.resolve();
  }
  let server: PgServer | undefined;
  try {
    server = await startPgServer();
    project.provide('pgUrl', server.url);
    project.provide('pgSkip', '');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (process.env['CI'] === 'true') throw error;
    console.warn(`PostgreSQL tests skipped: ${reason}`);
    project.provide('pgUrl', '');
    project.provide('pgSkip', reason);
  }
  return async () => {
    await server?.stop();
  };
}
