// SPDX-License-Identifier: GPL-2.0-only
/**
 * The initramfs of a ground-truth boot: busybox (static), our /init (native/kernel/init.sh), and the
 * programs to run, in /tests, with /tests/plan saying in which order and with which arguments.
 */
import { readFileSync } from 'node:fs';
import { cpioNewcGzip } from './cpio.js';
import type { CpioEntry } from './cpio.js';
import { nativeFile } from './paths.js';

export const BUSYBOX = '/bin/busybox';

export interface PlannedProgram {
  /** The name in /tests and in the console markers: letters, digits, '.', '_' and '-'. */
  name: string;
  /** The static executable on this machine. */
  file: string;
  args?: readonly string[];
}

export function planText(programs: readonly PlannedProgram[]): string {
  const seen = new Set<string>();
  return programs
    .map((p) => {
      if (!/^[A-Za-z0-9._-]+$/.test(p.name)) throw new Error(`bad program name for the VM: "${p.name}"`);
      if (seen.has(p.name)) throw new Error(`program "${p.name}" is planned twice`);
      seen.add(p.name);
      for (const a of p.args ?? [])
        if (!/^[A-Za-z0-9._=:,/+-]+$/.test(a)) throw new Error(`argument "${a}" of ${p.name} needs quoting`);
      return [p.name, ...(p.args ?? [])].join(' ') + '\n';
    })
    .join('');
}

/** A data file for the programs (a batch of traces), at a path under /tests. */
export interface ExtraFile {
  /** Relative to the initramfs root, under tests/. */
  path: string;
  data: Buffer;
}

export function initramfsEntries(programs: readonly PlannedProgram[], files: readonly ExtraFile[] = []): CpioEntry[] {
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'tmp', 'tests', 'root'].map((path): CpioEntry => ({ kind: 'dir', path })),
    { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { kind: 'file', path: 'bin/busybox', data: readFileSync(BUSYBOX), mode: 0o755 },
    { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    { kind: 'file', path: 'init', data: readFileSync(nativeFile('kernel', 'init.sh')), mode: 0o755 },
    { kind: 'file', path: 'tests/plan', data: Buffer.from(planText(programs)) },
  ];
  for (const p of programs)
    entries.push({ kind: 'file', path: `tests/${p.name}`, data: readFileSync(p.file), mode: 0o755 });
  for (const f of files) {
    if (!/^tests\/[A-Za-z0-9._-]+$/.test(f.path)) throw new Error(`bad data file path for the VM: "${f.path}"`);
    entries.push({ kind: 'file', path: f.path, data: f.data, mode: 0o644 });
  }
  return entries;
}

export function buildInitramfs(programs: readonly PlannedProgram[], files: readonly ExtraFile[] = []): Buffer {
  return cpioNewcGzip(initramfsEntries(programs, files));
}
