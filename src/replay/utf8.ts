// SPDX-License-Identifier: GPL-2.0-only
/**
 * Strict UTF-8 for traces. A lenient decoder turns every invalid byte into U+FFFD, so two names that differ
 * only in bad bytes would become one name; a trace must be refused instead, naming the line of the first
 * bad byte. Decoding is the native fatal TextDecoder; the line is looked for only once decoding failed.
 */
import { TraceError } from './errors.js';

export const NOT_UTF8 = 'not valid UTF-8: the trace must be UTF-8 text';

/** Offset of the first byte of `bytes` that does not belong to a valid UTF-8 sequence, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array, from = 0): number {
  let i = from;
  while (i < bytes.length) {
    const b = bytes[i] ?? 0;
    if (b < 0x80) {
      i += 1;
      continue;
    }
    let need: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [need, min] = [2, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [need, min] = [3, 0x10000];
    else return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k += 1) {
      const next = bytes[i + k];
      if (next === undefined || (next & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (next & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

export function notUtf8Message(byte: number): string {
  return `${NOT_UTF8} (byte 0x${byte.toString(16).padStart(2, '0')})`;
}

/** 1-based line of byte `offset`, counting the same line breaks as the reader (\r\n, \n, \r). */
export function lineOfOffset(bytes: Uint8Array, offset: number, firstLine = 1): number {
  let line = firstLine;
  for (let i = 0; i < offset; i += 1) {
    const b = bytes[i];
    if (b === 0x0a) line += 1;
    else if (b === 0x0d && bytes[i + 1] !== 0x0a) line += 1;
  }
  return line;
}

/** The text of a whole trace, or a TraceError naming the line of its first byte that is not UTF-8. */
export function decodeUtf8Trace(bytes: Uint8Array, fileName: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    const at = Math.max(0, firstInvalidUtf8(bytes));
    const line = lineOfOffset(bytes, at);
    throw new TraceError(fileName, [{ line, field: null, message: notUtf8Message(bytes[at] ?? 0) }]);
  }
}
