import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

import { DEFAULT_TRACE_HEADER, TRACE_OPS, U64_MAX } from '../../../src/events/trace.js';
import { renderTraceIssues, TraceError } from '../../../src/replay/errors.js';
import type { TraceIssue } from '../../../src/replay/errors.js';
import { MAX_TRACE_ISSUES, parseTraceFile, parseTraceText } from '../../../src/replay/parse.js';
import type { ParsedTrace } from '../../../src/replay/parse.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/traces/', import.meta.url));
const EXAMPLE_PATH = join(FIXTURES, 'example.jsonl');
const OBSERVED_PATH = join(FIXTURES, 'observed.jsonl');

const EXAMPLE = readFileSync(EXAMPLE_PATH, 'utf8');

const HEADER_DEFAULTS = {
  format: 'ioptrace-trace',
  version: 1,
  page_size: 4096,
  test_build: true,
  temp_memory_limit: 65536n,
  gup_zero_on_overflow: true,
  gup_unshare_read_pins: false,
} as const;

const ALL_OPS = TRACE_OPS.join(', ');

function trace(...lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

/** The TraceError that parsing `text` throws. */
function traceErrorOf(text: string): TraceError {
  try {
    parseTraceText(text, 'trace.jsonl');
  } catch (error) {
    if (error instanceof TraceError) return error;
    throw error;
  }
  throw new Error('the trace parsed without error');
}

/** What JSON.parse says about `text` (its wording differs between Node versions). */
function jsonParseReason(text: string): string {
  try {
    JSON.parse(text);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`${text} is valid JSON`);
}

function issuesOf(...lines: string[]): readonly TraceIssue[] {
  return traceErrorOf(trace(...lines)).issues;
}

/** The parsed form of `line`, after a process 1, a context 1 and an IOAS "A" have been created. */
function lastOp(line: string): ParsedTrace['entries'][number]['op'] {
  const parsed = parseTraceText(
    trace('{"op":"process","pid":1}', '{"op":"open","ctx":1}', '{"op":"ioas_alloc","ioas":"A"}', line),
  );
  const entry = parsed.entries.at(-1);
  if (entry === undefined) throw new Error('no entries');
  return entry.op;
}

const SETUP = [
  '{"op":"process","pid":1}',
  '{"op":"open","ctx":1}',
  '{"op":"ioas_alloc","ioas":"A"}',
  '{"op":"access_create","access":"mdev","ioas":"A"}',
];

describe('parseTraceText', () => {
  it('parses the example trace of the contract into complete ops with bigint addresses', () => {
    expect(parseTraceText(EXAMPLE)).toEqual({
      header: HEADER_DEFAULTS,
      entries: [
        { line: 2, op: { op: 'process', pid: '1', uid: 1000, memlock: 65536n, cap_ipc_lock: false }, observed: [] },
        {
          line: 3,
          op: {
            op: 'mmap',
            pid: '1',
            addr: 0x7f0000000000n,
            length: 8192n,
            huge: '4K',
            prot: 'rw',
            pfns: null,
            shared: false,
          },
          observed: [],
        },
        { line: 4, op: { op: 'open', ctx: '1', pid: '1', account: 'user', vfio_type1: false }, observed: [] },
        { line: 5, op: { op: 'ioas_alloc', ioas: 'A', ctx: '1' }, observed: [] },
        {
          line: 6,
          op: {
            op: 'ioas_map',
            ioas: 'A',
            pid: '1',
            uptr: 0x7f0000000000n,
            length: 8192n,
            iova: 0x1000000n,
            read: true,
            write: true,
          },
          observed: [],
        },
        { line: 7, op: { op: 'access_create', access: 'mdev', ioas: 'A', needs_pin_pages: true }, observed: [] },
        { line: 8, op: { op: 'exit', pid: '1' }, observed: [] },
        {
          line: 9,
          op: {
            op: 'access_pin',
            access: 'mdev',
            pid: 'kthread',
            iova: 0x1000000n,
            length: 4096n,
            write: true,
            expect: { errno: 'EFAULT' },
          },
          observed: [],
        },
      ],
      sha256: '87a5f441e9bcfde4848e690522aa49185b26f29b2234f42329a5477c22e484cf',
    });
  });

  it('gives the sha256 of the exact bytes of the text', () => {
    const text = trace('# é', '{"op":"process","pid":1}');
    expect(parseTraceText(text).sha256).toBe(createHash('sha256').update(Buffer.from(text, 'utf8')).digest('hex'));
  });

  it('applies every default of the contract when no header line is given', () => {
    expect(parseTraceText(trace('{"op":"process","pid":1}')).header).toEqual(HEADER_DEFAULTS);
    expect(DEFAULT_TRACE_HEADER).toEqual(HEADER_DEFAULTS);
  });

  it('reads the header settings, with defaults for the ones left out', () => {
    const parsed = parseTraceText(
      trace(
        '{"format":"ioptrace-trace","version":1,"page_size":65536,"temp_memory_limit":"0x20","test_build":false}',
        '{"op":"process","pid":1}',
      ),
    );
    expect(parsed.header).toEqual({
      format: 'ioptrace-trace',
      version: 1,
      page_size: 65536,
      test_build: false,
      temp_memory_limit: 32n,
      gup_zero_on_overflow: true,
      gup_unshare_read_pins: false,
    });
  });

  it('accepts the header after leading comments and counts comment and blank lines in line numbers', () => {
    const parsed = parseTraceText(
      trace(
        '# SPDX-License-Identifier: GPL-2.0-only',
        '',
        '{"format":"ioptrace-trace","version":1,"gup_zero_on_overflow":false}',
        '   # indented comment',
        '   ',
        '{"op":"process","pid":1}',
      ),
    );
    expect(parsed.header.gup_zero_on_overflow).toBe(false);
    expect(parsed.entries).toEqual([
      { line: 6, op: { op: 'process', pid: '1', uid: 1000, memlock: 65536n, cap_ipc_lock: false }, observed: [] },
    ]);
  });

  it('applies the defaults of process, ioas_map, domain_attach, access_create and access_pin', () => {
    expect(lastOp('{"op":"ioas_map","ioas":"A","uptr":4096,"length":4096}')).toEqual({
      op: 'ioas_map',
      ioas: 'A',
      pid: '1',
      uptr: 4096n,
      length: 4096n,
      iova: null,
      read: true,
      write: true,
    });
    expect(lastOp('{"op":"domain_attach","domain":"d","ioas":"A"}')).toEqual({
      op: 'domain_attach',
      domain: 'd',
      ioas: 'A',
      kind: 'mock',
      pgsizes: null,
      aperture: null,
    });
    expect(lastOp('{"op":"access_create","access":"a","ioas":"A"}')).toEqual({
      op: 'access_create',
      access: 'a',
      ioas: 'A',
      needs_pin_pages: true,
    });
    expect(parseTraceText(trace('{"op":"process","pid":"p"}')).entries[0]?.op).toEqual({
      op: 'process',
      pid: 'p',
      uid: 1000,
      memlock: 65536n,
      cap_ipc_lock: false,
    });
  });

  it('sets the access_rw kthread flag to true for pid "kthread" and to false otherwise', () => {
    const rw = (fields: string) =>
      parseTraceText(trace(...SETUP, `{"op":"access_rw","access":"mdev","iova":0,"length":2${fields}}`)).entries[4]?.op;
    expect(rw(',"pid":"kthread"')).toEqual({
      op: 'access_rw',
      access: 'mdev',
      pid: 'kthread',
      iova: 0n,
      length: 2n,
      write: false,
      data: null,
      kthread: true,
    });
    expect(rw(',"pid":1')).toMatchObject({ pid: '1', kthread: false });
    expect(rw('')).toMatchObject({ pid: '1', kthread: false });
    expect(rw(',"pid":"kthread","kthread":false')).toMatchObject({ pid: 'kthread', kthread: false });
    expect(rw(',"write":true,"data":"ABcd"')).toMatchObject({ write: true, data: 'abcd', kthread: false });
  });

  it('writes unmap-all as the ioctl does: iova 0, length 2^64 - 1', () => {
    expect(lastOp('{"op":"ioas_unmap","ioas":"A","all":true}')).toEqual({
      op: 'ioas_unmap',
      ioas: 'A',
      all: true,
      iova: 0n,
      length: U64_MAX,
    });
    expect(lastOp('{"op":"ioas_unmap","ioas":"A","iova":"0x1000","length":4096}')).toEqual({
      op: 'ioas_unmap',
      ioas: 'A',
      all: false,
      iova: 4096n,
      length: 4096n,
    });
  });

  it('normalises every form of expect to the object form, EDEADLOCK to EDEADLK', () => {
    const expectOf = (value: string) =>
      lastOp(`{"op":"vfio_unmap","ioas":"A","iova":0,"length":4096,"expect":${value}}`);
    expect(expectOf('"ok"')).toMatchObject({ expect: { errno: 'ok' } });
    expect(expectOf('"EDEADLOCK"')).toMatchObject({ expect: { errno: 'EDEADLK' } });
    expect(expectOf('{"unmapped":"0x1000","data":"FF"}')).toMatchObject({
      expect: { errno: 'ok', unmapped: 4096n, data: 'ff' },
    });
    expect(expectOf('{"errno":"ENOENT","unmapped":0}')).toMatchObject({ expect: { errno: 'ENOENT', unmapped: 0n } });
  });

  it('records the first process and the first context where pid and ctx are omitted', () => {
    const parsed = parseTraceText(
      trace(
        '{"op":"process","pid":"a"}',
        '{"op":"process","pid":"b"}',
        '{"op":"open","ctx":"c1","pid":"b"}',
        '{"op":"open","ctx":"c2"}',
        '{"op":"ioas_alloc","ioas":"A"}',
        '{"op":"ioas_alloc","ioas":"B","ctx":"c2"}',
        '{"op":"check_refs","uptr":0,"length":4096,"refs":0}',
      ),
    );
    expect(parsed.entries.map((entry) => entry.op)).toMatchObject([
      { pid: 'a' },
      { pid: 'b' },
      { ctx: 'c1', pid: 'b' },
      { ctx: 'c2', pid: 'a' },
      { ioas: 'A', ctx: 'c1' },
      { ioas: 'B', ctx: 'c2' },
      { op: 'check_refs', pid: 'a', uptr: 0n, length: 4096n, refs: 0 },
    ]);
  });

  it('lets a process that has exited be named again', () => {
    const parsed = parseTraceText(
      trace(
        '{"op":"process","pid":1}',
        '{"op":"exit","pid":1}',
        '{"op":"check_refs","pid":1,"uptr":0,"length":4096,"refs":1}',
      ),
    );
    expect(parsed.entries[2]?.op).toEqual({ op: 'check_refs', pid: '1', uptr: 0n, length: 4096n, refs: 1 });
  });

  it('attaches observed lines to the op before them', () => {
    const parsed = parseTraceText(
      trace(
        ...SETUP,
        '{"op":"domain_attach","domain":"d","ioas":"A"}',
        '{"observed":"iommu_map","domain":"d","iova":"0x1000000","paddr":"0x40000000","size":4096}',
        '# a comment between observations',
        '{"observed":"result","errno":"EDEADLOCK","unmapped":0}',
        '{"op":"domain_detach","domain":"d"}',
        '{"observed":"iommu_unmap","domain":"d","iova":"0x1000000","size":4096,"unmapped":4096}',
      ),
    );
    expect(parsed.entries.slice(4)).toEqual([
      {
        line: 5,
        op: { op: 'domain_attach', domain: 'd', ioas: 'A', kind: 'mock', pgsizes: null, aperture: null },
        observed: [
          { observed: 'iommu_map', domain: 'd', iova: 0x1000000n, paddr: 0x40000000n, size: 4096n },
          { observed: 'result', errno: 'EDEADLK', unmapped: 0n },
        ],
      },
      {
        line: 9,
        op: { op: 'domain_detach', domain: 'd' },
        observed: [{ observed: 'iommu_unmap', domain: 'd', iova: 0x1000000n, size: 4096n, unmapped: 4096n }],
      },
    ]);
  });

  it('parses the observed fixture with its settings, physical layout and observations', () => {
    const parsed = parseTraceText(readFileSync(OBSERVED_PATH, 'utf8'));
    expect(parsed.header).toEqual({
      format: 'ioptrace-trace',
      version: 1,
      page_size: 4096,
      test_build: false,
      temp_memory_limit: 1024n,
      gup_zero_on_overflow: false,
      gup_unshare_read_pins: false,
    });
    expect(parsed.entries.map((entry) => [entry.line, entry.op.op, entry.observed.length])).toEqual([
      [4, 'process', 0],
      [5, 'mmap', 0],
      [6, 'open', 0],
      [7, 'ioas_alloc', 0],
      [8, 'ioas_map', 1],
      [10, 'access_create', 0],
      [11, 'access_pin', 2],
      [15, 'domain_attach', 2],
      [18, 'domain_detach', 2],
      [21, 'access_unpin', 1],
      [23, 'ioas_unmap', 1],
    ]);
    expect(parsed.entries[0]?.op).toEqual({
      op: 'process',
      pid: 'vm',
      uid: 1000,
      memlock: 'unlimited',
      cap_ipc_lock: true,
    });
    expect(parsed.entries[1]?.op).toEqual({
      op: 'mmap',
      pid: 'vm',
      addr: 0x7f0000000000n,
      length: 0x400000n,
      huge: '2M',
      prot: 'rw',
      shared: false,
      pfns: [
        [262144, 512],
        [393216, 512],
      ],
    });
    expect(parsed.entries[6]?.observed).toEqual([
      { observed: 'pin', pfn: 262145, count: 1 },
      { observed: 'result', errno: 'ok', pfns: [[262145, 1]] },
    ]);
    expect(parsed.entries[10]).toEqual({
      line: 23,
      op: {
        op: 'ioas_unmap',
        ioas: 'A',
        all: true,
        iova: 0n,
        length: U64_MAX,
        expect: { errno: 'ok', unmapped: 0x400000n },
      },
      observed: [{ observed: 'result', errno: 'ok', unmapped: 4194304n }],
    });
  });
});

describe('parseTraceText errors', () => {
  it('names the line and the JSON.parse reason for bad JSON on line 3', () => {
    const bad = '{"op":"exit",}';
    expect(issuesOf('{"op":"process","pid":1}', '# two', bad)).toEqual([
      { line: 3, field: null, message: `invalid JSON: ${jsonParseReason(bad)}` },
    ]);
  });

  it('refuses a JSON value that is not an object', () => {
    expect(issuesOf('[1,2]', '"op"', 'null')).toEqual([
      { line: 1, field: null, message: 'expected a JSON object, got an array' },
      { line: 2, field: null, message: 'expected a JSON object, got "op"' },
      { line: 3, field: null, message: 'expected a JSON object, got null' },
    ]);
  });

  it('refuses a line with neither op, observed nor a header format, naming the field op', () => {
    expect(issuesOf('{"pid":1}')).toEqual([
      {
        line: 1,
        field: 'op',
        message: 'required field is missing (a line is an op, an "observed" line or the header)',
      },
    ]);
  });

  it('names the valid ops for an unknown op', () => {
    expect(issuesOf('{"op":"ioas_frob","ioas":"A"}', '{"op":7}')).toEqual([
      { line: 1, field: 'op', message: `unknown op "ioas_frob"; expected one of: ${ALL_OPS}` },
      { line: 2, field: 'op', message: `unknown op 7; expected one of: ${ALL_OPS}` },
    ]);
  });

  it('names a missing required field', () => {
    expect(issuesOf(...SETUP, '{"op":"ioas_map","ioas":"A","pid":1,"uptr":0}')).toEqual([
      { line: 5, field: 'length', message: 'required field is missing' },
    ]);
    expect(issuesOf(...SETUP, '{"op":"ioas_unmap","ioas":"A"}')).toEqual([
      { line: 5, field: 'iova', message: 'required field is missing (or "all": true)' },
      { line: 5, field: 'length', message: 'required field is missing (or "all": true)' },
    ]);
  });

  it('names a field of the wrong type', () => {
    expect(
      issuesOf(
        ...SETUP,
        '{"op":"ioas_huge_pages","ioas":"A","enable":"yes"}',
        '{"op":"ioas_map","ioas":"A","uptr":true,"length":4096}',
        '{"op":"ioas_alloc","ioas":{"name":"B"}}',
        '{"op":"mmap","addr":0,"length":4096,"huge":"3M","prot":"w"}',
      ),
    ).toEqual([
      { line: 5, field: 'enable', message: 'expected a boolean, got "yes"' },
      {
        line: 6,
        field: 'uptr',
        message: 'expected an integer (a number, or a decimal or 0x hex string), got true',
      },
      { line: 7, field: 'ioas', message: 'expected a name (a non-empty string or an integer), got an object' },
      { line: 8, field: 'huge', message: 'expected one of "4K", "2M", "1G", got "3M"' },
      { line: 8, field: 'prot', message: 'expected one of "rw", "r", got "w"' },
    ]);
  });

  it('refuses a name that every JavaScript object already has, instead of replaying it wrong', () => {
    expect(
      issuesOf(
        '{"op":"process","pid":"constructor"}',
        '{"op":"open","ctx":"__proto__","pid":1}',
        '{"op":"ioas_alloc","ioas":"toString"}',
        '{"op":"ioas_alloc","ioas":"constructors"}',
      ),
    ).toEqual([
      {
        line: 1,
        field: 'pid',
        message: '"constructor" cannot name an object: it is a built-in property name of the model\'s tables',
      },
      {
        line: 2,
        field: 'ctx',
        message: '"__proto__" cannot name an object: it is a built-in property name of the model\'s tables',
      },
      {
        line: 3,
        field: 'ioas',
        message: '"toString" cannot name an object: it is a built-in property name of the model\'s tables',
      },
    ]);
  });

  it('names each unknown field, listing the fields of the op', () => {
    expect(issuesOf('{"op":"process","pid":1,"mem_lock":0,"gid":5}')).toEqual([
      { line: 1, field: 'mem_lock', message: 'unknown field (process takes: pid, uid, memlock, cap_ipc_lock, expect)' },
      { line: 1, field: 'gid', message: 'unknown field (process takes: pid, uid, memlock, cap_ipc_lock, expect)' },
    ]);
    expect(issuesOf('{"op":"process","pid":1,"expect":{"errno":"ok","iovas":0}}')).toEqual([
      { line: 1, field: 'expect.iovas', message: 'unknown field' },
    ]);
  });

  it('refuses a 2^64 overflow in a hex or decimal string, naming the field', () => {
    expect(
      issuesOf(
        ...SETUP,
        '{"op":"access_pin","access":"mdev","iova":"0x10000000000000000","length":4096}',
        '{"op":"access_pin","access":"mdev","iova":0,"length":"18446744073709551616"}',
      ),
    ).toEqual([
      { line: 5, field: 'iova', message: '2^64 overflow: "0x10000000000000000" is above 2^64 - 1' },
      { line: 6, field: 'length', message: '2^64 overflow: "18446744073709551616" is above 2^64 - 1' },
    ]);
  });

  it('accepts 2^64 - 1 written as a hex or decimal string', () => {
    expect(
      lastOp('{"op":"vfio_unmap","ioas":"A","iova":"0xFFFFFFFFFFFFFFFF","length":"18446744073709551615"}'),
    ).toEqual({
      op: 'vfio_unmap',
      ioas: 'A',
      iova: U64_MAX,
      length: U64_MAX,
    });
  });

  it('refuses a JSON number above 2^53 - 1 and says to write it as a string', () => {
    expect(issuesOf('{"op":"temp_memory_limit","bytes":9007199254740992}')).toEqual([
      {
        line: 1,
        field: 'bytes',
        message: 'JSON number above 2^53 - 1 loses precision: write it as a string (decimal or 0x hex)',
      },
    ]);
    expect(parseTraceText(trace('{"op":"temp_memory_limit","bytes":9007199254740991}')).entries[0]?.op).toEqual({
      op: 'temp_memory_limit',
      bytes: 9007199254740991n,
    });
  });

  it('refuses small counts above 2^53 - 1 even as strings, and uids above 2^32 - 1', () => {
    expect(
      issuesOf(
        '{"op":"process","pid":1,"uid":"0x100000000"}',
        '{"op":"check_refs","uptr":0,"length":1,"refs":"9007199254740992"}',
        '{"op":"fault","nth":1e300}',
      ),
    ).toEqual([
      { line: 1, field: 'uid', message: '4294967296 is above 2^32 - 1' },
      { line: 2, field: 'refs', message: '9007199254740992 is above 2^53 - 1' },
      { line: 3, field: 'nth', message: 'number above 2^53 - 1' },
    ]);
  });

  it('refuses negative numbers, fractions and malformed integer strings', () => {
    expect(
      issuesOf(
        '{"op":"temp_memory_limit","bytes":-1}',
        '{"op":"temp_memory_limit","bytes":4096.5}',
        '{"op":"temp_memory_limit","bytes":"-1"}',
        '{"op":"temp_memory_limit","bytes":"0x"}',
        '{"op":"temp_memory_limit","bytes":" 12"}',
        '{"op":"fault","nth":0}',
      ),
    ).toEqual([
      { line: 1, field: 'bytes', message: 'negative number -1: expected a non-negative integer' },
      { line: 2, field: 'bytes', message: 'expected an integer, got 4096.5' },
      { line: 3, field: 'bytes', message: 'expected an integer (decimal or 0x hex), got "-1"' },
      { line: 4, field: 'bytes', message: 'expected an integer (decimal or 0x hex), got "0x"' },
      { line: 5, field: 'bytes', message: 'expected an integer (decimal or 0x hex), got " 12"' },
      { line: 6, field: 'nth', message: 'expected at least 1, got 0' },
    ]);
  });

  it('refuses odd-length and non-hex data', () => {
    expect(
      issuesOf(
        '{"op":"process","pid":1}',
        '{"op":"write","addr":0,"data":"abc"}',
        '{"op":"write","addr":0,"data":"0x00"}',
      ),
    ).toEqual([
      { line: 2, field: 'data', message: 'odd number of hex digits (3): expected whole bytes' },
      { line: 3, field: 'data', message: 'expected hex digits, got "0x00"' },
    ]);
  });

  it('names the element path inside pfns and ranges', () => {
    expect(
      issuesOf(
        '{"op":"process","pid":1}',
        '{"op":"mmap","addr":0,"length":8192,"pfns":[[1,1],[2,-3],[4]]}',
        '{"op":"mmap","addr":0,"length":8192,"pfns":[]}',
      ),
    ).toEqual([
      { line: 2, field: 'pfns.1.1', message: 'negative number -3: expected a non-negative integer' },
      { line: 2, field: 'pfns.2', message: 'expected a pair [first_pfn, count]' },
      { line: 3, field: 'pfns', message: 'expected at least one [first_pfn, count] run' },
    ]);
  });

  it('refuses pfns that do not cover the mapped length in pages', () => {
    expect(issuesOf('{"op":"process","pid":1}', '{"op":"mmap","addr":0,"length":8192,"pfns":[[100,3]]}')).toEqual([
      { line: 2, field: 'pfns', message: 'pfns cover 3 pages but length 8192 is 2 pages of 4096 bytes' },
    ]);
  });

  it('refuses access_rw data that is missing for a write, present for a read, or of another length', () => {
    expect(
      issuesOf(
        ...SETUP,
        '{"op":"access_rw","access":"mdev","iova":0,"length":4,"write":true}',
        '{"op":"access_rw","access":"mdev","iova":0,"length":1,"data":"00"}',
        '{"op":"access_rw","access":"mdev","iova":0,"length":4,"write":true,"data":"00"}',
      ),
    ).toEqual([
      { line: 5, field: 'data', message: 'required field is missing (for "write": true)' },
      {
        line: 6,
        field: 'data',
        message: 'only for writes ("write": true); put the expected read in "expect": {"data": ...}',
      },
      { line: 7, field: 'data', message: '1 byte but length is 4' },
    ]);
  });

  it('refuses an unknown errno and an expect of another type', () => {
    expect(issuesOf('{"op":"process","pid":1,"expect":"EWHAT"}', '{"op":"process","pid":2,"expect":22}')).toEqual([
      {
        line: 1,
        field: 'expect',
        message: 'unknown errno "EWHAT": expected "ok" or a Linux errno name (EFAULT, ENOMEM, EINVAL, ...)',
      },
      {
        line: 2,
        field: 'expect',
        message: 'expected "ok", an errno name or an object {errno, iova, unmapped, data}, got 22',
      },
    ]);
  });

  it('refuses a reference to an IOAS that does not exist', () => {
    expect(issuesOf('{"op":"process","pid":1}', '{"op":"ioas_map","ioas":"B","uptr":0,"length":4096}')).toEqual([
      { line: 2, field: 'ioas', message: 'unknown IOAS "B": no earlier ioas_alloc creates it' },
    ]);
  });

  it('accepts the same reference when the op expects ENOENT, and creates nothing', () => {
    const parsed = parseTraceText(
      trace(
        '{"op":"process","pid":1}',
        '{"op":"ioas_map","ioas":"B","uptr":0,"length":4096,"expect":"ENOENT"}',
        '{"op":"domain_attach","domain":"d","ioas":"B","expect":{"errno":"ENOENT"}}',
      ),
    );
    expect(parsed.entries[1]?.op).toEqual({
      op: 'ioas_map',
      ioas: 'B',
      pid: '1',
      uptr: 0n,
      length: 4096n,
      iova: null,
      read: true,
      write: true,
      expect: { errno: 'ENOENT' },
    });
    expect(
      issuesOf(
        '{"op":"domain_attach","domain":"d","ioas":"B","expect":"ENOENT"}',
        '{"op":"domain_detach","domain":"d"}',
      ),
    ).toEqual([{ line: 2, field: 'domain', message: 'unknown domain "d": no earlier domain_attach creates it' }]);
  });

  it('refuses a name used after its removal and a name created twice', () => {
    expect(
      issuesOf(
        ...SETUP,
        '{"op":"access_destroy","access":"mdev"}',
        '{"op":"access_pin","access":"mdev","iova":0,"length":4096}',
        '{"op":"ioas_alloc","ioas":"A"}',
        '{"op":"process","pid":"1"}',
      ),
    ).toEqual([
      { line: 6, field: 'access', message: 'access "mdev" was destroyed on line 5' },
      { line: 7, field: 'ioas', message: 'IOAS "A" already exists (created on line 3)' },
      { line: 8, field: 'pid', message: 'process "1" already exists (created on line 1)' },
    ]);
  });

  it('refuses a caller that is not a process, "kthread" where an address space is needed, and a missing default', () => {
    expect(
      issuesOf(
        '{"op":"open","ctx":1}',
        '{"op":"ioas_alloc","ioas":"A","ctx":2}',
        '{"op":"process","pid":1}',
        '{"op":"mmap","pid":"kthread","addr":0,"length":4096}',
        '{"op":"check_refs","pid":9,"uptr":0,"length":4096,"refs":0}',
        '{"op":"process","pid":"kthread"}',
      ),
    ).toEqual([
      { line: 1, field: 'pid', message: 'no process yet to default to: name a pid or start a process first' },
      { line: 2, field: 'ctx', message: 'unknown context "2": no earlier open creates it' },
      { line: 4, field: 'pid', message: '"kthread" has no address space: name a process' },
      { line: 5, field: 'pid', message: 'unknown process "9": no earlier process creates it' },
      { line: 6, field: 'pid', message: '"kthread" is reserved for kernel threads' },
    ]);
    expect(issuesOf('{"op":"ioas_alloc","ioas":"A"}')).toEqual([
      { line: 1, field: 'ctx', message: 'no context yet to default to: name a ctx or open one first' },
    ]);
  });

  it('accepts "kthread" as the caller of open, access_pin and access_rw', () => {
    const parsed = parseTraceText(
      trace(
        '{"op":"open","ctx":"k","pid":"kthread"}',
        '{"op":"ioas_alloc","ioas":"A"}',
        '{"op":"access_create","access":"a","ioas":"A"}',
        '{"op":"access_pin","access":"a","pid":"kthread","iova":0,"length":4096}',
      ),
    );
    expect(parsed.entries.map((entry) => entry.op)).toMatchObject([
      { pid: 'kthread' },
      { ctx: 'k' },
      {},
      { pid: 'kthread' },
    ]);
  });

  it('refuses an observed line before any op and one naming a domain never attached', () => {
    expect(
      issuesOf(
        '{"format":"ioptrace-trace","version":1}',
        '{"observed":"warn","site":"iopt_unmap_iova"}',
        '{"op":"process","pid":1}',
        '{"observed":"iommu_map","domain":"x","iova":0,"paddr":0,"size":4096}',
        '{"observed":"pin","pfn":1,"count":0,"refs":1}',
        '{"observed":"map"}',
      ),
    ).toEqual([
      { line: 2, field: 'observed', message: 'observation before any op: it must follow the op it records' },
      { line: 4, field: 'domain', message: 'unknown domain "x": no earlier domain_attach creates it' },
      { line: 5, field: 'count', message: 'expected at least 1, got 0' },
      { line: 5, field: 'refs', message: 'unknown field (pin takes: pfn, count)' },
      {
        line: 6,
        field: 'observed',
        message: 'unknown observation "map"; expected one of: iommu_map, iommu_unmap, pin, unpin, warn, result',
      },
    ]);
  });

  it('refuses a header after the first non-comment line, a wrong version and a bad page size', () => {
    expect(
      issuesOf(
        '{"format":"ioptrace-trace","version":6,"page_size":6000,"gup":true}',
        '{"format":"ioptrace-trace","version":1}',
      ),
    ).toEqual([
      { line: 1, field: 'version', message: 'unsupported version 6: this ioptrace reads versions 1, 2, 3, 4, 5' },
      { line: 1, field: 'page_size', message: 'expected a power of two' },
      {
        line: 1,
        field: 'gup',
        message:
          'unknown field (the header takes: format, version, page_size, test_build, temp_memory_limit, gup_zero_on_overflow, gup_unshare_read_pins)',
      },
      { line: 2, field: 'format', message: 'the header must be the first non-comment line' },
    ]);
    expect(issuesOf('{"format":"ioptrace","page_size":2048}')).toEqual([
      { line: 1, field: 'format', message: 'expected "ioptrace-trace", got "ioptrace"' },
      { line: 1, field: 'version', message: 'required field is missing' },
      { line: 1, field: 'page_size', message: 'expected at least 4096, got 2048' },
    ]);
  });

  it('reports every error of a trace with its line, and no cascade from a line that failed', () => {
    expect(
      issuesOf(
        '{"op":"process","pid":1}',
        '{"op":"open","ctx":1,"acount":"mm"}',
        '{"op":"ioas_alloc","ioas":"A"}',
        'not json',
        '{"op":"ioas_map","ioas":"A","uptr":0,"length":"0x1g"}',
        '{"op":"ioas_unmap","ioas":"A","all":true}',
        '{"op":"access_pin","access":"none","iova":0,"length":4096}',
      ),
    ).toEqual([
      { line: 2, field: 'acount', message: 'unknown field (open takes: ctx, pid, account, vfio_type1, fd, expect)' },
      { line: 4, field: null, message: `invalid JSON: ${jsonParseReason('not json')}` },
      { line: 5, field: 'length', message: 'expected an integer (decimal or 0x hex), got "0x1g"' },
      { line: 7, field: 'access', message: 'unknown access "none": no earlier access_create creates it' },
    ]);
  });

  it('throws one TraceError whose message shows the first five issues and counts the rest', () => {
    const error = traceErrorOf(trace(...Array.from({ length: 7 }, (_, i) => `{"op":"exit","pid":${i + 10}}`)));
    expect(error.name).toBe('TraceError');
    expect(error.fileName).toBe('trace.jsonl');
    expect(error.truncated).toBe(false);
    expect(error.message).toBe(
      [
        'trace.jsonl:1: field pid: unknown process "10": no earlier process creates it',
        'trace.jsonl:2: field pid: unknown process "11": no earlier process creates it',
        'trace.jsonl:3: field pid: unknown process "12": no earlier process creates it',
        'trace.jsonl:4: field pid: unknown process "13": no earlier process creates it',
        'trace.jsonl:5: field pid: unknown process "14": no earlier process creates it',
        '(and 2 more)',
      ].join('\n'),
    );
  });

  it('names the trace "trace" when no file name is given', () => {
    expect(() => parseTraceText('{')).toThrow(/^trace:1: invalid JSON: /);
  });

  it(`stops after ${MAX_TRACE_ISSUES} issues`, () => {
    const error = traceErrorOf(trace(...Array.from({ length: 1500 }, () => '{}')));
    expect(error.issues).toHaveLength(MAX_TRACE_ISSUES);
    expect(error.issues.at(-1)?.line).toBe(MAX_TRACE_ISSUES);
    expect(error.truncated).toBe(true);
    expect(error.message.split('\n').at(-1)).toBe('(and 995 more; stopped reading after 1000)');
  });
});

describe('renderTraceIssues', () => {
  it('renders a whole-line issue without a field', () => {
    expect(
      renderTraceIssues('t.jsonl', [
        { line: 3, field: null, message: 'expected a JSON object, got null' },
        { line: 4, field: 'pfns.1.0', message: 'expected an integer, got 1.5' },
      ]),
    ).toBe('t.jsonl:3: expected a JSON object, got null\nt.jsonl:4: field pfns.1.0: expected an integer, got 1.5');
  });
});

describe('parseTraceFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ioptrace-parse-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('gives the same result as parseTraceText on the fixtures', async () => {
    for (const path of [EXAMPLE_PATH, OBSERVED_PATH]) {
      expect(await parseTraceFile(path)).toEqual(parseTraceText(readFileSync(path, 'utf8')));
    }
    expect((await parseTraceFile(EXAMPLE_PATH)).sha256).toBe(
      '87a5f441e9bcfde4848e690522aa49185b26f29b2234f42329a5477c22e484cf',
    );
  });

  it('reads CRLF line ends and a byte order mark like parseTraceText, hashing the exact bytes', async () => {
    const text = `\uFEFF# crlf\r\n{"format":"ioptrace-trace","version":1}\r\n{"op":"process","pid":1}\r\n\r\n{"op":"exit"}`;
    const path = join(dir, 'crlf.jsonl');
    writeFileSync(path, text, 'utf8');
    const parsed = await parseTraceFile(path);
    expect(parsed).toEqual(parseTraceText(text));
    expect(parsed.entries.map((entry) => [entry.line, entry.op])).toEqual([
      [3, { op: 'process', pid: '1', uid: 1000, memlock: 65536n, cap_ipc_lock: false }],
      [5, { op: 'exit', pid: '1' }],
    ]);
    expect(parsed.sha256).toBe(createHash('sha256').update(readFileSync(path)).digest('hex'));
  });

  it('throws a TraceError naming the file path', async () => {
    const path = join(dir, 'bad.jsonl');
    writeFileSync(path, trace('{"op":"process","pid":1}', '{"op":"exit","pid":2}'));
    const error: unknown = await parseTraceFile(path).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TraceError);
    expect((error as TraceError).message).toBe(
      `${path}:2: field pid: unknown process "2": no earlier process creates it`,
    );
  });

  it('rejects with the fs error when the file cannot be read', async () => {
    await expect(parseTraceFile(join(dir, 'missing.jsonl'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('trace integers', () => {
  it('parse to the same bigint from a decimal string, a hex string and (when safe) a JSON number', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: U64_MAX }), fc.boolean(), (n, upper) => {
        const hex = n.toString(16);
        const forms = [`"${n}"`, `"0x${upper ? hex.toUpperCase() : hex}"`];
        if (n <= BigInt(Number.MAX_SAFE_INTEGER)) forms.push(n.toString());
        for (const form of forms) {
          const parsed = parseTraceText(`{"op":"temp_memory_limit","bytes":${form}}`);
          expect(parsed.entries[0]?.op).toEqual({ op: 'temp_memory_limit', bytes: n });
        }
      }),
    );
  });

  it('above 2^64 - 1 are refused as a 2^64 overflow', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: U64_MAX + 1n, max: 1n << 80n }), (n) => {
        const text = `0x${n.toString(16)}`;
        expect(traceErrorOf(`{"op":"temp_memory_limit","bytes":"${text}"}`).issues).toEqual([
          { line: 1, field: 'bytes', message: `2^64 overflow: "${text}" is above 2^64 - 1` },
        ]);
      }),
    );
  });
});
