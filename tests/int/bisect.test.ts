// SPDX-License-Identifier: GPL-2.0-only
/**
 * Run bisect over a real SQLite store: the same answers as the in-memory bisect (a differential test over
 * traces and variant pairs, with snapshots every few events so that every state load is snapshot + tail),
 * refusal of runs of different traces, prefix alignment, and the commands as a user calls them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bisectRuns } from '../../src/bisect/bisect-runs.js';
import type { BisectReport } from '../../src/bisect/bisect-runs.js';
import { bisectInMemory } from '../../src/bisect/memory.js';
import { renderBisect } from '../../src/bisect/render.js';
import { parseVariantSpec } from '../../src/kernel/variant-spec.js';
import { renderDifference } from '../../src/state/diff.js';
import { bisectCommand } from '../../src/cli/commands/bisect.js';
import { demoCommand } from '../../src/cli/commands/demo.js';
import { bisectFixCommand } from '../../src/cli/commands/bisect-fix.js';
import { observedCommand } from '../../src/cli/commands/observed.js';
import type { CommandEnv } from '../../src/cli/command.js';
import { UsageError } from '../../src/cli/errors.js';
import { BadInputError } from '../../src/lib/errors.js';
import { parseTraceText } from '../../src/replay/parse.js';
import { recordReplay } from '../../src/replay/record.js';
import { openStore, type Store } from '../../src/store/index.js';
import { tempDir } from '../support/store-rows.js';

const BAD_FREE = 'replays/bad-free.jsonl';
const ADD = 'replays/selftest/iommufd_ioas.access_domain_destory.jsonl';
const FIX = 'tests/fixtures/bisect';
const DETACH = `${FIX}/detach-carry.jsonl`;

let tmp: ReturnType<typeof tempDir>;
let db: string;
let store: Store | null = null;

beforeEach(() => {
  tmp = tempDir();
  db = join(tmp.dir, 'bisect.db');
});

afterEach(async () => {
  await store?.close();
  store = null;
  tmp.remove();
});

async function opened(): Promise<Store> {
  store ??= await openStore(db);
  return store;
}

/** Record `path` on `spec`, with a snapshot every few events so every state load is snapshot + tail. */
async function record(s: Store, path: string, spec: string, text = readFileSync(path, 'utf8')): Promise<number> {
  const v = parseVariantSpec(spec);
  const recorded = await recordReplay(s, parseTraceText(text, path), {
    tracePath: path,
    traceText: text,
    variant: v.label,
    fixes: v.fixes,
    spacing: { minEvents: 7, maxEvents: 7, bytesPerEvent: 1 },
  });
  return recorded.run;
}

/** What must agree between the store bisect and the in-memory one. */
function essence(r: { divergence: BisectReport['divergence'] } & { ranges: [number, number][] }): unknown {
  const d = r.divergence;
  return {
    ranges: r.ranges,
    d:
      d === null
        ? null
        : {
            op: d.op,
            line: d.line,
            differs: d.differs,
            a: d.a,
            b: d.b,
            state: d.diff.lines,
            uncounted: d.diff.uncounted.map(renderDifference),
            provenance: d.diff.provenance.map(renderDifference),
            onlyA: d.diff.onlyA,
            onlyB: d.diff.onlyB,
            named: d.diff.named,
            rows: d.events.rows,
          },
  };
}

const env = (): CommandEnv => ({ db, json: true, stderr: process.stderr });

