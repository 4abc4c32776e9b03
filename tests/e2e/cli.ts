// Runs the ioptrace CLI from source as a separate process, as a user would run the built one.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
const VITE_NODE = join(ROOT, 'node_modules/.bin/vite-node');

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function cli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): CliResult {
  const r = spawnSync(VITE_NODE, [join(ROOT, 'src/cli/bin.ts'), '--', ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env, NO_COLOR: '1' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return {
    status: r.status ?? -1,
    stdout: r.stdout,
    stderr: r.stderr
      .split('\n')
      .filter((l) => !l.includes('nodedir'))
      .join('\n'),
  };
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'ioptrace-e2e-'));
}
