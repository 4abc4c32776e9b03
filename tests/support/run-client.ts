// SPDX-License-Identifier: GPL-2.0-only
/**
 * Running a C client of tests/native under the built `ioptrace run`: build it with the machine's cc, run it
 * with --trace-out and --json-out, and check that its trace replays to the run's digest and head.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ROOT, cli } from './built-cli.js';

/** What tests/native/map_unmap.c prints when every call is answered as a 6.12 kernel answers it. */
export const MAP_UNMAP_STDOUT: readonly string[] = [
  'ioas_alloc ok id=1',
  'mock_domain ok stdev=2 hwpt=4 idev=3',
  'map ok iova=0x1000000',
  'check_map ok',
  'check_refs(1) ok',
  'check_refs(0) EINVAL',
  'ioas_alloc ok id=5',
  'copy ok dst_iova=0x4000',
  'check_refs(1) after copy ok',
  'unmap ok length=16384',
  'unmap again ENOENT',
  'check_refs(0) after unmap ok',
  'destroy ioas with device EBUSY',
  'destroy hwpt EBUSY',
  'destroy stdev ok',
  'destroy ioas ok',
  'destroy ioas again ENOENT',
  'unmap all of ioas2 ok length=16384',
  'ioas id reused: ioas_alloc ok id=1',
];

/** The ioctls tests/native/map_unmap.c issues, by name, as a run or a recording counts them. */
export const MAP_UNMAP_IOCTLS: Readonly<Record<string, number>> = {
  IOMMU_DESTROY: 5,
  IOMMU_IOAS_ALLOC: 3,
  IOMMU_IOAS_COPY: 1,
  IOMMU_IOAS_MAP: 1,
  IOMMU_IOAS_UNMAP: 3,
  'IOMMU_TEST_CMD(MD_CHECK_MAP)': 1,
  'IOMMU_TEST_CMD(MD_CHECK_REFS)': 4,
  'IOMMU_TEST_CMD(MOCK_DOMAIN)': 1,
};

export const haveCc = spawnSync('cc', ['--version']).status === 0;

export interface RunReport {
  run: number;
  digest: string;
  head: string;
  exit_status: number;
  ops: number;
  violations: unknown[];
  warns: unknown[];
  mismatches: { field: string; expected: unknown; actual: unknown }[];
  ioctls: Record<string, number>;
  unserved: Record<string, number>;
  results: { op: string; errno: string | null }[];
}

export interface ClientRun {
  stdout: string[];
  stderr: string;
  status: number;
  report: RunReport;
  trace: string;
}

export function buildClient(dir: string, name: string): string {
  const out = join(dir, name);
  execFileSync('cc', ['-Wall', '-Werror', '-O1', '-o', out, join(ROOT, 'tests/native', `${name}.c`)]);
  return out;
}

export async function runClient(dir: string, name: string, runArgs: string[] = []): Promise<ClientRun> {
  const trace = join(dir, `${name}.jsonl`);
  const json = join(dir, `${name}.json`);
  const program = buildClient(dir, name);
  const r = await cli([
    'run',
    ...runArgs,
    '--db',
    join(dir, 'runs.db'),
    '--trace-out',
    trace,
    '--json-out',
    json,
    '--',
    program,
  ]);
  return {
    stdout: r.stdout.trimEnd().split('\n'),
    stderr: r.stderr,
    status: r.status,
    report: JSON.parse(readFileSync(json, 'utf8')) as RunReport,
    trace,
  };
}

/** Replaying the trace a run wrote, into a fresh database, ends on the run's digest and head. */
export async function expectReplaysTheSame(
  dir: string,
  trace: string,
  report: RunReport,
  variant?: string,
): Promise<void> {
  const r = await cli([
    'replay',
    trace,
    ...(variant === undefined ? [] : ['--variant', variant]),
    '--json',
    '--db',
    join(dir, `replay-${report.run}-${report.digest}.db`),
  ]);
  const replayed = JSON.parse(r.stdout) as RunReport;
  expect(replayed.digest).toBe(report.digest);
  expect(replayed.head).toBe(report.head);
  expect(replayed.ops).toBe(report.ops);
}