describe('bisectRuns over the store', () => {
  const PAIRS: [string, string, string][] = [
    [BAD_FREE, 'v3', 'merged'],
    [BAD_FREE, 'v3', 'upstream'],
    [ADD, 'merged', 'upstream'],
    [ADD, 'v3', 'upstream'],
    [`${FIX}/split-domains-itree.jsonl`, 'merged', 'upstream'],
    [`${FIX}/unmap-all-empty.jsonl`, 'v3', 'merged'],
    [`${FIX}/map-no-prot.jsonl`, 'upstream', 'upstream'],
    [DETACH, 'v3', 'upstream'],
    [DETACH, 'v3', 'merged'],
  ];
  for (const [path, a, b] of PAIRS) {
    it(`agrees with the in-memory bisect on ${path}, ${a} against ${b}`, async () => {
      const s = await opened();
      const report = await bisectRuns(s, await record(s, path, a), await record(s, path, b));
      const memory = bisectInMemory(
        parseTraceText(readFileSync(path, 'utf8'), path),
        parseVariantSpec(a),
        parseVariantSpec(b),
      );
      expect(essence(report)).toEqual(essence({ divergence: memory.divergence, ranges: memory.scan.ranges }));
      expect(report.compared).toBe(memory.scan.compared);
    });
  }

  it('finds bad-free.jsonl diverging at the access_pin of line 33, naming heap allocation 4 and mm 1 users', async () => {
    const s = await opened();
    const r = await bisectRuns(s, await record(s, BAD_FREE, 'v3'), await record(s, BAD_FREE, 'merged'));
    expect([r.divergence?.op, r.divergence?.line, r.divergence?.name]).toEqual([8, 33, 'access_pin']);
    expect(r.divergence?.diff.lines).toEqual(['violations (count): 3 -> 0', 'mms 1 mm_users: -1 -> 0']);
    expect(r.divergence?.diff.onlyA).toContain('HeapFreed alloc 4 fn pfn_reader_user_pin');
    expect(r.ranges).toEqual([[8, 11]]);
    expect(r.notes).toEqual([]);
  });

  it('compares what the kernel holds: a renamed allocating function is provenance, the detach diverges', async () => {
    const s = await opened();
    // Upstream with the xarray mock of v3: with upstream's iommupt mock the runs already differ at the attach.
    const r = await bisectRuns(s, await record(s, DETACH, 'v3'), await record(s, DETACH, 'upstream-mock-iommupt'));
    expect([r.divergence?.op, r.divergence?.line, r.divergence?.name, r.divergence?.differs]).toEqual([
      10,
      18,
      'domain_detach',
      ['state'],
    ]);
    expect(r.divergence?.diff.lines).toEqual([
      'violations (count): 3 -> 0',
      'WARNs (count): 1 -> 0',
      'mms 1 pinned_vm: 511 -> 1',
      'users 1000 locked_vm: 511 -> 1',
      'frames pfn 0x40002..0x401ff dirty: no -> yes',
      'frames pfn 0x40002..0x401ff pins: 1 -> 0',
      'pages 4 last_npinned: 511 -> 1',
      'pages 4 npinned: 511 -> 1',
    ]);
    expect(r.divergence?.diff.provenance.map(renderDifference)).toEqual([
      'heap 11 fn: iopt_pages_add_access -> iopt_area_add_access',
    ]);
    expect(r.ranges).toEqual([[10, 15]]);
    // --strict counts every stored difference: the derived alignment from the access_create of line 16 on.
    const strict = await bisectRuns(s, 1, 2, { strict: true });
    expect([strict.divergence?.op, strict.divergence?.line, strict.divergence?.diff.lines]).toEqual([
      8,
      16,
      ['ioases A iova_alignment: 0x800 -> 0x1000'],
    ]);
    expect(strict.ranges).toEqual([[8, 15]]);
    const text = renderBisect(r, 18);
    expect(text).toContain('first divergence: op 10, line 18 (domain_detach): state differs');
    expect(text).toContain('provenance (the same allocations, made by differently named code; not counted):');
    expect(text).toContain('  heap 11 fn: iopt_pages_add_access -> iopt_area_add_access');
  });

  it('refuses runs of different traces with one clear message', async () => {
    const s = await opened();
    const a = record(s, BAD_FREE, 'v3');
    const b = record(s, `${FIX}/map-no-prot.jsonl`, 'v3');
    await expect(bisectRuns(s, await a, await b)).rejects.toThrow(BadInputError);
    await expect(bisectRuns(s, await a, await b)).rejects.toThrow(
      /^runs 1 and 2 replay different traces \(replays\/bad-free\.jsonl, sha256 [0-9a-f]{12}; tests\/fixtures\/bisect\/map-no-prot\.jsonl, sha256 [0-9a-f]{12}\): give --align prefix to compare the ops they share$/,
    );
    await expect(bisectRuns(s, await a, 9)).rejects.toThrow(`no run 9 in ${db} (ioptrace runs lists them)`);
  });

  it('with --align prefix compares setup and the ops both traces start with (expectations aside)', async () => {
    const s = await opened();
    const r = await bisectRuns(
      s,
      await record(s, BAD_FREE, 'v3'),
      await record(s, `${FIX}/map-no-prot.jsonl`, 'upstream'),
      {
        align: 'prefix',
      },
    );
    expect(r.commonTraceOps).toBe(4);
    expect(r.compared).toBe(5);
    expect(r.divergence).toBeNull();
    expect(r.notes).toEqual(['different traces: comparing setup and the 4 trace ops they share from the start']);
    const d = await bisectRuns(
      s,
      await record(s, `${FIX}/access-pin-short.jsonl`, 'v3'),
      await record(s, `${FIX}/access-pin-short.jsonl`, 'merged'),
      {
        align: 'prefix',
      },
    );
    expect(d.commonTraceOps).toBeNull();
    expect(d.divergence?.line).toBe(14);
  });
  it('with --align prefix compares every op, teardown included, of two files holding the same ops', async () => {
    const s = await opened();
    const path = `${FIX}/access-pin-short.jsonl`;
    const text = readFileSync(path, 'utf8');
    const a = record(s, path, 'v3');
    const b = record(s, path, 'merged', `# the same trace with one more comment line\n${text}`);
    const r = await bisectRuns(s, await a, await b, { align: 'prefix' });
    expect(r.commonTraceOps).toBe(10);
    expect(r.compared).toBe(12);
    expect(r.notes).toEqual(['different trace files with the same ops: comparing every op']);
    expect([r.divergence?.op, r.divergence?.line, r.divergence?.b.line]).toEqual([7, 14, 15]);
    expect(r.ranges).toEqual([[7, 11]]);
  });
});

