// SPDX-License-Identifier: GPL-2.0-only
/** Output helpers: JSON with bigints as decimal strings, aligned tables, and the progress bar. */
import { maxOf } from '../lib/arrays.js';

/** JSON for `--json`: bigints become decimal strings (JSON has no 64-bit integers), Uint8Arrays hex. */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v: unknown) =>
      typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
    2,
  );
}

export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** Left-aligned text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) =>
    maxOf(
      rows.map((r) => (r[i] ?? '').length),
      h.length,
    ),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** A progress bar on stderr, only when stderr is a terminal. */
export class Progress {
  private last = -1;
  constructor(
    private readonly total: number,
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}
  get enabled(): boolean {
    return this.stream.isTTY === true && this.total > 200;
  }
  update(done: number): void {
    if (!this.enabled) return;
    const pct = Math.floor((done * 100) / this.total);
    if (pct === this.last) return;
    this.last = pct;
    const width = 30;
    const filled = Math.round((pct * width) / 100);
    this.stream.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}%`);
  }
  finish(): void {
    if (this.enabled) this.stream.write('\r\x1b[K');
  }
}
