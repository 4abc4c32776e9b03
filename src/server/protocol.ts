// SPDX-License-Identifier: GPL-2.0-only
/** The wire format of native/preload/protocol.h: 48-byte requests, 8-byte replies, little-endian. */

export const REQUEST_SIZE = 48;
export const REPLY_SIZE = 8;

export const REQ_OPEN = 1;
export const REQ_IOCTL = 2;
export const REQ_CLOSE = 3;
/** A write or read of an emulated fail-nth file: aux the task, arg the buffer, request the count, ino the offset. */
export const REQ_FAILNTH_WRITE = 4;
export const REQ_FAILNTH_READ = 5;
/** Record mode, on a record socket: the kernel opened a device (aux); the reply's ret numbers the context. */
export const REQ_RECORD_OPEN = 6;
/** Record mode: an ioctl on context `ino` before the kernel sees it (ino 0: a descriptor not followed). */
export const REQ_RECORD_CALL = 7;
/** Record mode: the kernel's answer to it: the low 32 bits of `request` its return value, aux its errno. */
export const REQ_RECORD_DONE = 8;
/**
 * Run mode: the text of an emulated /proc file (aux: PROC_STATUS or PROC_MEMINFO; for status, ino holds the
 * process in its low 32 bits and the thread, or 0, in its high 32) into the buffer at arg of `request` bytes.
 * The reply's ret is the text's length, above `request` when nothing was written for want of room.
 */
export const REQ_PROC_FILE = 9;
/** Run mode: the caller's pages at [ino, ino + arg) are gone; aux says why (the DROPPED_ values). */
export const REQ_DROPPED = 10;
export const DROPPED_MUNMAP = 0;
export const DROPPED_MREMAP = 1;
/** MADV_DONTNEED and kin: only private memory loses its pages (a shared object keeps them). */
export const DROPPED_DONTNEED = 2;
export const DROPPED_FIXED = 3;
export const PROC_STATUS = 0;
export const PROC_MEMINFO = 1;

export const DEV_VFIO = 1;
export const DEV_ACCESS = 2;

/** Reply: the ioctl installs a file; send it again with aux = 1 + the fd of a prepared access socket. */
export const NEED_FD = -2;

export interface Request {
  kind: number;
  pid: number;
  tid: number;
  aux: number;
  ino: bigint;
  request: number;
  arg: bigint;
  /** The caller's address-space generation (0n: unknown, its mappings are read again). */
  mmGen: bigint;
}

export function decodeRequest(buf: Buffer, at: number): Request {
  return {
    kind: buf.readUInt32LE(at),
    pid: buf.readUInt32LE(at + 4),
    tid: buf.readUInt32LE(at + 8),
    aux: buf.readUInt32LE(at + 12),
    ino: buf.readBigUInt64LE(at + 16),
    // The kernel takes the request as unsigned int: the upper half of the unsigned long is dropped.
    request: Number(buf.readBigUInt64LE(at + 24) & 0xffffffffn),
    arg: buf.readBigUInt64LE(at + 32),
    mmGen: buf.readBigUInt64LE(at + 40),
  };
}

export function encodeReply(ret: number, err: number): Buffer {
  const out = Buffer.alloc(REPLY_SIZE);
  out.writeInt32LE(ret, 0);
  out.writeInt32LE(err, 4);
  return out;
}