describe('ioptrace bisect', () => {
  it('replays TRACE on two variants, stores both runs and reports op, line and diff (exit 1: they diverge)', async () => {
    const out = await bisectCommand.run([BAD_FREE], { variants: 'v3,merged', strict: false }, env());
    const json = out.json as Record<string, unknown>;
    expect(out.exitCode).toBe(1);
    expect([json['op'], json['line'], json['name']]).toEqual([8, 33, 'access_pin']);
    expect(json['recorded']).toEqual([
      { run: 1, variant: 'v3', fixes: [] },
      expect.objectContaining({ run: 2, variant: 'merged' }),
    ]);
    const diff = json['diff'] as { state: { text: string }[]; named: { allocations: number[] } };
    expect(diff.state.map((d) => d.text)).toEqual(['violations (count): 3 -> 0', 'mms 1 mm_users: -1 -> 0']);
    expect(diff.named.allocations).toEqual([4, 5]);
    expect(out.text[0]).toBe('recorded run 1 (v3) and run 2 (merged)');
    expect(out.text).toContain('first divergence: op 8, line 33 (access_pin): state differs');
    const again = await bisectCommand.run(['1', '2'], { strict: true }, env());
    expect((again.json as Record<string, unknown>)['line']).toBe(24);
  });

  it('exits 0 for runs that agree, and refuses bad arguments', async () => {
    const same = await bisectCommand.run([BAD_FREE], { variants: 'upstream,upstream' }, env());
    expect(same.exitCode).toBe(0);
    expect((same.json as Record<string, unknown>)['diff']).toBeNull();
    expect(same.text).toContain('no divergence: every compared op leaves equal states with equal results');
    await expect(bisectCommand.run(['1', '2'], { align: 'suffix' }, env())).rejects.toThrow(
      '--align must be "same" or "prefix", got "suffix"',
    );
    await expect(bisectCommand.run([BAD_FREE], { variants: 'v3' }, env())).rejects.toThrow(
      '--variants takes two variants, A,B; got "v3"',
    );
    await expect(bisectCommand.run(['1'], {}, env())).rejects.toThrow(UsageError);
  });
});

