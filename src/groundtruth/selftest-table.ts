// SPDX-License-Identifier: GPL-2.0-only
/**
 * The selftest as oracle (`npm run test:kernel`): the kernel's iommufd and iommufd_fail_nth selftests,
 * built from the package's sources, run once in the ground-truth VM; one row per test with its outcome
 * on the kernel, and its outcome under the model: the same sources built dynamically and run on this
 * machine under `ioptrace run --variant V` (model-run.ts), with the first failure the harness printed as
 * the model's reason.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildKernel, prepareSource } from './kernel-build.js';
import type { KernelBuild, Say } from './kernel-build.js';
import { SELFTEST_PROGRAMS, buildNativeProgram, buildSelftests } from './selftests.js';
import type { SelftestProgram } from './selftests.js';
import { countOutcomes, parseTap } from './tap.js';
import type { TapOutcome, TapResult } from './tap.js';
import { runUnderModel } from './model-run.js';
import type { ModelRun } from './model-run.js';
import { runVm } from './vm.js';
import { matchHostHugepages, usesHugetlb } from './hugepages.js';
import type { HostHugepages } from './hugepages.js';
import type { KernelReport, VmResult } from './vm.js';

/** A test the model's run of the program did not report (the program ended before it). */
export const MODEL_MISSING = 'missing';

/** The fixtures whose every test must agree between kernel and model (issue 14, item 5). */
export const ORACLE_FIXTURES = [
  'iommufd',
  'iommufd_ioas',
  'iommufd_mock_domain',
  'vfio_compat_mock_domain',
  'basic_fail_nth',
] as const;

export interface SelftestRow {
  program: SelftestProgram;
  test: string;
  fixture: string;
  kernel: TapOutcome | 'missing';
  model: TapOutcome | 'missing';
  /** The kernel's SKIP reason, if any. */
  reason: string | undefined;
  /** The first failure the harness printed for the test under the model, if it failed there. */
  modelReason: string | undefined;
}

/** Agreement of kernel and model, per fixture (fixture.variant for fixtures with variants). */
export interface FixtureAgreement {
  fixture: string;
  agree: number;
  disagree: number;
}

export interface ProgramSummary {
  program: SelftestProgram;
  exitStatus: number | undefined;
  guestSeconds: number | undefined;
  planned: number | undefined;
  counts: Record<TapOutcome, number>;
  /** The harness's own totals line, to cross-check the parse. */
  totals: TapResult['totals'];
}

/** The MM-mode accounting finding (issue 14): the program's JSON lines and the WARNs logged while it ran. */
export interface FindingRun {
  name: string;
  mode: 'mm' | 'user';
  exitStatus: number | undefined;
  steps: unknown[];
  warns: KernelReport[];
}

export const FINDING_PROGRAM = 'mm-exit-reattach';

export interface SelftestReport {
  kernel: KernelBuild;
  /** The hugetlb pool of this machine, for the model's column, against the VM's. */
  hostHugepages: HostHugepages;
  selftestsCached: boolean;
  vm: Omit<VmResult, 'console' | 'runs' | 'kmsg'>;
  programs: ProgramSummary[];
  rows: SelftestRow[];
  /** The model's runs, one per program. */
  model: Omit<ModelRun, 'tap' | 'reasons'>[];
  agreement: FixtureAgreement[];
  reports: KernelReport[];
  findings: FindingRun[];
  consoleLog: string;
}

