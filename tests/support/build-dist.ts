// SPDX-License-Identifier: GPL-2.0-only
/**
 * Global setup of the e2e project (vitest.config.ts): builds dist/ with tsc (tsconfig.e2e.json: the
 * package build plus the child scripts of tests/support/children/) when any of its inputs is newer than
 * the last build, so that the e2e tests run the CLI that ships. An up-to-date dist costs one walk of the
 * inputs' modification times; a failed build fails the run with tsc's output.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './built-cli.js';

/** What the build reads: sources, the configs, and the test files the children import. */
const INPUTS = [
  'src',
  'migrations',
  'bench',
  'tests/support/children',
  'tests/support/store-rows.ts',
  'tsconfig.json',
  'tsconfig.build.json',
  'tsconfig.e2e.json',
  'package.json',
];
/** Written after a successful build: its time is the build's. */
const STAMP = join(ROOT, 'dist/.e2e-build');

function newest(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = stat.mtimeMs;
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

export async function setup(): Promise<void> {
  const inputs = INPUTS.map((p) => join(ROOT, p))
    .filter((p) => existsSync(p))
    .reduce((latest, p) => Math.max(latest, newest(p)), 0);
  if (existsSync(STAMP) && statSync(STAMP).mtimeMs >= inputs) return;
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  try {
    await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.e2e.json'], {
      cwd: ROOT,
      maxBuffer: 16 << 20,
    });
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
    throw new Error(`tsc -p tsconfig.e2e.json failed: the e2e tests need a built dist/\n${stdout}${stderr}`);
  }
  writeFileSync(STAMP, `built for the e2e tests at ${new Date().toISOString()}\n`);
}
