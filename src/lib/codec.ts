// SPDX-License-Identifier: GPL-2.0-only
/**
 * JSON with bigints. Event payloads and results carry IOVAs and user addresses as bigint (they reach
 * 2^64 - 1); in JSON a bigint is written as a string ending in "n" ("4096n"), which no other value of the
 * vocabulary uses. Decoding turns such strings back into bigints.
 */

const BIGINT_TEXT = /^-?\d+n$/;

function replacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? `${value.toString()}n` : value;
}

function reviver(_key: string, value: unknown): unknown {
  if (typeof value === 'string' && value.length > 1 && value.charCodeAt(value.length - 1) === 110 && BIGINT_TEXT.test(value)) {
    return BigInt(value.slice(0, -1));
  }
  return value;
}

/** Encode a value that may hold bigints as JSON text. */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value, replacer);
}

/** Decode text written by encodeJson, restoring bigints. */
export function decodeJson(text: string): unknown {
  return JSON.parse(text, reviver);
}
