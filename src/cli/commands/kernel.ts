// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace kernel build` and `ioptrace kernel selftest`: the ground truth, a real 6.12 kernel with the
 * iommufd mock driver, built from Debian's linux-source-6.12 into a cache outside the repository and
 * booted under QEMU.
 */
import { UsageError } from '../errors.js';
import { buildKernel, formatSeconds } from '../../groundtruth/kernel-build.js';
import { cacheRoot } from '../../groundtruth/paths.js';
import { oracleExitCode, runSelftestOracle } from '../../groundtruth/selftest-table.js';
import type { Command, CommandEnv, CommandOutput } from '../command.js';
import { table } from '../output.js';

function sayTo(env: CommandEnv): (msg: string) => void {
  return (msg) => env.stderr.write(`ioptrace kernel: ${msg}\n`);
}

async function build(env: CommandEnv): Promise<CommandOutput> {
  const k = await buildKernel(sayTo(env));
  return {
    exitCode: 0,
    json: k,
    text: [
      `kernel ${k.release} (package ${k.packageVersion}, config key ${k.key})${k.cached ? ', cached' : ''}`,
      `  ${k.bzImage} (${k.bytes} bytes), built in ${formatSeconds(k.buildSeconds)}`,
      `  cache: ${cacheRoot()}`,
    ],
  };
}

async function selftest(env: CommandEnv, variant: string): Promise<CommandOutput> {
  const r = await runSelftestOracle(sayTo(env), variant);
  const failing = r.rows.filter((row) => row.kernel === 'fail' || row.kernel === 'missing');
  const text = [
    ...table(
      ['test', 'kernel', 'model', 'model failed at'],
      r.rows.map((row) => [`${row.program}: ${row.test}`, row.kernel, row.model, row.modelReason ?? '']),
    ),
    '',
    ...table(
      ['fixture', 'agree', 'disagree'],
      r.agreement.map((a) => [a.fixture, String(a.agree), String(a.disagree)]),
    ),
    '',
    `kernel ${r.kernel.release} (${r.kernel.packageVersion}): ${r.vm.release ?? '?'}; build ${r.kernel.cached ? 'cached' : 'new'} (${formatSeconds(r.kernel.buildSeconds)} when built)`,
    `VM: ${r.vm.wallSeconds.toFixed(1)} s wall (boot to /init ${r.vm.bootSeconds?.toFixed(2) ?? '?'} s guest time), hugepages ${r.vm.hugepages ?? '?'}`,
    ...r.programs.map(
      (p) =>
        `${p.program}: ${p.counts.pass} pass, ${p.counts.fail} fail, ${p.counts.skip} skip of ${p.planned ?? '?'} planned; exit ${p.exitStatus ?? 'none'}; ${p.guestSeconds?.toFixed(2) ?? '?'} s guest time` +
        (p.totals ? ` (harness totals: pass ${p.totals.pass} fail ${p.totals.fail} skip ${p.totals.skip})` : ''),
    ),
    `failing on the kernel (${failing.length}): ${failing.map((f) => f.test).join(', ') || 'none'}`,
    `kernel WARN/BUG reports: ${r.reports.length ? r.reports.map((w) => `${w.line} [during ${w.during ?? '?'}]`).join('; ') : 'none'}`,
    ...r.findings.map(
      (f) =>
        `${f.name}: exit ${f.exitStatus ?? 'none'}; ${f.steps.map((s) => JSON.stringify(s)).join(' ')}; WARNs while it ran: ${f.warns.map((w) => w.fn ?? w.line).join(', ') || 'none'}`,
    ),
    ...r.model.map(
      (m) =>
        `model: ${m.program} under ioptrace run --variant ${m.variant}: exit ${m.exitStatus ?? 'none'}, ${m.wallSeconds.toFixed(0)} s wall; not served: ${
          Object.entries(m.unserved)
            .map(([n, c]) => `${n} x${c}`)
            .join(', ') || 'none'
        }`,
    ),
    `console log: ${r.consoleLog}`,
  ];
  return { exitCode: oracleExitCode(r), json: r, text };
}

export const kernelCommand: Command = {
  name: 'kernel',
  summary: 'build the ground-truth 6.12 kernel (cached) and run the iommufd selftests on it in a VM',
  usage: 'ioptrace kernel build | ioptrace kernel selftest [--variant V] [--json]',
  help: [
    'build     install what is missing (apt), unpack linux-source-6.12 and build a bzImage from tinyconfig plus',
    '          native/kernel/iommufd-test.config into $IOPTRACE_CACHE/kernel or ~/.cache/ioptrace/kernel',
    '          (keyed by package version and fragment hash: a second call costs nothing)',
    'selftest  build iommufd and iommufd_fail_nth from the same source, run them in QEMU and under',
    '          `ioptrace run --variant V` (default upstream), print one row per test with both outcomes and',
    '          the agreement per fixture; exit 1 when the VM or a program did not run to the end',
  ],
  options: { variant: { type: 'string' } },
  run(positionals, values, env) {
    const [sub, ...rest] = positionals;
    if (rest.length) throw new UsageError(`usage: ${this.usage}`);
    if (sub === 'build') return build(env);
    if (sub === 'selftest')
      return selftest(env, typeof values['variant'] === 'string' ? values['variant'] : 'upstream');
    throw new UsageError(`usage: ${this.usage}`);
  },
};
