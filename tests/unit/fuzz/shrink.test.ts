import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import type { TraceOp } from '../../../src/events/trace.js';
import { reproduces, shrinkTrace, withoutOps } from '../../../src/fuzz/shrink.js';
import { serializeOp, serializeTrace } from '../../../src/fuzz/write.js';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { parseTraceText } from '../../../src/replay/parse.js';

const BAD_FREE_PATH = fileURLToPath(new URL('../../../replays/bad-free.jsonl', import.meta.url));
const V3 = resolveVariant('v3');
const UPSTREAM = resolveVariant('upstream');
const BAD_FREE = { kind: 'bad_free', fn: 'pfn_reader_user_pin' };

function opsOf(...lines: string[]): TraceOp[] {
  return parseTraceText(`${lines.join('\n')}\n`).entries.map((e) => e.op);
}

const lines = (ops: readonly TraceOp[]): string[] => ops.map(serializeOp);

const WORLD = opsOf(
  '{"op":"process","pid":"p1"}',
  '{"op":"process","pid":"p2"}',
  '{"op":"mmap","pid":"p1","addr":"0x7f0000000000","length":8192}',
  '{"op":"open","ctx":"c1","pid":"p1"}',
  '{"op":"ioas_alloc","ioas":"A","ctx":"c1"}',
  '{"op":"ioas_alloc","ioas":"B","ctx":"c1"}',
  '{"op":"ioas_map","ioas":"A","pid":"p1","uptr":"0x7f0000000000","length":8192,"iova":"0x1000000"}',
  '{"op":"domain_attach","domain":"d1","ioas":"A"}',
  '{"op":"ioas_copy","src":"A","dst":"B","src_iova":"0x1000000","length":4096}',
  '{"op":"access_create","access":"a1","ioas":"B"}',
  '{"op":"fault","nth":1,"site":"gup"}',
  '{"op":"access_pin","access":"a1","pid":"p2","iova":"0x1000000","length":4096}',
  '{"op":"domain_detach","domain":"d1"}',
);

describe('withoutOps', () => {
  it('drops everything that names an IOAS together with its ioas_alloc', () => {
    expect(lines(withoutOps(WORLD, new Set([4])))).toEqual(
      lines([WORLD[0], WORLD[1], WORLD[2], WORLD[3], WORLD[5], WORLD[9], WORLD[10], WORLD[11]] as TraceOp[]),
    );
  });

  it('drops a process with its mappings, contexts and everything below them', () => {
    expect(lines(withoutOps(WORLD, new Set([0])))).toEqual(lines([WORLD[1]] as TraceOp[]));
  });

  it('drops a fault with the op it arms, and keeps the op when only the fault goes', () => {
    const withoutPin = withoutOps(WORLD, new Set([11]));
    expect(withoutPin.map((op) => op.op)).not.toContain('fault');
    expect(withoutPin).toHaveLength(WORLD.length - 2);
    const withoutFault = withoutOps(WORLD, new Set([10]));
    expect(withoutFault.map((op) => op.op)).toContain('access_pin');
    expect(withoutFault).toHaveLength(WORLD.length - 1);
  });

  it('keeps the objects a destroy names: dropping a detach leaves the domain attached', () => {
    expect(withoutOps(WORLD, new Set([12]))).toEqual(WORLD.slice(0, 12));
  });

  it('gives back every op when nothing is removed', () => {
    expect(withoutOps(WORLD, new Set())).toEqual(WORLD);
  });
});

describe('shrinkTrace', () => {
  const shipped = parseTraceText(readFileSync(BAD_FREE_PATH, 'utf8'));
  const ops = shipped.entries.map((e) => e.op);

  it("shrinks the shipped BAD_FREE trace to the 7 ops that still free the caller's array on v3", () => {
    const result = shrinkTrace(shipped.header, ops, { ...V3, target: BAD_FREE });
    expect(result).not.toBeNull();
    expect(result?.before).toBe(10);
    expect(result?.after).toBe(7);
    expect(result?.exhausted).toBe(false);
    expect(result?.failure).toEqual({
      kind: 'bad_free',
      fn: 'pfn_reader_user_pin',
      detail: 'iommufd frees allocation 4 (out_pages) owned by caller',
      op: 7,
      line: 8,
    });
    // The mmap goes (the pin never reaches GUP) and the expectations go (a shrunk trace would not meet them).
    expect(serializeTrace({ header: shipped.header, ops: result?.ops ?? [] })).toBe(
      [
        '{"format":"ioptrace-trace","version":1}',
        '{"op":"process","pid":"1"}',
        '{"op":"open","ctx":"1","pid":"1"}',
        '{"op":"ioas_alloc","ioas":"A","ctx":"1"}',
        '{"op":"ioas_map","ioas":"A","pid":"1","uptr":"0x7f0000000000","length":4096,"iova":"0x1000000"}',
        '{"op":"access_create","access":"mdev","ioas":"A"}',
        '{"op":"exit","pid":"1"}',
        '{"op":"access_pin","access":"mdev","pid":"kthread","iova":"0x1000000","length":4096}',
        '',
      ].join('\n'),
    );
  });

  it('hands back a trace that replays to the same violation', () => {
    const result = shrinkTrace(shipped.header, ops, { ...V3, target: BAD_FREE });
    expect(result).not.toBeNull();
    if (result === null) return;
    expect(reproduces(result.header, result.ops, { ...V3, target: BAD_FREE })?.fn).toBe('pfn_reader_user_pin');
    expect(reproduces(result.header, result.ops, { ...UPSTREAM, target: BAD_FREE })).toBeNull();
  });

  it('returns null when the trace does not show the failure (upstream has the fix)', () => {
    expect(shrinkTrace(shipped.header, ops, { ...UPSTREAM, target: BAD_FREE })).toBeNull();
  });

  it('stops at the replay budget and returns the best trace so far', () => {
    const result = shrinkTrace(shipped.header, ops, { ...V3, target: BAD_FREE, maxTests: 3 });
    expect(result?.exhausted).toBe(true);
    expect(result?.tests).toBe(3);
    // Only the cut after the failing op got through: the two teardown ops went.
    expect(result?.after).toBe(8);
  });

  it('still checks the input when told to stop at once, and returns it unchanged', () => {
    const result = shrinkTrace(shipped.header, ops, { ...V3, target: BAD_FREE, shouldStop: () => true });
    expect(result?.exhausted).toBe(true);
    expect(result?.tests).toBe(1);
    expect(result?.after).toBe(10);
    expect(result?.failure.kind).toBe('bad_free');
  });

  it('stops when told to between replays', () => {
    let calls = 0;
    const result = shrinkTrace(shipped.header, ops, { ...V3, target: BAD_FREE, shouldStop: () => ++calls > 2 });
    expect(result?.exhausted).toBe(true);
    expect(result?.tests).toBe(3);
  });
});
