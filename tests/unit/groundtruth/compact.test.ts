// SPDX-License-Identifier: GPL-2.0-only
// The compact form of a batch (src/groundtruth/compact.ts): what the exporter's op table becomes, exactly,
// that it reads back to the same table, that bad input names its line and field, and how the runner's
// output is split into traces (a crash leaves the running trace unfinished).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeBatch, encodeBatch, encodeRow, parseRunnerOutput } from '../../../src/groundtruth/compact.js';
import { exportOps } from '../../../src/groundtruth/export-c.js';
import { parseTraceText } from '../../../src/replay/parse.js';

const FINDING = 'tests/fixtures/findings/mm-mode-stale-last-npinned.jsonl';
const rowsOf = (text: string) => exportOps(parseTraceText(text, 't')).rows;

const TRACE = [
  '{"format":"ioptrace-trace","version":1}',
  '{"op":"process","pid":1,"memlock":"unlimited"}',
  '{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":8192}',
  '{"op":"write","pid":1,"addr":"0x7f0000000ffe","data":"a1b2c3"}',
  '{"op":"open","ctx":"c","pid":1}',
  '{"op":"ioas_alloc","ioas":"A","ctx":"c"}',
  '{"op":"ioas_allow_iovas","ioas":"A","ranges":[["0x1000000","0x1ffffff"],["0xffffffffff000000","0xffffffffffffffff"]]}',
  '{"op":"domain_attach","domain":"D","ioas":"A"}',
  '{"op":"check_map","ioas":"A","iova":"0x1000000","length":4096,"uptr":"0x7f0000000000"}',
  '{"op":"mmap","pid":1,"addr":"0x7f0100000000","length":4096,"pfns":[[100,1]]}',
].join('\n');

describe('the compact form', () => {
  it('writes each op as one line of 15 fields, 64-bit values in hex', () => {
    const text = encodeBatch([{ name: 'one', rows: rowsOf(TRACE) }]);
    expect(text.split('\n')).toEqual([
      'ioptrace-batch 1',
      'T one 9',
      'O K_PROCESS 2 process -1 0 0 3e8 ffffffffffffffff 0 0 0 - - -',
      'O K_MMAP 3 mmap 0 0 0 7f0000000000 2000 0 0 0 - - -',
      'O K_WRITE 4 write 0 0 0 7f0000000ffe 0 0 0 0 - - a1b2c3',
      'O K_OPEN 5 open -1 0 0 0 0 0 0 0 - - -',
      'O K_IOAS_ALLOC 6 ioas_alloc 0 0 0 0 0 0 0 0 - - -',
      'O K_ALLOW_IOVAS 7 ioas_allow_iovas 0 0 0 0 0 0 0 2 1000000:1ffffff,ffffffffff000000:ffffffffffffffff - -',
      'O K_DOMAIN_ATTACH 8 domain_attach 0 0 0 0 0 0 0 0 - - -',
      'O K_CHECK_MAP 9 check_map 0 0 0 1000000 1000 7f0000000000 0 1 - 0 -',
      'O K_SKIP 10 mmap -1 0 0 0 0 0 0 0 - - explicit physical layout (pfns): user space cannot choose the PFNs behind its memory',
      'E',
      '',
    ]);
  });

  it('reads back to the same op table', () => {
    const traces = [
      { name: 'finding', rows: exportOps(parseTraceText(readFileSync(FINDING, 'utf8'), FINDING)).rows },
      { name: 'two.b-2_x', rows: rowsOf(TRACE) },
    ];
    expect(decodeBatch(encodeBatch(traces))).toEqual(traces);
  });

  it('refuses names and texts it cannot carry, and duplicate traces', () => {
    const rows = rowsOf(TRACE);
    expect(() => encodeBatch([{ name: 'a b', rows }])).toThrow('trace name "a b" is not a compact-form name');
    expect(() =>
      encodeBatch([
        { name: 'x', rows },
        { name: 'x', rows },
      ]),
    ).toThrow('trace "x" is twice in the batch');
    const row = rows[2]!;
    expect(() => encodeRow({ ...row, op: { ...row.op, text: 'a\nb' } })).toThrow(
      'op 3: its text cannot be carried on one compact-form line',
    );
  });

  it('names the line and field of bad input', () => {
    expect(() => decodeBatch('ioptrace-batch 2\n')).toThrow('line 1: expected "ioptrace-batch 1"');
    expect(() => decodeBatch('ioptrace-batch 1\nT a 1\nO K_NOPE 2 x -1 0 0 0 0 0 0 0 - - -\nE\n')).toThrow(
      'line 3: field KIND: unknown kind "K_NOPE"',
    );
    expect(() => decodeBatch('ioptrace-batch 1\nT a 1\nO K_MMAP 2 mmap 0 0 0 zz 0 0 0 0 - - -\nE\n')).toThrow(
      'line 3: field X: "zz" is not hex',
    );
    expect(() => decodeBatch('ioptrace-batch 1\nT a 2\nO K_MMAP 2 mmap 0 0 0 1 0 0 0 0 - - -\nE\n')).toThrow(
      'line 4: trace "a" has 1 op lines, its head says 2',
    );
    expect(() => decodeBatch('ioptrace-batch 1\nT a 1\n')).toThrow('the batch ends inside trace "a"');
  });
});

describe("the runner's output", () => {
  it('splits by trace, with how each ended; the one running when the VM died is unfinished', () => {
    const out = [
      '{"begin":"a","ops":1}',
      '{"op":1,"line":2,"name":"process","errno":"ok"}',
      '{"end":"a"}',
      '{"runner":"exit","trace":"a","status":0}',
      '{"begin":"b","ops":2}',
      '{"op":1,"line":2,"name":"process","errno":"ok"}',
      '{"runner":"timeout","trace":"b"}',
      '{"begin":"c","ops":3}',
      '[   12.5] Oops: 0000 [#1] SMP',
      '{"op":1,"line":2,"name":"process","errno":"ok"}',
    ].join('\n');
    expect(parseRunnerOutput(out)).toEqual([
      {
        name: 'a',
        how: 'exit',
        status: 0,
        output: '{"begin":"a","ops":1}\n{"op":1,"line":2,"name":"process","errno":"ok"}\n{"end":"a"}',
      },
      {
        name: 'b',
        how: 'timeout',
        status: null,
        output: '{"begin":"b","ops":2}\n{"op":1,"line":2,"name":"process","errno":"ok"}',
      },
      {
        name: 'c',
        how: 'unfinished',
        status: null,
        output: '{"begin":"c","ops":3}\n[   12.5] Oops: 0000 [#1] SMP\n{"op":1,"line":2,"name":"process","errno":"ok"}',
      },
    ]);
  });
});
