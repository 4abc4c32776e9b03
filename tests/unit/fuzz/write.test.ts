import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { DEFAULT_TRACE_HEADER, U64_MAX } from '../../../src/events/trace.js';
import type { TraceOp } from '../../../src/events/trace.js';
import { generateTrace } from '../../../src/fuzz/generate.js';
import { findingFileStem, readTag, serializeHeader, serializeOp, serializeTrace } from '../../../src/fuzz/write.js';
import { parseTraceText } from '../../../src/replay/parse.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Every shipped trace and fixture: real traces with expectations, observations and every op kind. */
function shippedTraces(): string[] {
  const dirs = ['replays', 'replays/selftest', 'tests/fixtures/traces'];
  return dirs.flatMap((dir) =>
    readdirSync(join(ROOT, dir))
      .filter((f) => f.endsWith('.jsonl'))
      .map((f) => join(ROOT, dir, f)),
  );
}

function roundTrip(text: string): void {
  const parsed = parseTraceText(text);
  const ops = parsed.entries.map((e) => e.op);
  const again = parseTraceText(serializeTrace({ header: parsed.header, ops }));
  expect(again.header).toEqual(parsed.header);
  expect(again.entries.map((e) => e.op)).toEqual(ops);
}

describe('serializeOp', () => {
  it('writes addresses in hex, lengths as numbers, and leaves out defaults', () => {
    const op: TraceOp = {
      op: 'mmap',
      pid: 'p1',
      addr: 0x7f0000200000n,
      length: 4194304n,
      huge: '2M',
      prot: 'rw',
      pfns: [[0x100000, 1024]],
      shared: false,
    };
    expect(serializeOp(op)).toBe(
      '{"op":"mmap","pid":"p1","addr":"0x7f0000200000","length":4194304,"huge":"2M","pfns":[["0x100000",1024]]}',
    );
    expect(serializeOp({ ...op, shared: true })).toBe(
      '{"op":"mmap","pid":"p1","addr":"0x7f0000200000","length":4194304,"huge":"2M","pfns":[["0x100000",1024]],"shared":true}',
    );
  });

  it('writes unmap-all as "all": true, without iova and length', () => {
    const op: TraceOp = { op: 'ioas_unmap', ioas: 'A', all: true, iova: 0n, length: U64_MAX };
    expect(serializeOp(op)).toBe('{"op":"ioas_unmap","ioas":"A","all":true}');
  });

  it('writes lengths above 2^53 - 1 as hex strings and leaves out a null (allocated) IOVA', () => {
    const op: TraceOp = {
      op: 'ioas_map',
      ioas: 'A',
      pid: '1',
      uptr: 0xfffffffffffff000n,
      length: 1n << 60n,
      iova: null,
      read: true,
      write: false,
    };
    expect(serializeOp(op)).toBe(
      '{"op":"ioas_map","ioas":"A","pid":"1","uptr":"0xfffffffffffff000","length":"0x1000000000000000","write":false}',
    );
  });

  it('writes the kthread flag of access_rw only when it is not implied by the caller', () => {
    const base = { op: 'access_rw', access: 'a', iova: 0x1000000n, length: 2n, write: true, data: 'beef' } as const;
    expect(serializeOp({ ...base, pid: 'kthread', kthread: true })).toBe(
      '{"op":"access_rw","access":"a","pid":"kthread","iova":"0x1000000","length":2,"write":true,"data":"beef"}',
    );
    expect(serializeOp({ ...base, pid: 'kthread', kthread: false })).toBe(
      '{"op":"access_rw","access":"a","pid":"kthread","iova":"0x1000000","length":2,"write":true,"data":"beef","kthread":false}',
    );
  });

  it('writes an expectation as an errno name, or an object when it checks values', () => {
    expect(serializeOp({ op: 'exit', pid: '1', expect: { errno: 'ok' } })).toBe(
      '{"op":"exit","pid":"1","expect":"ok"}',
    );
    expect(
      serializeOp({
        op: 'ioas_unmap',
        ioas: 'A',
        all: true,
        iova: 0n,
        length: U64_MAX,
        expect: { errno: 'ok', unmapped: 8192n },
      }),
    ).toBe('{"op":"ioas_unmap","ioas":"A","all":true,"expect":{"unmapped":8192}}');
    expect(
      serializeOp({
        op: 'ioas_allow_iovas',
        ioas: 'A',
        ranges: [[0x1000n, 0x1fffn]],
        expect: { errno: 'EINVAL', iova: 16n },
      }),
    ).toBe(
      '{"op":"ioas_allow_iovas","ioas":"A","ranges":[["0x1000","0x1fff"]],"expect":{"errno":"EINVAL","iova":"0x10"}}',
    );
  });
});

describe('serializeHeader', () => {
  it('writes only the settings that differ from the defaults', () => {
    expect(serializeHeader(DEFAULT_TRACE_HEADER)).toBe('{"format":"ioptrace-trace","version":1}');
    expect(serializeHeader({ ...DEFAULT_TRACE_HEADER, temp_memory_limit: 16n, test_build: false })).toBe(
      '{"format":"ioptrace-trace","version":1,"test_build":false,"temp_memory_limit":16}',
    );
  });
});

describe('serializeTrace round trip', () => {
  it('gives back the same ops for every shipped trace and fixture', () => {
    const files = shippedTraces();
    expect(files.length).toBeGreaterThanOrEqual(27);
    for (const file of files) roundTrip(readFileSync(file, 'utf8'));
  });

  it('gives back the same ops for 200 generated traces', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const trace = generateTrace({ seed, maxOps: 40 });
      const parsed = parseTraceText(serializeTrace(trace));
      expect(parsed.entries.map((e) => e.op)).toEqual(trace.ops);
    }
  });

  it('puts comments and the tag before the header', () => {
    const text = serializeTrace({
      header: DEFAULT_TRACE_HEADER,
      ops: [{ op: 'process', pid: '1', uid: 1000, memlock: 'unlimited', cap_ipc_lock: false }],
      comments: ['first', ''],
      tag: { variant: 'v3', kind: 'bad_free', fn: 'pfn_reader_user_pin', seed: 7 },
    });
    expect(text).toBe(
      [
        '# first',
        '#',
        '# ioptrace-fuzz: {"variant":"v3","kind":"bad_free","fn":"pfn_reader_user_pin","seed":7}',
        '{"format":"ioptrace-trace","version":1}',
        '{"op":"process","pid":"1","memlock":"unlimited"}',
        '',
      ].join('\n'),
    );
    expect(readTag(text)).toEqual({ variant: 'v3', kind: 'bad_free', fn: 'pfn_reader_user_pin', seed: 7 });
  });
});

describe('readTag', () => {
  it('finds nothing in a trace without a tag, or after the first op line', () => {
    expect(readTag('{"format":"ioptrace-trace","version":1}\n')).toBeNull();
    expect(readTag('{"op":"process","pid":1}\n# ioptrace-fuzz: {"variant":"v3","kind":"k","fn":"f"}\n')).toBeNull();
  });

  it('refuses a tag without variant, kind and fn, or with broken JSON', () => {
    expect(readTag('# ioptrace-fuzz: {"variant":"v3","kind":"k"}\n')).toBeNull();
    expect(readTag('# ioptrace-fuzz: {"variant":\n')).toBeNull();
  });
});

describe('findingFileStem', () => {
  it('joins kind and function and replaces what a file name should not hold', () => {
    expect(findingFileStem('bad_free', 'pfn_reader_user_pin')).toBe('bad_free-pfn_reader_user_pin');
    expect(findingFileStem('warn', 'a/b c')).toBe('warn-a_b_c');
  });
});
