import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { cpioNewc, cpioNewcGzip } from '../../../src/groundtruth/cpio.js';

interface Read {
  name: string;
  ino: number;
  mode: number;
  nlink: number;
  size: number;
  rdev: [number, number];
  data: string;
}

/** An independent reader of newc archives, written from the format description. */
function readNewc(buf: Buffer): Read[] {
  const out: Read[] = [];
  let off = 0;
  const align = (n: number) => (n + 3) & ~3;
  for (;;) {
    expect(buf.toString('ascii', off, off + 6)).toBe('070701');
    const f = (i: number) => Number.parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16);
    const namesize = f(11);
    const size = f(6);
    const name = buf.toString('utf8', off + 110, off + 110 + namesize - 1);
    expect(buf[off + 110 + namesize - 1]).toBe(0);
    const dataAt = align(off + 110 + namesize);
    out.push({
      name,
      ino: f(0),
      mode: f(1),
      nlink: f(4),
      size,
      rdev: [f(9), f(10)],
      data: buf.toString('utf8', dataAt, dataAt + size),
    });
    off = align(dataAt + size);
    if (name === 'TRAILER!!!') break;
  }
  expect(off).toBe(buf.length);
  return out;
}

describe('cpioNewc', () => {
  it('writes directories, files, symlinks and device nodes with 4-byte alignment and a trailer', () => {
    const buf = cpioNewc([
      { kind: 'dir', path: 'bin' },
      { kind: 'file', path: '/init', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
      { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
      { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
      { kind: 'file', path: 'tests/plan', data: Buffer.from('abc') },
    ]);
    expect(readNewc(buf)).toEqual([
      { name: 'bin', ino: 1, mode: 0o040755, nlink: 2, size: 0, rdev: [0, 0], data: '' },
      { name: 'init', ino: 2, mode: 0o100755, nlink: 1, size: 10, rdev: [0, 0], data: '#!/bin/sh\n' },
      { name: 'bin/sh', ino: 3, mode: 0o120777, nlink: 1, size: 7, rdev: [0, 0], data: 'busybox' },
      { name: 'dev/console', ino: 4, mode: 0o020600, nlink: 1, size: 0, rdev: [5, 1], data: '' },
      { name: 'tests/plan', ino: 5, mode: 0o100644, nlink: 1, size: 3, rdev: [0, 0], data: 'abc' },
      { name: 'TRAILER!!!', ino: 0, mode: 0, nlink: 1, size: 0, rdev: [0, 0], data: '' },
    ]);
    // "bin\0" pads the first record to 116; "init\0" ends at 231, so the data starts at 232.
    expect(buf.toString('ascii', 116 + 110 + 5 + 1, 116 + 110 + 5 + 1 + 10)).toBe('#!/bin/sh\n');
  });

  it('is reproducible and gzips to what it wrote', () => {
    const entries = [{ kind: 'file' as const, path: 'a', data: Buffer.from('x') }];
    expect(cpioNewc(entries).equals(cpioNewc(entries))).toBe(true);
    expect(gunzipSync(cpioNewcGzip(entries)).equals(cpioNewc(entries))).toBe(true);
  });

  it('refuses paths that escape the archive root', () => {
    expect(() => cpioNewc([{ kind: 'dir', path: '../etc' }])).toThrow('cpio: bad path "../etc"');
    expect(() => cpioNewc([{ kind: 'dir', path: '/' }])).toThrow('cpio: bad path "/"');
  });
});
