// SPDX-License-Identifier: GPL-2.0-only
// `ioptrace record`: these machines have no /dev/iommu, so `ioptrace run` stands in for the kernel
// (IOPTRACE_RECORD_KERNEL_SOCKET names its socket). A C client of tests/native runs under record inside
// the program of run; the recording holds the ops the model decoded, the answers of the stand-in as
// expectations, the physical pages /proc/PID/pagemap shows as mmap pfns, and replays meeting every one.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUILT_CLI, cli, freshDir } from '../support/built-cli.js';
import { MAP_UNMAP_IOCTLS, MAP_UNMAP_STDOUT, buildClient, haveCc } from '../support/run-client.js';

const dir = freshDir();

interface RecordReport {
  exit_status: number;
  kernel: string;
  contexts: number;
  ioctls: Record<string, number>;
  disagreements: string[];
  unrecorded: Record<string, number>;
}

interface ReplayReport {
  violations: unknown[];
  warns: unknown[];
  mismatches: { line: number; op: number; field: string; expected: unknown; actual: unknown }[];
  results: { op: string; errno: string | null }[];
}

/** The ops of a trace, one object per line after the header. */
function opsOf(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{"op"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** `ioptrace record` of a client inside `ioptrace run`, whose socket stands in for /dev/iommu. */
async function recordUnderRun(
  client: string,
  runVariant: string,
  recordVariant: string,
): Promise<{ status: number; stdout: string[]; stderr: string; trace: string; report: RecordReport }> {
  const program = buildClient(dir, client);
  const trace = join(dir, `${client}-${runVariant}-${recordVariant}.trace`);
  const json = join(dir, `${client}-${runVariant}-${recordVariant}.json`);
  const record = [process.execPath, BUILT_CLI, 'record', '--variant', recordVariant, '-o', trace, '--json-out', json];
  const script = `IOPTRACE_RECORD_KERNEL_SOCKET="$IOPTRACE_SOCK" exec ${record.map((a) => `'${a}'`).join(' ')} -- '${program}'`;
  const r = await cli(['run', '--variant', runVariant, '--db', join(dir, 'standin.db'), '--', 'sh', '-c', script]);
  return {
    status: r.status,
    stdout: r.stdout.trimEnd().split('\n'),
    stderr: r.stderr,
    trace,
    report: JSON.parse(readFileSync(json, 'utf8')) as RecordReport,
  };
}

describe.skipIf(!haveCc)('ioptrace record against ioptrace run standing in for the kernel', () => {
  let rec: Awaited<ReturnType<typeof recordUnderRun>>;
  let ops: Record<string, unknown>[];
  let replayed: ReplayReport;

  beforeAll(async () => {
    rec = await recordUnderRun('map_unmap', 'v6.12', 'v6.12');
    ops = opsOf(readFileSync(rec.trace, 'utf8'));
    const r = await cli(['replay', rec.trace, '--variant', 'v6.12', '--json', '--db', join(dir, 'replay.db')]);
    replayed = JSON.parse(r.stdout) as ReplayReport;
  });

  it('passes the program through: its output and exit status are what the stand-in served', () => {
    expect(rec.status).toBe(7);
    expect(rec.stdout).toEqual(MAP_UNMAP_STDOUT);
    expect(rec.report.exit_status).toBe(7);
    expect(rec.report.contexts).toBe(1);
    expect(rec.report.ioctls).toEqual(MAP_UNMAP_IOCTLS);
    expect(rec.report.disagreements).toEqual([]);
    expect(rec.report.unrecorded).toEqual({});
    expect(rec.stderr).toContain('ioptrace: the model (v6.12) answered every call as the kernel did');
  });

  it('writes the ops the calls stand for, with the kernel`s errnos and outputs as expectations', () => {
    expect(readFileSync(rec.trace, 'utf8').split('\n')[1]).toBe(
      '{"format":"ioptrace-trace","version":1,"gup_unshare_read_pins":true}',
    );
    expect(ops.map((o) => o['op'])).toEqual([
      'process',
      'open',
      'ioas_alloc',
      'domain_attach',
      'mmap',
      'ioas_map',
      'check_map',
      'check_refs',
      'check_refs',
      'ioas_alloc',
      'ioas_copy',
      'check_refs',
      'ioas_unmap',
      'ioas_unmap',
      'check_refs',
      'domain_detach',
      'ioas_unmap',
      'ioas_alloc',
    ]);
    const expects = ops.map((o) => o['expect'] ?? null);
    expect(expects).toEqual([
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
      { iova: '0x1000000' },
      null,
      null,
      null,
      'ok',
      { iova: '0x4000' },
      null,
      { unmapped: 16384 },
      'ENOENT',
      null,
      'ok',
      { unmapped: 16384 },
      'ok',
    ]);
    expect(ops[14]).toMatchObject({ op: 'check_refs', length: 16384, refs: 0 });
    expect(ops[16]).toMatchObject({ op: 'ioas_unmap', ioas: 'ioas2', all: true });
  });

  it('declares the mapped range with the physical pages pagemap shows (root reads the PFNs)', () => {
    const mmap = ops[4] ?? {};
    const map = ops[5] ?? {};
    expect(mmap).toMatchObject({ op: 'mmap', pid: map['pid'], addr: map['uptr'], length: 16384 });
    // PFNs are JSON numbers or hex strings, as the trace format allows for integers.
    const pfns = mmap['pfns'] as [number | string, number | string][] | undefined;
    if (process.getuid?.() !== 0) return expect(pfns).toBeUndefined();
    expect(pfns?.reduce((n, [, count]) => n + Number(count), 0)).toBe(4);
    expect(pfns?.every(([pfn]) => Number(pfn) > 0)).toBe(true);
  });

  it('replays on the same variant meeting every expectation; the one failed MD_CHECK_REFS shows on the recorded pages', () => {
    expect(replayed.violations).toEqual([]);
    expect(replayed.warns).toEqual([]);
    // The client's check_refs(0) while the range is pinned: the kernel answered EINVAL, the check op
    // reports each page still pinned, named by the PFN the recording gave it.
    const uptr = BigInt(String(ops[5]?.['uptr']));
    const pfns = ((ops[4]?.['pfns'] as [number | string, number | string][] | undefined) ?? []).flatMap(([pfn, n]) =>
      Array.from({ length: Number(n) }, (_, i) => Number(pfn) + i),
    );
    const lineOfCheck = 3 + 8; // comment, header, then the ninth op
    expect(replayed.mismatches.map((m) => [m.line, m.field, m.expected, m.actual])).toEqual(
      [0, 1, 2, 3].map((i) => [
        lineOfCheck,
        `check_refs pfn 0x${(pfns[i] ?? 0x40000 + 2 * i).toString(16)} @0x${(uptr + BigInt(i * 4096)).toString(16)}`,
        '0 pins',
        '1 pins',
      ]),
    );
    expect(replayed.results.filter((r) => r.errno !== null).map((r) => [r.op, r.errno])).toEqual([
      ['ioas_unmap', 'ENOENT'],
    ]);
  });
});

describe.skipIf(!haveCc)('ioptrace record decoding with another variant than the kernel`s', () => {
  it('says where the model answers otherwise, records the kernel`s answers, and replays clean only on the kernel`s variant', async () => {
    // The stand-in is v6.12, which refuses a map with neither READ nor WRITE (map-requires-prot); the
    // recorder's model is v6.10, which maps it, and so picks another IOVA for the next map.
    const rec = await recordUnderRun('record', 'v6.12', 'v6.10');
    expect(rec.status).toBe(0);
    expect(rec.stdout).toEqual(['ioas_alloc ok id=1', 'map without prot EINVAL', 'map ok iova=0x1000']);
    expect(rec.report.disagreements).toEqual([
      'IOMMU_IOAS_MAP (line 7): the kernel answered EINVAL, the model ok',
      'IOMMU_IOAS_MAP (line 9): iova: the kernel 0x1000, the model 0x2000',
    ]);
    expect(rec.stderr).toContain(
      'ioptrace: model disagrees: IOMMU_IOAS_MAP (line 7): the kernel answered EINVAL, the model ok\n',
    );
    expect(rec.stderr).toContain('ioptrace: the model (v6.10) answered 2 times otherwise than the kernel\n');
    const ops = opsOf(readFileSync(rec.trace, 'utf8'));
    expect(ops.map((o) => [o['op'], o['expect']])).toEqual([
      ['process', 'ok'],
      ['open', 'ok'],
      ['ioas_alloc', 'ok'],
      ['mmap', 'ok'],
      ['ioas_map', 'EINVAL'],
      ['mmap', 'ok'],
      ['ioas_map', { iova: '0x1000' }],
    ]);
    expect(ops[4]).toMatchObject({ read: false, write: false, length: 4096 });

    const replayOn = async (variant: string): Promise<ReplayReport> =>
      JSON.parse(
        (await cli(['replay', rec.trace, '--variant', variant, '--json', '--db', join(dir, `disagree-${variant}.db`)]))
          .stdout,
      ) as ReplayReport;
    expect((await replayOn('v6.12')).mismatches).toEqual([]);
    expect((await replayOn('v6.10')).mismatches.map((m) => [m.line, m.field, m.expected, m.actual])).toEqual([
      [7, 'errno', 'EINVAL', 'ok'],
      [9, 'iova', '4096', '8192'],
    ]);
  });
});

describe.skipIf(!haveCc)('ioptrace record leaves /proc to the kernel', () => {
  it('shows the VmPin and VmLck the kernel shows (the stand-in pins nothing real), not an emulation', async () => {
    const rec = await recordUnderRun('procfiles', 'upstream', 'upstream');
    expect(rec.status).toBe(0);
    const zero = 'VmPin fopen=0 read=0 thread=0 task=0 kB, VmLck fopen=0 read=0 thread=0 task=0 kB';
    expect(rec.stdout.filter((l) => l.includes(' mapped: '))).toEqual([
      `iommu cap mapped: ${zero}`,
      `vfio cap mapped: ${zero}`,
      `iommu nocap mapped: ${zero}`,
      `vfio nocap mapped: ${zero}`,
    ]);
  });
});

describe('ioptrace record without a kernel', () => {
  it.skipIf(existsSync('/dev/iommu'))('fails with exit 2 naming /dev/iommu and the stand-in variable', async () => {
    const r = await cli(['record', '-o', join(dir, 'none.trace'), '--', 'true'], {
      env: { IOPTRACE_RECORD_KERNEL_SOCKET: '' },
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      'ioptrace: /dev/iommu does not exist: record needs a kernel with iommufd (CONFIG_IOMMUFD), or IOPTRACE_RECORD_KERNEL_SOCKET set to the socket of a running `ioptrace run` standing in for the kernel\n',
    );
    expect(existsSync(join(dir, 'none.trace'))).toBe(false);
  });

  it('refuses a stand-in variable that names no socket', async () => {
    const r = await cli(['record', '--', 'true'], { env: { IOPTRACE_RECORD_KERNEL_SOCKET: join(dir, 'nothing') } });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      `ioptrace: IOPTRACE_RECORD_KERNEL_SOCKET=${join(dir, 'nothing')} is not a socket: it must name the IOPTRACE_SOCK of a running \`ioptrace run\`\n`,
    );
  });
});
