// SPDX-License-Identifier: GPL-2.0-only
// A fuzzing farm on one SQLite store: `fuzz --workers 3` and three concurrent `fuzz --record` processes on
// the same seeds. The oracle is the single in-memory campaign over the same seeds (`fuzz` without --record):
// the store must hold exactly its distinct failures with exactly its counts, each claimed once (one trace
// run and one reproducer run per failure and no other run), whichever worker got there first.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { replayFailures } from '../../src/fuzz/fuzz.js';
import { generateTrace } from '../../src/fuzz/generate.js';
import { resolveVariant } from '../../src/kernel/variants.js';
import { cli, freshDir, type CliResult } from '../support/built-cli.js';
import { yieldToEventLoop } from '../support/yield.js';

const SLOW = 600_000;
const ITERATIONS = 12;
const COMMON = ['--variant', 'v3', '--ops', '40', '--shrink-budget', '20'];

interface CampaignJson {
  traces: number;
  findings: { kind: string; function: string; count: number; seed: number }[];
}

interface FailureJson {
  variant: string;
  kind: string;
  fn: string;
  seed: number;
  ops: number;
  count: number;
  traceRun: number | null;
  reproducerRun: number | null;
  reproducerOps: number | null;
}

interface RunJson {
  id: number;
  status: string;
  tracePath: string;
}

function json<T>(out: CliResult): T {
  if (out.status > 1) throw new Error(`exit ${out.status}: ${out.stderr}`);
  return JSON.parse(out.stdout) as T;
}

/**
 * The single campaign over seeds 1..ITERATIONS as the built CLI runs it in memory (its counts), and every
 * seed that shows each failure (each trace replayed here, with a turn of the event loop between traces).
 */
async function oracle(dir: string): Promise<{ counts: string[]; seeds: Map<string, number[]> }> {
  const single = json<CampaignJson>(
    await cli([
      'fuzz',
      ...COMMON,
      '--iterations',
      String(ITERATIONS),
      '--shrink-budget',
      '0',
      '--json',
      '--out',
      join(dir, 'single'),
    ]),
  );
  expect(single.traces).toBe(ITERATIONS);
  const { fixes } = resolveVariant('v3');
  const seeds = new Map<string, number[]>();
  for (let seed = 1; seed <= ITERATIONS; seed++) {
    const trace = generateTrace({ seed, maxOps: 40 });
    for (const f of replayFailures(trace.header, trace.ops, 'v3', fixes) ?? []) {
      const key = `${f.kind} ${f.fn}`;
      seeds.set(key, [...(seeds.get(key) ?? []), seed]);
    }
    await yieldToEventLoop();
  }
  const counts = single.findings.map((f) => `${f.kind} ${f.function} ${f.count}`).sort();
  expect([...seeds].map(([key, s]) => `${key} ${s.length}`).sort()).toEqual(counts);
  return { counts, seeds };
}

async function checkStore(db: string, expected: { counts: string[]; seeds: Map<string, number[]> }): Promise<void> {
  const failures = json<FailureJson[]>(await cli(['runs', '--failures', '--json', '--db', db]));
  expect(failures.map((f) => `${f.kind} ${f.fn} ${f.count}`).sort()).toEqual(expected.counts);
  for (const f of failures) {
    expect(f.variant).toBe('v3');
    expect(f.ops).toBe(40);
    expect(expected.seeds.get(`${f.kind} ${f.fn}`)).toContain(f.seed);
    expect(f.traceRun).not.toBeNull();
    expect(f.reproducerRun).not.toBeNull();
  }
  // One trace run and one reproducer run per failure, and nothing else: no worker that lost a claim wrote.
  const runs = json<RunJson[]>(await cli(['runs', '--json', '--db', db]));
  const claimedRuns = failures.flatMap((f) => [f.traceRun, f.reproducerRun]).sort((a, b) => (a ?? 0) - (b ?? 0));
  expect(runs.map((r) => r.id)).toEqual(claimedRuns);
  expect(runs.length).toBe(2 * failures.length);
  for (const f of failures) {
    const trace = runs.find((r) => r.id === f.traceRun);
    const stem = `${f.kind === 'warn' ? 'warn' : f.kind}-${f.fn}-seed${f.seed}`;
    expect(trace?.tracePath).toMatch(new RegExp(`/${stem}\\.jsonl$`));
    expect(runs.find((r) => r.id === f.reproducerRun)?.tracePath).toMatch(new RegExp(`/${stem}\\.min\\.jsonl$`));
  }
  const verify = await cli(['verify', '--db', db]);
  expect(verify.status).toBe(0);
}

describe('a fuzzing farm on one SQLite store', () => {
  it(
    "fuzz --workers 3 holds exactly the single campaign's failures and counts, each claimed once",
    async () => {
      const dir = freshDir();
      const expected = await oracle(dir);
      expect(expected.counts).toEqual([
        'double_unpin batch_unpin 1',
        'warn iommu_unmap_nofail 1',
        'warn iopt_pages_sub_npinned 1',
        'warn iopt_release_pages 1',
        'warn pfn_reader_destroy 1',
        'warn pfn_reader_user_pin 2',
      ]);
      const db = join(dir, 'farm.db');
      const farm = await cli([
        'fuzz',
        ...COMMON,
        '--iterations',
        String(ITERATIONS),
        '--workers',
        '3',
        '--json',
        '--out',
        join(dir, 'out'),
        '--db',
        db,
      ]);
      expect(farm.status).toBe(1);
      const report = json<{ workers: number; traces: number; newFailures: number; failures: FailureJson[] }>(farm);
      expect([report.workers, report.traces, report.newFailures]).toEqual([3, ITERATIONS, expected.counts.length]);
      await checkStore(db, expected);
    },
    SLOW,
  );

  it(
    'three fuzz --record processes racing on the same seeds: the primary key lets one claim each failure',
    async () => {
      const dir = freshDir();
      const expected = await oracle(dir);
      const db = join(dir, 'race.db');
      // A new file: the three also race to create and migrate the store (open.ts makes that safe).
      const workers = await Promise.all(
        [0, 1, 2].map((k) =>
          cli([
            'fuzz',
            ...COMMON,
            '--iterations',
            String(ITERATIONS),
            '--record',
            '--json',
            '--out',
            join(dir, `w${k}`),
            '--db',
            db,
          ]),
        ),
      );
      const reports = workers.map((w) => json<{ traces: number; claimed: unknown[]; newHits: number }>(w));
      expect(reports.map((r) => r.traces)).toEqual([ITERATIONS, ITERATIONS, ITERATIONS]);
      // Every failure claimed by exactly one of them; every hit counted by exactly one of them.
      expect(reports.reduce((n, r) => n + r.claimed.length, 0)).toBe(expected.counts.length);
      const hits = expected.counts.reduce((n, c) => n + Number(c.split(' ').pop()), 0);
      expect(reports.reduce((n, r) => n + r.newHits, 0)).toBe(hits);
      await checkStore(db, expected);
    },
    SLOW,
  );
});
