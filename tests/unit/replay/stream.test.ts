// SPDX-License-Identifier: GPL-2.0-only
/**
 * The streaming forms of a replay (issue 16, memory flat in the log) give what the whole-array forms give:
 * a streamed trace yields the entries the parsed trace holds, a replay without kept op records hands the
 * same records to onOp, and a run recorded from a streamed trace has the same digest and hash-chain heads.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { TraceError } from '../../../src/replay/errors.js';
import { lastTraceOpLine, parseTraceText, streamTraceText, traceOpCount } from '../../../src/replay/parse.js';
import { recordReplay } from '../../../src/replay/record.js';
import { replay } from '../../../src/replay/replayer.js';
import type { OpRecord } from '../../../src/replay/replayer.js';
import { openStore, opsInOrder } from '../../../src/store/index.js';
import { ROOT, SHIPPED_TRACES } from '../../support/heads.js';

const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
/** The hand-written traces (the selftest replays are long; every trace is checked by streamTraceText below). */
const REPLAYED = SHIPPED_TRACES.filter((path) => !path.includes('/selftest/'));

describe('streamTraceText', () => {
  it.each(SHIPPED_TRACES)('yields the entries parseTraceText holds, on every read: %s', (path) => {
    const text = read(path);
    const parsed = parseTraceText(text, path);
    const streamed = streamTraceText(text, path);
    expect(streamed.header).toEqual(parsed.header);
    expect(streamed.sha256).toBe(parsed.sha256);
    expect(streamed.opCount).toBe(parsed.entries.length);
    expect(traceOpCount(streamed)).toBe(traceOpCount(parsed));
    expect(lastTraceOpLine(streamed)).toBe(lastTraceOpLine(parsed));
    expect([...streamed.entries]).toEqual(parsed.entries);
    // Iterable again, from the start.
    expect([...streamed.entries]).toEqual(parsed.entries);
  });

  it('attaches observations to the op before them, the last op included', () => {
    const text = [
      '{"op":"process","pid":1}',
      '{"op":"mmap","pid":1,"addr":"0x1000","length":8192}',
      '# a comment between',
      '{"op":"open","ctx":"c","pid":1}',
      '{"op":"ioas_alloc","ioas":"A"}',
    ].join('\n');
    const streamed = [...streamTraceText(text).entries];
    expect(streamed.map((e) => [e.line, e.op.op])).toEqual([
      [1, 'process'],
      [2, 'mmap'],
      [4, 'open'],
      [5, 'ioas_alloc'],
    ]);
    expect(streamed).toEqual(parseTraceText(text).entries);
  });

  it('refuses a bad trace with the same issues as parseTraceText, before any op is read', () => {
    const text = '{"op":"process","pid":1}\n{"op":"mmap","pid":1,"addr":"0x1000"}\nnot json\n';
    const whole = (() => {
      try {
        parseTraceText(text, 'bad.jsonl');
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(whole).toBeInstanceOf(TraceError);
    expect(() => streamTraceText(text, 'bad.jsonl')).toThrow((whole as TraceError).message);
    expect(() => streamTraceText('# only a comment\n', 'empty.jsonl')).toThrow('nothing to replay');
    expect(streamTraceText('# only a comment\n', 'empty.jsonl', { allowEmpty: true }).opCount).toBe(0);
  });
});

describe('a replay that keeps no op records', () => {
  it.each(REPLAYED)('hands onOp the records the array form keeps, same digest: %s', (path) => {
    const text = read(path);
    const { fixes } = resolveVariant('upstream');
    const whole = replay(parseTraceText(text, path), { variant: 'upstream', fixes });
    const seen: OpRecord[] = [];
    const streamed = replay(streamTraceText(text, path), {
      variant: 'upstream',
      fixes,
      keepOps: false,
      onOp: (record) => seen.push(record),
    });
    expect(streamed.ops).toEqual([]);
    expect(seen).toEqual(whole.ops);
    expect(streamed.opCount).toBe(whole.ops.length);
    expect(whole.opCount).toBe(whole.ops.length);
    expect([streamed.digest, streamed.events]).toEqual([whole.digest, whole.events]);
    expect(streamed.violations).toEqual(whole.violations);
    expect(streamed.mismatches).toEqual(whole.mismatches);
  });

  it.each(REPLAYED)('records the same run from a streamed trace: digest, heads and op rows: %s', async (path) => {
    const text = read(path);
    const { fixes } = resolveVariant('upstream');
    const store = await openStore(':memory:');
    try {
      const options = { tracePath: path, traceText: text, variant: 'upstream', fixes };
      const a = await recordReplay(store, parseTraceText(text, path), options);
      const b = await recordReplay(store, streamTraceText(text, path), { ...options, keepOps: false });
      expect([b.head, b.result.digest]).toEqual([a.head, a.result.digest]);
      expect((await store.run(b.run))?.opsHeadHash).toBe((await store.run(a.run))?.opsHeadHash);
      const rowsB = [];
      for await (const op of opsInOrder(store, b.run)) rowsB.push(op);
      // opsInOrder reads in chunks what one read of every op returns.
      expect(rowsB).toEqual(await store.ops(b.run));
      expect(rowsB.map((o) => [o.index, o.line, o.op, o.digest])).toEqual(
        a.result.ops.map((o) => [o.index, o.line, o.op, o.digest]),
      );
    } finally {
      await store.close();
    }
  });
});
