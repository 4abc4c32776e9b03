// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace kernel build` and `ioptrace kernel selftest`: the ground truth, a real 6.12 kernel with the
 * iommufd mock driver, built from Debian's linux-source-6.12 into a cache outside the repository and
 * booted under QEMU.
 */
import { UsageError } from '../errors.js';
import { buildKernel, formatSeconds } from '../../groundtruth/kernel-build.js';
import { cacheRoot } from '../../groundtruth/paths.js';
import {
  ORACLE_FIXTURES,
  inOracleScope,
  oracleDisagreements,
  oracleExitCode,
  runSelftestOracle,
} from '../../groundtruth/selftest-table.js';
import { runKernelBatch } from '../../groundtruth/kernel-batch.js';
import type { BatchResult } from '../../groundtruth/kernel-batch.js';
import { traceLine } from '../../groundtruth/kernel-run.js';
import type { DisagreementKind } from '../../groundtruth/kernel-run.js';
import type { CommandEnv, CommandOutput } from '../command.js';
import { defineCommand } from '../command.js';
import { VARIANT_OPTIONS, text as textOption } from '../options.js';
import { table } from '../output.js';
import { pushAll } from '../../lib/arrays.js';
import { variantFromArgs } from './replay.js';

/** The model's variant of the ground-truth kernel: 6.12 with the 6.12.y backports the package carries. */
export const KERNEL_VARIANT = 'v6.12.y';

const KINDS: readonly DisagreementKind[] = ['errno', 'value', 'data', 'check', 'warn', 'missing'];

/** The disagreements, with the trace line, and one table row per trace (ops, compared, by kind). */
export function renderBatch(r: BatchResult): string[] {
  const text: string[] = [];
  for (const t of r.traces) {
    for (const d of t.disagreements) {
      const where = d.line === null ? `${t.path}: teardown` : `${t.path}:${d.line}: op ${d.op} (${d.name})`;
      text.push(`${where}: ${d.kind}: kernel ${d.kernel}, model ${d.model}`);
      if (d.line !== null) text.push(`    ${traceLine(t.path, d.line)}`);
    }
  }
  if (text.length) text.push('');
  pushAll(
    text,
    table(
      ['trace', 'ops', 'compared', 'not exportable', ...KINDS],
      r.traces.map((t) => [
        t.name,
        String(t.ops),
        String(t.compared),
        String(t.notExportable.length),
        ...KINDS.map((k) => String(t.disagreements.filter((d) => d.kind === k).length)),
      ]),
    ),
  );
  const total = r.traces.reduce((n, t) => n + t.disagreements.length, 0);
  text.push(
    '',
    `kernel ${r.vm.release ?? r.kernel.release} vs model ${r.variant}: ${r.traces.length} trace(s), ${total} disagreement(s); VM ${r.vm.wallSeconds.toFixed(1)} s wall${r.vm.completed ? '' : ' (the VM did not run to the end)'}`,
  );
  for (const t of r.traces) if (t.recording !== null) text.push(`recorded: ${t.recording}`);
  return text;
}

async function kernelRun(
  traces: string[],
  values: Parameters<typeof variantFromArgs>[0] & { 'record-dir': string | undefined },
  env: CommandEnv,
): Promise<CommandOutput> {
  if (traces.length === 0) throw new UsageError('usage: ioptrace kernel run TRACE... [--variant V] [--record-dir DIR]');
  const variant = variantFromArgs(values, KERNEL_VARIANT);
  const record = values['record-dir'];
  const r = await runKernelBatch(traces, variant, { say: sayTo(env), ...(record ? { recordDir: record } : {}) });
  const bad = !r.vm.completed || r.traces.some((t) => t.disagreements.length > 0 || !t.kernel.ended);
  const json = {
    kernel: r.kernel.release,
    release: r.vm.release,
    variant: r.variant,
    traces: r.traces.map((t) => ({
      path: t.path,
      ops: t.ops,
      compared: t.compared,
      notExportable: t.notExportable,
      disagreements: t.disagreements,
      ended: t.kernel.ended,
      recording: t.recording,
    })),
  };
  return { exitCode: bad ? 1 : 0, json, text: renderBatch(r) };
}

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
  const disagreeing = oracleDisagreements(r.rows);
  const inScope = r.rows.filter(inOracleScope);
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
    `host hugetlb pool for the model's column: ${r.hostHugepages.before ?? '?'} -> ${r.hostHugepages.after ?? '?'} pages (the VM's /init sets ${r.hostHugepages.vm})${r.hostHugepages.shortfall ? `: ${r.hostHugepages.shortfall}` : ''}`,
    ...r.programs.map(
      (p) =>
        `${p.program}: ${p.counts.pass} pass, ${p.counts.fail} fail, ${p.counts.skip} skip of ${p.planned ?? '?'} planned; exit ${p.exitStatus ?? 'none'}; ${p.guestSeconds?.toFixed(2) ?? '?'} s guest time` +
        (p.totals ? ` (harness totals: pass ${p.totals.pass} fail ${p.totals.fail} skip ${p.totals.skip})` : ''),
    ),
    `failing on the kernel (${failing.length}): ${failing.map((f) => f.test).join(', ') || 'none'}`,
    `in scope (${ORACLE_FIXTURES.join(', ')}): agree ${inScope.length - disagreeing.length}, disagree ${disagreeing.length}${
      disagreeing.length
        ? `: ${disagreeing.map((d) => `${d.program}: ${d.test} (kernel ${d.kernel}, model ${d.model})`).join(', ')}`
        : ''
    }; out of scope: ${r.rows.length - inScope.length}`,
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

export const kernelCommand = defineCommand({
  name: 'kernel',
  summary: 'build the ground-truth 6.12 kernel (cached) and run the iommufd selftests on it in a VM',
  usage:
    'ioptrace kernel build | ioptrace kernel selftest [--variant V] [--json] | ioptrace kernel run TRACE... [--variant V] [--record-dir DIR]',
  help: [
    'build     install what is missing (apt), unpack linux-source-6.12 and build a bzImage from tinyconfig plus',
    '          native/kernel/iommufd-test.config into $IOPTRACE_CACHE/kernel or ~/.cache/ioptrace/kernel',
    '          (keyed by package version and fragment hash: a second call costs nothing)',
    'selftest  build iommufd and iommufd_fail_nth from the same source, run them in QEMU and under',
    `          \`ioptrace run --variant V\` (default ${KERNEL_VARIANT}), print one row per test with both outcomes and`,
    '          the agreement per fixture; exit 1 when the VM or a program did not run to the end, or when a',
    `          test of the fixtures ${ORACLE_FIXTURES.join(', ')} ends differently on kernel and model`,
    'run       export each trace as C (ioptrace export-c), compile it statically, run all of them in one boot,',
    `          and compare op by op with the model on V (default ${KERNEL_VARIANT}): errno, iova/unmapped, data,`,
    '          check_map/check_refs answers, WARN sites by function; prints each disagreement with its trace',
    '          line and a table; --record-dir DIR stores each result as an observed recording; exit 1 on any',
  ],
  options: { ...VARIANT_OPTIONS, 'record-dir': textOption() },
  run(positionals, values, env) {
    const [sub, ...rest] = positionals;
    if (sub === 'run') return kernelRun(rest, values, env);
    if (rest.length) throw new UsageError(`usage: ${this.usage}`);
    if (sub === 'build') return build(env);
    if (sub === 'selftest') return selftest(env, variantFromArgs(values, KERNEL_VARIANT).label);
    throw new UsageError(`usage: ${this.usage}`);
  },
});
