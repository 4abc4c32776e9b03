// The shipped traces as acceptance checks of the kernel model (issue: the kernel model).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTraceFile } from '../../src/replay/parse.js';
import type { ParsedTrace } from '../../src/replay/parse.js';
import { replay } from '../../src/replay/replayer.js';
import type { ReplayResult } from '../../src/replay/replayer.js';
import { failNthSweep } from '../../src/replay/failnth.js';
import { resolveVariant } from '../../src/kernel/variants.js';
import { MemorySink } from '../../src/state/emit.js';
import { encodeJson } from '../../src/lib/codec.js';
import { sweepYielding } from '../support/sweep.js';

const ROOT = join(import.meta.dirname, '../..');
const SELFTEST = join(ROOT, 'replays/selftest');
const traces = readdirSync(SELFTEST)
  .filter((f) => f.endsWith('.jsonl'))
  .sort();

function run(trace: ParsedTrace, variant: string, add: string[] = []): ReplayResult {
  const { fixes } = resolveVariant(variant, add);
  return replay(trace, { variant, fixes });
}

const findings = (r: ReplayResult) => [...r.violations, ...r.warns].map((f) => `${f.kind} ${f.fn} line ${f.line}`);

describe('selftest parity on upstream', () => {
  for (const file of traces) {
    it(`${file}: every expectation met, no violation, no WARN`, async () => {
      const r = run(await parseTraceFile(join(SELFTEST, file)), 'upstream');
      expect(r.mismatches).toEqual([]);
      expect(findings(r)).toEqual([]);
    });
  }
});

// The full sweep of every fail_nth trace is in the long suite (tests/long/failnth-sweeps.test.ts).
describe('fail-nth sweep in slices', () => {
  it('one N at a time gives the same steps, findings and digests as one failNthSweep call', async () => {
    const trace = await parseTraceFile(join(SELFTEST, 'fail_nth.basic.jsonl'));
    const whole = failNthSweep(trace, { variant: 'upstream', fixes: resolveVariant('upstream').fixes });
    const sliced = await sweepYielding(trace, 'upstream');
    expect(whole.truncated).toBe(false);
    expect(whole.steps.length).toBeGreaterThan(1);
    expect(sliced).toEqual(whole);
  });

  it('stops at maxN with the sweep marked truncated', async () => {
    const trace = await parseTraceFile(join(SELFTEST, 'fail_nth.basic.jsonl'));
    const r = await sweepYielding(trace, 'upstream', 3);
    expect(r.truncated).toBe(true);
    expect(r.steps.map((s) => [s.n, s.fired])).toEqual([
      [1, true],
      [2, true],
      [3, true],
    ]);
  });
});

describe('replays/bad-free.jsonl', () => {
  it('on v3 reports the BAD_FREE and the mmput underflow at the access_pin op (line 33) and returns EFAULT', async () => {
    const r = run(await parseTraceFile(join(ROOT, 'replays/bad-free.jsonl')), 'v3');
    expect(r.violations.map((v) => [v.kind, v.fn, v.op, v.line])).toEqual([
      ['bad_free', 'pfn_reader_user_pin', 8, 33],
      ['mmput_underflow', 'pfn_reader_user_destroy', 8, 33],
      ['double_free', 'iommufd_test_access_pages', 8, 33],
    ]);
    expect(r.ops.find((o) => o.line === 33)?.errno).toBe('EFAULT');
    expect(r.mismatches).toEqual([]);
  });

  it('with --fix mmget-fail-no-kfree on v3 is clean and still returns EFAULT', async () => {
    const r = run(await parseTraceFile(join(ROOT, 'replays/bad-free.jsonl')), 'v3', ['mmget-fail-no-kfree']);
    expect(findings(r)).toEqual([]);
    expect(r.ops.find((o) => o.line === 33)?.errno).toBe('EFAULT');
  });
});

describe('access_domain_destory (the batch-carry regression test)', () => {
  const file = join(SELFTEST, 'iommufd_ioas.access_domain_destory.jsonl');

  it('shows the carry defects on v3: out-of-bounds and stale batch reads, leaked pins', async () => {
    const r = run(await parseTraceFile(file), 'v3');
    const kinds = new Set(r.violations.map((v) => v.kind));
    expect(kinds.has('batch_out_of_bounds')).toBe(true);
    expect(kinds.has('stale_batch_entry')).toBe(true);
    expect(kinds.has('pin_leak')).toBe(true);
    expect(r.violations.find((v) => v.kind === 'batch_out_of_bounds')?.fn).toBe('batch_unpin');
  });

  it('is clean on upstream', async () => {
    expect(findings(run(await parseTraceFile(file), 'upstream'))).toEqual([]);
  });

  it('is clean on merged once the three carry fixes are added, and not with any one of them missing', async () => {
    const trace = await parseTraceFile(file);
    const carry = ['carry-store-order', 'carry-end-one', 'unpin-domain-batch-last-index'];
    expect(findings(run(trace, 'merged', carry))).toEqual([]);
    for (const missing of carry) {
      expect(
        findings(
          run(
            trace,
            'merged',
            carry.filter((f) => f !== missing),
          ),
        ).length,
        `without ${missing}`,
      ).toBeGreaterThan(0);
    }
  });
});

describe('determinism', () => {
  it('replaying the same trace twice gives identical event streams and digests', async () => {
    const trace = await parseTraceFile(join(SELFTEST, 'iommufd_ioas.access_domain_destory.jsonl'));
    const { fixes } = resolveVariant('v3');
    const a = new MemorySink();
    const b = new MemorySink();
    const ra = replay(trace, { variant: 'v3', fixes, sink: a });
    const rb = replay(trace, { variant: 'v3', fixes, sink: b });
    expect(a.events.length).toBe(ra.events);
    expect(a.events.map((e) => encodeJson(e))).toEqual(b.events.map((e) => encodeJson(e)));
    expect(ra.ops.map((o) => o.digest)).toEqual(rb.ops.map((o) => o.digest));
  });
});
