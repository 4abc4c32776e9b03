// SPDX-License-Identifier: GPL-2.0-only
/** Output helpers: JSON with bigints as decimal strings, aligned tables, and the progress bar. */
import { maxOf } from '../lib/arrays.js';

export { hex, toJson } from '../lib/format.js';

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

/** How often the progress line may be redrawn, in milliseconds. */
const REDRAW_MS = 200;

/**
 * A progress bar on stderr: shown when stderr is a terminal (and the job is long enough to need one), or
 * always when `force` (`--progress`). Inside one long op (an mmap of millions of pages) the bar would not
 * move, so `inside` shows what that op has emitted so far on the same line, redrawn at most every
 * REDRAW_MS.
 */
export class Progress {
  private last = -1;
  private lastDrawn = -Infinity;
  private bar = '';
  constructor(
    private readonly total: number,
    private readonly label: string,
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
    private readonly force = false,
    private readonly now: () => number = () => performance.now(),
  ) {}
  get enabled(): boolean {
    return this.force || (this.stream.isTTY === true && this.total > 200);
  }
  /** Whether progress from inside an op is shown (a terminal, or `--progress`), whatever the op count. */
  get insideEnabled(): boolean {
    return this.force || this.stream.isTTY === true;
  }
  update(done: number): void {
    if (!this.enabled) return;
    const pct = Math.floor((done * 100) / Math.max(1, this.total));
    if (pct === this.last) return;
    this.last = pct;
    const width = 30;
    const filled = Math.round((pct * width) / 100);
    this.bar = `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}%`;
    this.stream.write(`\r${this.bar}\x1b[K`);
  }
  /** Progress inside one op: `op 2/3 (line 3 mmap): 1310720 events so far`. Throttled. */
  inside(op: number, ops: number, line: number, name: string, opEvents: number): void {
    if (!this.insideEnabled) return;
    const t = this.now();
    if (t - this.lastDrawn < REDRAW_MS) return;
    this.lastDrawn = t;
    const prefix = this.bar === '' ? this.label : this.bar;
    this.stream.write(`\r${prefix}  op ${op}/${ops} (line ${line} ${name}): ${opEvents} events so far\x1b[K`);
  }
  finish(): void {
    if (this.enabled || (this.insideEnabled && this.lastDrawn !== -Infinity)) this.stream.write('\r\x1b[K');
  }
}
