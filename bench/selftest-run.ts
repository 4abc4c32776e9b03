// SPDX-License-Identifier: GPL-2.0-only
/**
 * B7's second figure: the wall time of the kernel's own selftests (`iommufd`, `iommufd_fail_nth`, built from
 * the Debian source as `npm run test:kernel` builds them) under `ioptrace run --variant v6.12.y`, with the
 * pass and fail counts of each. Needs the kernel source cache, so `npm run bench` runs it only with --kernel
 * (or --kernel-only).
 */

import { prepareSource } from '../src/groundtruth/kernel-build.js';
import { runUnderModel } from '../src/groundtruth/model-run.js';
import { SELFTEST_PROGRAMS, buildSelftests } from '../src/groundtruth/selftests.js';
import { loadAverage } from './timing.js';

export interface SelftestRunMeasurement {
  program: string;
  wallSeconds: number;
  pass: number;
  fail: number;
  exitStatus: number | null;
  load: number;
}

export async function measureSelftestRuns(variant = 'v6.12.y'): Promise<SelftestRunMeasurement[]> {
  const say = (msg: string): void => {
    process.stderr.write(`B7 selftest: ${msg}\n`);
  };
  const src = await prepareSource(say);
  const dynamic = await buildSelftests(src, say, false);
  const out: SelftestRunMeasurement[] = [];
  for (const program of SELFTEST_PROGRAMS) {
    const run = await runUnderModel(dynamic.programs[program], variant);
    const tests = run.tap.tests;
    out.push({
      program,
      wallSeconds: run.wallSeconds,
      pass: tests.filter((t) => t.outcome === 'pass').length,
      fail: tests.filter((t) => t.outcome === 'fail').length,
      exitStatus: run.exitStatus,
      load: loadAverage(),
    });
  }
  return out;
}
