// SPDX-License-Identifier: GPL-2.0-only
/**
 * The built ioptrace CLI, run as a user runs it: `node dist/src/cli/bin.js ARGS` in a child process. dist/
 * is what tsc compiles (tests/support/build-dist.ts builds it before the e2e tests when src is newer), so
 * the e2e tests check the JavaScript that ships, not the TypeScript source. The child is awaited: a
 * synchronous spawn would stop the test worker's event loop while it runs (tests/README.md).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');

/** The executable of package.json's "bin", as tsc builds it. */
export const BUILT_CLI = join(ROOT, 'dist/src/cli/bin.js');

/** A child script of tests/support/children/ as tsc builds it for the e2e tests (tsconfig.e2e.json). */
export function builtChild(name: string): string {
  return join(ROOT, 'dist/tests/support/children', `${name}.js`);
}

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI with `args` and resolves with its exit status and output. */
export function cli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return new Promise((resolve_, reject) => {
    const child = spawn(process.execPath, [BUILT_CLI, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve_({ status: code ?? -1, stdout, stderr }));
  });
}

/** A new empty directory under the system's temporary directory (left for the system to clean). */
export function freshDir(): string {
  return mkdtempSync(join(tmpdir(), 'ioptrace-e2e-'));
}
