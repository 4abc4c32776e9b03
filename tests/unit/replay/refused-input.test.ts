import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { TraceError } from '../../../src/replay/errors.js';
import type { TraceIssue } from '../../../src/replay/errors.js';
import { duplicateKey } from '../../../src/replay/json-keys.js';
import { NO_OPERATIONS, parseTraceBytes, parseTraceFile, parseTraceText } from '../../../src/replay/parse.js';

function issues(run: () => unknown): readonly TraceIssue[] {
  try {
    run();
  } catch (error) {
    if (error instanceof TraceError) return error.issues;
    throw error;
  }
  throw new Error('no TraceError');
}

async function fileIssues(bytes: Uint8Array): Promise<readonly TraceIssue[]> {
  const path = join(dir, `t${Math.random().toString(16).slice(2)}.jsonl`);
  writeFileSync(path, bytes);
  try {
    await parseTraceFile(path);
  } catch (error) {
    if (error instanceof TraceError) return error.issues;
    throw error;
  }
  throw new Error('no TraceError');
}

const dir = mkdtempSync(join(tmpdir(), 'ioptrace-refused-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a trace with no operations', () => {
  it.each([
    ['empty', '', 1],
    ['blank lines', '\n\n', 1],
    ['comments only', '# a\n# b\n', 2],
    ['a header only', '{"format":"ioptrace-trace","version":1}\n', 1],
    ['a header and comments', '# licence\n{"format":"ioptrace-trace","version":1}\n# end', 3],
  ])('is refused when %s', async (_what, text, line) => {
    expect(issues(() => parseTraceText(text))).toEqual([{ line, field: null, message: NO_OPERATIONS }]);
    expect(await fileIssues(Buffer.from(text))).toEqual([{ line, field: null, message: NO_OPERATIONS }]);
  });

  it('says so in the error message', () => {
    expect(() => parseTraceText('# nothing\n', 'x.jsonl')).toThrow(
      'x.jsonl:1: trace has no operations (only a header, comments or blank lines): nothing to replay',
    );
  });
});

describe('duplicate keys', () => {
  const refused = 'duplicate key: a key may appear once per object (JSON would keep only the last value)';

  it('refuses a repeated top-level key, naming the line and the key', () => {
    const text = '{"op":"process","pid":1}\n# c\n{"op":"process","pid":2,"pid":3}\n';
    expect(issues(() => parseTraceText(text))).toEqual([{ line: 3, field: 'pid', message: refused }]);
  });

  it('refuses a repeated key inside a nested object, naming its path', () => {
    const text =
      '{"op":"process","pid":1}\n{"op":"mmap","addr":"0x1000","length":4096,"expect":{"errno":"ok","errno":"EINVAL"}}\n';
    expect(issues(() => parseTraceText(text))).toEqual([{ line: 2, field: 'expect.errno', message: refused }]);
  });

  it('finds the path inside arrays and is not fooled by colons, quotes and braces in strings', () => {
    const text = '{"a":"x:\\"}{","b":[{"c":1},{"c":2,"d":":","c":3}]}';
    expect(duplicateKey(text, JSON.parse(text))).toBe('b.1.c');
    const ok = '{"a":"x:y","b":[{"c":1},{"c":2}],"k":{"a":"::"}}';
    expect(duplicateKey(ok, JSON.parse(ok))).toBeNull();
    expect(duplicateKey('{"a" : 1, "a" : 2}', { a: 2 })).toBe('a');
  });

  it('lets the same key appear in different objects', () => {
    const text = '{"op":"process","pid":1,"expect":{"errno":"ok"}}\n';
    expect(parseTraceText(text).entries).toHaveLength(1);
  });
});

describe('bytes that are not UTF-8', () => {
  const good = Buffer.from('{"op":"process","pid":1}\n');
  const bad = Buffer.concat([
    good,
    Buffer.from('# caf'),
    Buffer.from([0xe9]),
    Buffer.from('\n{"op":"process","pid":"'),
    Buffer.from([0xff]),
    Buffer.from('"}\n'),
  ]);

  it('are refused naming the line of the first bad byte (bytes and file readers agree)', async () => {
    const expected = [{ line: 2, field: null, message: 'not valid UTF-8: the trace must be UTF-8 text (byte 0xe9)' }];
    expect(issues(() => parseTraceBytes(bad))).toEqual(expected);
    expect(await fileIssues(bad)).toEqual(expected);
  });

  it('are refused after CRLF lines too', async () => {
    const crlf = Buffer.concat([
      Buffer.from('# a\r\n# b\r\n{"op":"process","pid":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"}\r\n'),
    ]);
    const expected = [{ line: 3, field: null, message: 'not valid UTF-8: the trace must be UTF-8 text (byte 0xc3)' }];
    expect(issues(() => parseTraceBytes(crlf))).toEqual(expected);
    expect(await fileIssues(crlf)).toEqual(expected);
  });

  it('accept valid multi-byte text and a byte order mark', () => {
    const text = Buffer.from('\ufeff# é 中 😀\n{"op":"process","pid":"é"}\n');
    expect(parseTraceBytes(text).entries[0]?.op).toMatchObject({ op: 'process', pid: 'é' });
  });
});
