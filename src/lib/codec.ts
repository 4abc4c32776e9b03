// SPDX-License-Identifier: GPL-2.0-only
/**
 * JSON with bigints. Event payloads and results carry IOVAs and user addresses as bigint (they reach
 * 2^64 - 1); in JSON a bigint is written as a string ending in "n" ("4096n"). A real string of that form
 * (or one starting with "~") is escaped with a leading "~". Decoding undoes both.
 */

const BIGINT_TEXT = /^-?\d+n$/;

// A string that could be read back as a bigint (a trace may name an object "12n"), or that starts with the
// escape character itself, is written with a leading "~", which decoding strips.
function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return `${value.toString()}n`;
  if (typeof value === 'string' && (value.charCodeAt(0) === 126 || BIGINT_TEXT.test(value))) return `~${value}`;
  return value;
}

/** Turn "123n" strings back into bigints, in place; a reviver would cost a call per value. */
function restoreBigints(value: unknown): unknown {
  if (typeof value === 'string') {
    if (value.charCodeAt(0) === 126) return value.slice(1);
    return value.length > 1 && value.charCodeAt(value.length - 1) === 110 && BIGINT_TEXT.test(value)
      ? BigInt(value.slice(0, -1))
      : value;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = restoreBigints(value[i]);
    return value;
  }
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      if (key === '__proto__') continue;
      const v = obj[key];
      if (typeof v === 'object' || typeof v === 'string') obj[key] = restoreBigints(v);
    }
  }
  return value;
}

/** Text with neither a bigint (digits then `n"`) nor an escaped string (`"~`) needs no walk. */
const NEEDS_WALK = /\dn"|"~/;

/** Encode a value that may hold bigints as JSON text. */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value, replacer);
}

/**
 * encodeJson's text of a value the caller knows holds no bigint, without a replacer call per value: the
 * plain text is kept unless a string in it would have been escaped (its text then shows one of the marks
 * NEEDS_WALK finds; a false alarm only costs the slow path). A bigint in the value throws TypeError.
 */
export function encodeJsonWithoutBigints(value: unknown): string {
  const text = JSON.stringify(value);
  return NEEDS_WALK.test(text) ? JSON.stringify(value, replacer) : text;
}

/** Decode text written by encodeJson, restoring bigints. */
export function decodeJson(text: string): unknown {
  const value: unknown = JSON.parse(text);
  return NEEDS_WALK.test(text) ? restoreBigints(value) : value;
}
