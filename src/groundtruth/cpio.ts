// SPDX-License-Identifier: GPL-2.0-only
/**
 * A writer for the "newc" cpio format the kernel unpacks as an initramfs. Written here rather than run
 * through cpio(1) so the archive is byte-for-byte reproducible (fixed inode numbers, owners and times)
 * and needs no tool beyond Node.
 */
import { gzipSync } from 'node:zlib';

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Uint8Array; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  /** A character device node: the kernel opens dev/console of the initramfs before it runs /init. */
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function field(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function record(
  ino: number,
  mode: number,
  nlink: number,
  name: string,
  data: Uint8Array,
  rdev: readonly [number, number] = [0, 0],
): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
  const header =
    '070701' +
    [ino, mode, 0, 0, nlink, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0].map(field).join('');
  return [
    Buffer.from(header, 'ascii'),
    nameBytes,
    Buffer.alloc(pad4(header.length + nameBytes.length)),
    Buffer.from(data),
    Buffer.alloc(pad4(data.length)),
  ];
}

/** The uncompressed archive: entries in the order given (a directory before what it holds), then the trailer. */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, '');
    if (path.length === 0 || path.split('/').includes('..')) throw new Error(`cpio: bad path "${e.path}"`);
    const chunk =
      e.kind === 'dir'
        ? record(ino, S_IFDIR | (e.mode ?? 0o755), 2, path, new Uint8Array(0))
        : e.kind === 'file'
          ? record(ino, S_IFREG | (e.mode ?? 0o644), 1, path, e.data)
          : e.kind === 'symlink'
            ? record(ino, S_IFLNK | 0o777, 1, path, Buffer.from(e.target, 'utf8'))
            : record(ino, S_IFCHR | (e.mode ?? 0o600), 1, path, new Uint8Array(0), [e.major, e.minor]);
    for (const c of chunk) parts.push(c);
    ino++;
  }
  for (const c of record(0, 0, 1, 'TRAILER!!!', new Uint8Array(0))) parts.push(c);
  return Buffer.concat(parts);
}

/** The archive gzip-compressed, as the kernel's RD_GZIP unpacks it. */
export function cpioNewcGzip(entries: readonly CpioEntry[]): Buffer {
  return gzipSync(cpioNewc(entries), { level: 6 });
}