describe('ioptrace demo and ioptrace bisect', () => {
  it('name one op where the bad-free runs diverge: the access_pin of line 33 (op 8)', async () => {
    const demo = await demoCommand.run([], {}, { ...env(), json: false });
    const json = demo.json as { runs: Record<string, number>; divergence: { op: number; line: number } };
    expect(json.runs).toEqual({ v3: 1, merged: 2 });
    expect(json.divergence).toEqual({ op: 8, line: 33 });
    expect(demo.text).toContain(
      '== Where the runs diverge (ioptrace bisect 1 2): op 8 (access_pin, trace line 33); v3 state vs merged state after it:',
    );
    const bisect = await bisectCommand.run(['1', '2'], {}, env());
    const b = bisect.json as Record<string, unknown>;
    expect([b['op'], b['line'], b['name']]).toEqual([8, 33, 'access_pin']);
  });
});

describe('ioptrace bisect-fix', () => {
  it('prints the flag, its commit and the line, and with --record stores the variants around the change', async () => {
    const out = await bisectFixCommand.run([BAD_FREE], { record: true }, env());
    const json = out.json as Record<string, unknown>;
    expect(out.exitCode).toBe(0);
    expect([json['flag'], json['commit'], json['section'], json['line']]).toEqual([
      'mmget-fail-no-kfree',
      'v4 posting (review of v3 07/15)',
      '9a',
      33,
    ]);
    expect(json['recorded']).toEqual([1, 2]);
    const s = await opened();
    expect((await s.run(2))?.flags).toEqual(['mmget-fail-no-kfree']);
    expect((await bisectRuns(s, 1, 2)).divergence?.line).toBe(33);
  });

  it('exits 1 when the outcome changes more than once', async () => {
    const out = await bisectFixCommand.run([ADD], { bad: 'merged', good: 'upstream' }, env());
    expect(out.exitCode).toBe(1);
    const json = out.json as {
      flag: string;
      firstChange: string;
      monotonic: boolean;
      flips: { flag: string; line: number }[];
    };
    // The headline is the flag that removes merged's first violation; the first change only removes WARNs.
    expect([json.flag, json.firstChange]).toEqual(['carry-end-one', 'unpin-domain-batch-last-index']);
    expect(json.monotonic).toBe(false);
    expect(json.flips.map((f) => [f.flag, f.line])).toEqual([
      ['unpin-domain-batch-last-index', 61],
      ['carry-end-one', 61],
    ]);
  });
});

describe('ioptrace observed', () => {
  it('reports the first op that differs from the recording on v3 (exit 1) and none on merged (exit 0)', async () => {
    const v3 = await observedCommand.run([`${FIX}/recorded-access-pin.jsonl`], { variant: 'v3' }, env());
    expect(v3.exitCode).toBe(1);
    expect(v3.text[1]).toBe('first divergence from the recording: op 7, line 16 (access_pin), pin');
    expect(v3.text[3]).toBe('  kernel: pfn 0x493e1..0x493e2 x1');
    expect(v3.text[4]).toBe('  model:  (nothing)');
    const merged = await observedCommand.run([`${FIX}/recorded-access-pin.jsonl`], { variant: 'merged' }, env());
    expect(merged.exitCode).toBe(0);
    await expect(observedCommand.run([BAD_FREE], {}, env())).rejects.toThrow(
      `${BAD_FREE} has no "observed" lines to compare`,
    );
  });
});
