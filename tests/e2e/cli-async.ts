// Runs the ioptrace CLI from source as a child process without blocking the test worker's event loop
// (each run takes seconds on a loaded machine; spawnSync would stall the worker's RPC meanwhile).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, type CliResult } from './cli.js';

const VITE_NODE = join(ROOT, 'node_modules/.bin/vite-node');

export function cliAsync(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(VITE_NODE, [join(ROOT, 'src/cli/bin.ts'), '--', ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) =>
      resolve({
        status: code ?? -1,
        stdout,
        stderr: stderr
          .split('\n')
          .filter((l) => !l.includes('nodedir'))
          .join('\n'),
      }),
    );
  });
}
