// SPDX-License-Identifier: GPL-2.0-only
// The CLI (and test helper scripts) bundled once per test file with esbuild, packages left in node_modules,
// and run with plain node as asynchronous child processes: a vite-node start costs seconds on a loaded
// machine, and a synchronous spawn would block the test worker's event loop meanwhile.
import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { tempDir } from '../int/helpers/store-fixtures.js';
import { ROOT, type CliResult } from './cli.js';

export interface Bundle {
  /** Path of the bundled entry `name` (run it with process.execPath). */
  script: (name: string) => string;
  /** Runs the bundled CLI: resolves with its exit status and output. */
  cli: (args: string[], opts?: { cwd?: string; env?: Record<string, string> }) => Promise<CliResult>;
}

/** Registers beforeAll/afterAll hooks that build `entries` (name: path from the repository root) and the CLI. */
export function useBundle(entries: Record<string, string> = {}): Bundle {
  const out = tempDir();
  beforeAll(async () => {
    symlinkSync(join(ROOT, 'node_modules'), join(out.dir, 'node_modules'));
    const entryPoints: Record<string, string> = { bin: join(ROOT, 'src/cli/bin.ts') };
    for (const [name, path] of Object.entries(entries)) entryPoints[name] = join(ROOT, path);
    await build({
      entryPoints,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outdir: out.dir,
      outExtension: { '.js': '.mjs' },
      packages: 'external',
      logLevel: 'error',
    });
  });
  afterAll(() => out.remove());
  const script = (name: string): string => join(out.dir, `${name}.mjs`);
  return {
    script,
    cli: (args, opts = {}) =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, [script('bin'), ...args], {
          cwd: opts.cwd ?? ROOT,
          env: { ...process.env, ...opts.env, NO_COLOR: '1' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.on('exit', (status) => resolve({ status: status ?? -1, stdout, stderr }));
      }),
  };
}
