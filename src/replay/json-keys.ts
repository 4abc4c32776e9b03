// SPDX-License-Identifier: GPL-2.0-only
/**
 * Repeated keys in one JSON text. JSON.parse keeps the last value of a repeated key and says nothing, so a
 * trace line `{"op":"mmap","pid":1,"pid":2}` would silently mean pid 2; the reader refuses it instead.
 *
 * Cost: every key of a line costs at least one `:` in its text, so when the text holds exactly as many
 * colons as the parsed value has keys, no key can repeat and the text is not scanned (the usual case;
 * counting colons is a native indexOf loop). Only lines with a colon inside a string value, or with a
 * repeated key, are walked by the small tokenizer below.
 */

/** Keys of a parsed JSON value, all levels. */
function keyCount(value: unknown): number {
  if (Array.isArray(value)) {
    let n = 0;
    for (const item of value) if (typeof item === 'object' && item !== null) n += keyCount(item);
    return n;
  }
  if (typeof value !== 'object' || value === null) return 0;
  let n = 0;
  for (const key in value) {
    n += 1 + keyCount((value as Record<string, unknown>)[key]);
  }
  return n;
}

function colonCount(text: string): number {
  let n = 0;
  for (let i = text.indexOf(':'); i !== -1; i = text.indexOf(':', i + 1)) n += 1;
  return n;
}

/** End (index after the closing quote) of the JSON string starting at `start` (a `"`). */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  for (;;) {
    const quote = text.indexOf('"', i);
    if (quote === -1) return text.length;
    let backslashes = 0;
    for (let j = quote - 1; j > start && text.charCodeAt(j) === 0x5c; j -= 1) backslashes += 1;
    if (backslashes % 2 === 0) return quote + 1;
    i = quote + 1;
  }
}

interface Frame {
  /** Keys seen so far in this object; null for an array. */
  keys: Set<string> | null;
  /** Path of this container from the root. */
  path: string[];
  /** Next array index (arrays only). */
  index: number;
}

/**
 * The dotted path (`expect.errno`, `pfns.0`) of the first key that repeats within one object of `text`,
 * or null. `value` is JSON.parse(text): the text must be valid JSON.
 */
export function duplicateKey(text: string, value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return null;
  if (colonCount(text) === keyCount(value)) return null;
  const stack: Frame[] = [];
  let pendingKey: string | null = null;
  const childPath = (): string[] => {
    const top = stack[stack.length - 1];
    if (top === undefined) return [];
    if (top.keys === null) return [...top.path, String(top.index)];
    return [...top.path, pendingKey ?? ''];
  };
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      let j = end;
      while (j < text.length && /\s/.test(text.charAt(j))) j += 1;
      const top = stack[stack.length - 1];
      if (text.charAt(j) === ':' && top !== undefined && top.keys !== null) {
        const key = JSON.parse(text.slice(i, end)) as string;
        if (top.keys.has(key)) return [...top.path, key].join('.');
        top.keys.add(key);
        pendingKey = key;
        i = j;
      } else {
        i = end - 1;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      stack.push({ keys: c === 0x7b ? new Set() : null, path: childPath(), index: 0 });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top !== undefined && top.keys === null) top.index += 1;
    }
  }
  return null;
}
