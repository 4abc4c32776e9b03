// The selftest mock domain of each era through whole traces: tests/fixtures/traces/mock-era-*.jsonl carry
// the expectations of the iommupt mock ([up:mock-iommupt], v6.19); v6.18's xarray mock misses exactly these.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTraceFile } from '../../src/replay/parse.js';
import { replay } from '../../src/replay/replayer.js';
import type { ReplayResult } from '../../src/replay/replayer.js';
import { resolveVariant } from '../../src/kernel/variants.js';

const TRACES = join(import.meta.dirname, '../fixtures/traces');

async function run(file: string, variant: string, add: string[] = [], remove: string[] = []): Promise<ReplayResult> {
  const { fixes } = resolveVariant(variant, add, remove);
  return replay(await parseTraceFile(join(TRACES, file)), { variant, fixes });
}

const findings = (r: ReplayResult) => [...r.violations, ...r.warns].map((f) => `${f.kind} ${f.fn} line ${f.line}`);
const mismatches = (r: ReplayResult) => r.mismatches.map((m) => [m.line, m.field, m.expected, m.actual]);

describe('fail-nth points of the mock domain', () => {
  it('v6.19 and upstream meet every expectation, with no finding', async () => {
    for (const variant of ['v6.19', 'upstream']) {
      const r = await run('mock-era-fault-points.jsonl', variant);
      expect(mismatches(r)).toEqual([]);
      expect(findings(r)).toEqual([]);
    }
  });

  it('v6.18: the map fails at iommufd_should_fail (-ENOENT), the iommu_pages points are never reached', async () => {
    const r = await run('mock-era-fault-points.jsonl', 'v6.18');
    // The refused first map leaves [0x1000000, +64 KiB) empty (MD_CHECK_MAP stops reporting after eight mock
    // pages); the map the iommupt mock refuses goes in, so its retry finds the range taken.
    const page = (iova: number, pa: number) => [
      21,
      `check_map domain D1 @0x${iova.toString(16)}`,
      `0x${pa.toString(16)}`,
      'unmapped',
    ];
    expect(mismatches(r)).toEqual([
      [17, 'errno', 'ok', 'ENOENT'],
      [19, 'errno', 'ENOMEM', 'ok'],
      [20, 'errno', 'ok', 'EEXIST'],
      page(0x1000000, 0x40000000),
      page(0x1000800, 0x40000800),
      page(0x1001000, 0x40002000),
      page(0x1001800, 0x40002800),
      page(0x1002000, 0x40004000),
      page(0x1002800, 0x40004800),
      page(0x1003000, 0x40006000),
      page(0x1003800, 0x40006800),
      [24, 'errno', 'ENOMEM', 'ok'],
    ]);
    expect(findings(r)).toEqual([]);
  });

  it('the flag alone makes the difference: upstream without mock-iommupt gives v6.18 its mismatches', async () => {
    const without = await run('mock-era-fault-points.jsonl', 'upstream', [], ['mock-iommupt']);
    const v618 = await run('mock-era-fault-points.jsonl', 'v6.18');
    expect(mismatches(without)).toEqual(mismatches(v618));
    const withFlag = await run('mock-era-fault-points.jsonl', 'v6.18', ['mock-iommupt']);
    expect(mismatches(withFlag)).toEqual([]);
  });
});

describe('the mock IO page on a 64 KiB PAGE_SIZE kernel', () => {
  it('v6.19: a 2 KiB aligned IOVA maps and checks clean', async () => {
    const r = await run('mock-era-64k-pages.jsonl', 'v6.19');
    expect(mismatches(r)).toEqual([]);
    expect(findings(r)).toEqual([]);
  });

  it('v6.18: the 32 KiB IO page refuses it (-EINVAL) and MD_CHECK_MAP finds nothing mapped', async () => {
    const r = await run('mock-era-64k-pages.jsonl', 'v6.18');
    expect(mismatches(r)).toEqual([
      [12, 'errno', 'ok', 'EINVAL'],
      [13, 'check_map domain D1 @0x1000800', '0x400000000', 'unmapped'],
      [13, 'check_map domain D1 @0x1008800', '0x400008000', 'unmapped'],
      [13, 'check_map domain D1 @0x1010800', '0x400020000', 'unmapped'],
      [13, 'check_map domain D1 @0x1018800', '0x400028000', 'unmapped'],
    ]);
    expect(findings(r)).toEqual([]);
  });
});
