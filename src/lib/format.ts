// SPDX-License-Identifier: GPL-2.0-only
/**
 * How numbers look in user output: the one home of the rule "PFNs, IOVAs, addresses and sizes in bytes are
 * hex; counts are decimal", so a PFN reads the same in `log`, `at`, `diff`, `why` and `audit`.
 */

/** An address, IOVA, PFN or byte size: `0x40006` (negative values, which only differences have, `-0x10`). */
export function hex(n: number | bigint): string {
  return n < 0 ? `-0x${(-n).toString(16)}` : `0x${n.toString(16)}`;
}

/** A count: plain decimal. */
export function count(n: number | bigint): string {
  return n.toString();
}

const UNITS = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'] as const;

/** A byte length for a person: `1 TiB` when it is a whole number of a unit, else `1.5 GiB (0x60000000)`. */
export function byteSize(n: bigint): string {
  let unit = 0;
  let whole = n;
  while (unit < UNITS.length - 1 && whole >= 1024n && whole % 1024n === 0n) {
    whole /= 1024n;
    unit += 1;
  }
  if (unit > 0 || n < 1024n) return `${whole} ${UNITS[unit]}`;
  let scaled = Number(n);
  unit = 0;
  while (unit < UNITS.length - 1 && scaled >= 1024) {
    scaled /= 1024;
    unit += 1;
  }
  return `${scaled.toFixed(1)} ${UNITS[unit]} (${hex(n)})`;
}

/** JSON as `--json` and the browser view's API print it: bigints as decimal strings, Uint8Arrays as hex. */
export function toJson(value: unknown, indent: number | undefined = 2): string {
  return JSON.stringify(
    value,
    (_k, v: unknown) =>
      typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
    indent,
  );
}
