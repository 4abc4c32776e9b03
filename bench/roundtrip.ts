// SPDX-License-Identifier: GPL-2.0-only
/**
 * B7 (first part): the round trip of a trivial ioctl (IOMMU_IOAS_IOVA_RANGES) through the preload library,
 * the server of `ioptrace run` and the model, as the program sees it. bench/native/roundtrip.c times each
 * call with CLOCK_MONOTONIC and prints the median, p99 and minimum; it runs under the built CLI, like a
 * user's program. Needs the machine's C compiler; without one there is no figure.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/lib/paths.js';
import { loadAverage } from './timing.js';

export interface RoundtripMeasurement {
  calls: number;
  medianUs: number;
  p99Us: number;
  minUs: number;
  /** The one-minute load average before and after the calls. */
  loadBefore: number;
  loadAfter: number;
}

const LINE = /round trip over (\d+) calls: median ([\d.]+) us, p99 ([\d.]+) us, min ([\d.]+) us/;

/** The program's summary line, parsed; an error naming the output when it has none. */
export function parseRoundtrip(stdout: string): Pick<RoundtripMeasurement, 'calls' | 'medianUs' | 'p99Us' | 'minUs'> {
  const m = LINE.exec(stdout);
  if (m === null) throw new Error(`B7: the round-trip program printed no summary line:\n${stdout}`);
  return { calls: Number(m[1]), medianUs: Number(m[2]), p99Us: Number(m[3]), minUs: Number(m[4]) };
}

export function measureRoundtrip(calls: number): RoundtripMeasurement {
  const root = packageRoot();
  const dir = mkdtempSync(join(tmpdir(), 'ioptrace-b7-'));
  try {
    execFileSync('sh', [join(root, 'scripts/build-native.sh')], { stdio: 'inherit' });
    const program = join(dir, 'roundtrip');
    execFileSync(process.env['CC'] ?? 'cc', ['-O2', '-Wall', '-o', program, join(root, 'bench/native/roundtrip.c')]);
    const cli = join(root, 'dist/src/cli/bin.js');
    const loadBefore = loadAverage();
    const stdout = execFileSync(
      process.execPath,
      [cli, 'run', '--db', join(dir, 'runs.db'), '--', program, String(calls)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    );
    return { ...parseRoundtrip(stdout), loadBefore, loadAfter: loadAverage() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