export async function runSelftestOracle(say: Say, variant = 'upstream'): Promise<SelftestReport> {
  const kernel = await buildKernel(say);
  say(
    kernel.cached
      ? `kernel ${kernel.release} (${kernel.packageVersion}) cached: ${kernel.bzImage}`
      : `kernel built in ${kernel.buildSeconds.toFixed(0)} s`,
  );
  const src = await prepareSource(say);
  const selftests = await buildSelftests(src, say);
  const finding = await buildNativeProgram(src, FINDING_PROGRAM);
  const dynamic = await buildSelftests(src, say, false);
  const hostHugepages = matchHostHugepages(say);
  const modelRuns = new Map<SelftestProgram, ModelRun>();
  for (const p of SELFTEST_PROGRAMS) {
    say(`running ${p} under ioptrace run --variant ${variant}`);
    const run = await runUnderModel(dynamic.programs[p], variant);
    say(`${p} under the model: exit ${run.exitStatus ?? 'none'} in ${run.wallSeconds.toFixed(0)} s`);
    modelRuns.set(p, run);
  }
  const modes = ['mm', 'user'] as const;
  // After the selftests, so a WARN it provokes (and the taint) cannot change a selftest's outcome.
  const programs = [
    ...SELFTEST_PROGRAMS.map((p) => ({ name: p, file: selftests.programs[p] })),
    ...modes.map((mode) => ({ name: `${FINDING_PROGRAM}.${mode}`, file: finding, args: [mode] })),
  ];
  say(`booting ${kernel.bzImage} under qemu-system-x86_64 (no KVM) to run ${programs.map((p) => p.name).join(', ')}`);
  const vm = await runVm({ bzImage: kernel.bzImage, programs });
  const logDir = join(src.dir, 'runs');
  mkdirSync(logDir, { recursive: true });
  const consoleLog = join(logDir, `selftest-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
  writeFileSync(consoleLog, vm.console);
  const summaries: ProgramSummary[] = [];
  const rows: SelftestRow[] = [];
  for (const program of SELFTEST_PROGRAMS) {
    const run = vm.runs.find((r) => r.name === program);
    const tap = parseTap(run?.output ?? '');
    summaries.push({
      program,
      exitStatus: run?.exitStatus,
      guestSeconds: run?.endedAt === undefined || run.startedAt === undefined ? undefined : run.endedAt - run.startedAt,
      planned: tap.planned,
      counts: countOutcomes(tap.tests),
      totals: tap.totals,
    });
    const modelRun = modelRuns.get(program);
    const modelOf = new Map((modelRun?.tap.tests ?? []).map((t) => [t.name, t.outcome]));
    for (const t of tap.tests) {
      const model = modelOf.get(t.name) ?? MODEL_MISSING;
      rows.push({
        program,
        test: t.name,
        fixture: t.name.split('.')[0] ?? t.name,
        kernel: t.outcome,
        model,
        reason: t.reason,
        modelReason:
          model !== 'fail'
            ? undefined
            : hostHugepages.shortfall !== null && usesHugetlb(t.name)
              ? `host hugetlb pool: ${hostHugepages.shortfall}`
              : modelRun?.reasons[t.name],
      });
    }
    // A planned test that never printed a result line (the program crashed mid-run) is a row too.
    for (let n = tap.tests.length + 1; tap.planned !== undefined && n <= tap.planned; n++)
      rows.push({
        program,
        test: `#${n} (no result line)`,
        fixture: '?',
        kernel: 'missing',
        model: MODEL_MISSING,
        reason: undefined,
        modelReason: undefined,
      });
  }
  const findings = modes.map((mode): FindingRun => {
    const name = `${FINDING_PROGRAM}.${mode}`;
    const run = vm.runs.find((r) => r.name === name);
    const steps = (run?.output ?? '')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as unknown);
    return { name, mode, exitStatus: run?.exitStatus, steps, warns: vm.reports.filter((w) => w.during === name) };
  });
  const { console: _c, runs: _r, kmsg: _k, ...vmSummary } = vm;
  return {
    kernel,
    hostHugepages,
    selftestsCached: selftests.cached,
    vm: vmSummary,
    programs: summaries,
    rows,
    model: [...modelRuns.values()].map(({ tap: _t, reasons: _r, ...rest }) => rest),
    agreement: agreementOf(rows),
    reports: vm.reports,
    findings,
    consoleLog,
  };
}

/** Whether a row's fixture is one whose every test must end the same on kernel and model. */
export function inOracleScope(row: Pick<SelftestRow, 'fixture'>): boolean {
  return (ORACLE_FIXTURES as readonly string[]).includes(row.fixture);
}

/** The rows of the oracle's fixtures whose outcome differs between kernel and model. */
export function oracleDisagreements(rows: readonly SelftestRow[]): SelftestRow[] {
  return rows.filter((row) => inOracleScope(row) && row.kernel !== row.model);
}

/**
 * Exit 0 when the VM ran both programs to the end, every planned test printed its result, and every test
 * of the oracle's fixtures ended the same on kernel and model (a test missing from the model's run counts
 * as a disagreement).
 */
export function oracleExitCode(r: Pick<SelftestReport, 'vm' | 'programs' | 'rows'>): number {
  const complete =
    r.vm.completed &&
    r.programs.every((p) => p.exitStatus !== undefined && p.planned !== undefined) &&
    r.rows.every((row) => row.kernel !== 'missing');
  return complete && oracleDisagreements(r.rows).length === 0 ? 0 : 1;
}

/** Per fixture (with its variant where it has one), how many tests end the same on kernel and model. */
export function agreementOf(rows: readonly SelftestRow[]): FixtureAgreement[] {
  const by = new Map<string, FixtureAgreement>();
  for (const row of rows) {
    const parts = row.test.split('.');
    const fixture = parts.length === 3 ? `${parts[0]}.${parts[1]}` : row.fixture;
    const a = by.get(fixture) ?? { fixture, agree: 0, disagree: 0 };
    if (row.kernel === row.model) a.agree++;
    else a.disagree++;
    by.set(fixture, a);
  }
  return [...by.values()];
}
