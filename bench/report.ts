// SPDX-License-Identifier: GPL-2.0-only
/**
 * The benchmark's results: the shape of bench/results.json, the ratio and goal arithmetic, and the table
 * printed at the end. Pure functions of the measured numbers (no clock, no I/O), so the tests pin them on
 * fixed figures.
 *
 * results.json is an object keyed by id (B1 .. B6). Each entry holds its figures (named numbers with their
 * unit in the name: `eventsPerSec`, `p99Ms`, `peakRssMiB`), the limit measured beside it where there is one,
 * the ratio figure / limit, the goals, and `met`: true only when every goal holds. A goal on a figure that
 * could not be measured is not met.
 */
import { maxOf } from '../src/lib/arrays.js';

export const BENCH_IDS = ['B1', 'B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B9', 'B10', 'B11'] as const;
export type BenchId = (typeof BENCH_IDS)[number];

export type Mode = 'quick' | 'full';

/** A physical limit measured in the same run, on the same machine, in the same unit as the figure. */
export interface Limit {
  /** What was measured, e.g. "raw better-sqlite3 insert, same rows". */
  what: string;
  value: number;
}

/** One goal: `figure` (a key of figures, or "ratio") compared with `value`. */
export interface Goal {
  figure: string;
  op: '>=' | '<=';
  value: number;
}

export interface BenchResult {
  id: BenchId;
  workload: string;
  mode: Mode;
  /** The figure the ratio and the table are about (a key of `figures`). */
  figure: string;
  figures: Record<string, number>;
  limit: Limit | null;
  /** figures[figure] / limit.value, or a ratio against another workload (B6 against B5); null without one. */
  ratio: number | null;
  /** The goals as text, e.g. "ratio >= 0.7". */
  goal: string;
  goals: Goal[];
  met: boolean;
  /** Cost curve points (B1, B3): the same figures at other log sizes. */
  curve?: CurvePoint[];
  /** What a reader must know: interpretation, what was measured how, why a goal is not met. */
  notes: string[];
}

export interface CurvePoint {
  events: number;
  figures: Record<string, number>;
  limit: Limit | null;
  ratio: number | null;
}

export type Results = Partial<Record<BenchId, BenchResult>>;

/** figure / limit; null when either is missing or the limit is not a positive number. */
export function ratioOf(figure: number | undefined, limit: number | undefined | null): number | null {
  if (figure === undefined || limit === undefined || limit === null) return null;
  if (!Number.isFinite(figure) || !Number.isFinite(limit) || limit <= 0) return null;
  return figure / limit;
}

/** The value a goal compares: the ratio or one of the figures. */
function goalInput(goal: Goal, figures: Record<string, number>, ratio: number | null): number | null {
  const v = goal.figure === 'ratio' ? ratio : figures[goal.figure];
  return v === undefined || v === null || !Number.isFinite(v) ? null : v;
}

/** True when the goal holds; false when it fails or its input is missing. */
export function goalHolds(goal: Goal, figures: Record<string, number>, ratio: number | null): boolean {
  const v = goalInput(goal, figures, ratio);
  if (v === null) return false;
  return goal.op === '>=' ? v >= goal.value : v <= goal.value;
}

export function goalText(goals: readonly Goal[]): string {
  return goals.map((g) => `${g.figure} ${g.op} ${g.value}`).join(' and ');
}

/**
 * How far a failed goal is from holding, as text ("ratio 0.42, needs >= 0.7: 40% short"); null when it holds.
 */
export function shortfall(goal: Goal, figures: Record<string, number>, ratio: number | null): string | null {
  const v = goalInput(goal, figures, ratio);
  if (v === null) return `${goal.figure} was not measured`;
  if (goalHolds(goal, figures, ratio)) return null;
  const by = goal.op === '>=' ? `${fmtPct(1 - v / goal.value)} short` : `${fmtPct(v / goal.value - 1)} over`;
  return `${goal.figure} ${fmtNumber(v)}, needs ${goal.op} ${goal.value}: ${by}`;
}

export interface ResultInput {
  id: BenchId;
  workload: string;
  mode: Mode;
  figure: string;
  figures: Record<string, number>;
  limit: Limit | null;
  /** A ratio not against `limit` (B6 against B5): given, instead of computed. */
  ratio?: number | null;
  goals: Goal[];
  curve?: CurvePoint[];
  notes?: string[];
}

/** Assemble one result: the ratio against the limit (unless given), the goals evaluated, shortfalls noted. */
export function makeResult(input: ResultInput): BenchResult {
  const ratio =
    input.ratio !== undefined ? input.ratio : ratioOf(input.figures[input.figure], input.limit?.value ?? null);
  const met = input.goals.length > 0 && input.goals.every((g) => goalHolds(g, input.figures, ratio));
  const notes = [...(input.notes ?? [])];
  for (const g of input.goals) {
    const s = shortfall(g, input.figures, ratio);
    if (s !== null) notes.push(`goal not met: ${s}`);
  }
  const result: BenchResult = {
    id: input.id,
    workload: input.workload,
    mode: input.mode,
    figure: input.figure,
    figures: input.figures,
    limit: input.limit,
    ratio,
    goal: goalText(input.goals),
    goals: input.goals,
    met,
    notes,
  };
  if (input.curve !== undefined) result.curve = input.curve;
  return result;
}

// ---- formatting -------------------------------------------------------------------------------------------

/** Three significant digits, thousands separated: 1234567 -> "1,230,000", 0.01234 -> "0.0123". */
export function fmtNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const abs = Math.abs(v);
  if (abs >= 1000) return Math.round(Number(v.toPrecision(3))).toLocaleString('en-US');
  return String(Number(v.toPrecision(3)));
}

/** A fraction as a percentage, three significant digits: 0.4 -> "40%", 0.00234 -> "0.234%". */
export function fmtPct(v: number): string {
  return `${fmtNumber(v * 100)}%`;
}

/** Unit of a figure from its name's suffix, for the table. */
export function unitOf(figure: string): string {
  const units: [string, string][] = [
    ['PerSec', '/s'],
    ['Ms', ' ms'],
    ['Seconds', ' s'],
    ['MiB', ' MiB'],
    ['Bytes', ' B'],
    ['PerEvent', ' B/event'],
  ];
  for (const [suffix, unit] of units) if (figure.endsWith(suffix)) return unit;
  return '';
}

/** "events/s 1,230,000" style: the figure's name without its unit suffix, then value and unit. */
export function figureText(figure: string, value: number | undefined): string {
  if (value === undefined) return `${figure} -`;
  return `${figure} ${fmtNumber(value)}${unitOf(figure)}`;
}

const TABLE_HEADER = ['id', 'workload', 'figure', 'limit', 'ratio', 'goal', 'met'] as const;

/** Table rows: one per result, then one per cost curve point (id "B1@100k"). */
export function tableRows(results: Results): string[][] {
  const rows: string[][] = [];
  const sizeLabel = (events: number): string =>
    events >= 1e6 ? `${fmtNumber(events / 1e6)}M` : events >= 1e3 ? `${Math.round(events / 1e3)}k` : String(events);
  for (const id of BENCH_IDS) {
    const r = results[id];
    if (r === undefined) continue;
    const extra = r.id === 'B3' ? [`p50Ms ${fmtNumber(r.figures['p50Ms'] ?? NaN)} ms`] : [];
    rows.push([
      r.id,
      r.workload,
      [figureText(r.figure, r.figures[r.figure]), ...extra].join(', '),
      r.limit === null ? '-' : `${fmtNumber(r.limit.value)}${unitOf(r.figure)} (${r.limit.what})`,
      r.ratio === null ? '-' : fmtNumber(r.ratio),
      r.goal,
      r.met ? 'yes' : 'NO',
    ]);
  }
  for (const id of BENCH_IDS) {
    const r = results[id];
    for (const point of r?.curve ?? []) {
      if (r === undefined) continue;
      const extra = r.id === 'B3' ? [`p50Ms ${fmtNumber(point.figures['p50Ms'] ?? NaN)} ms`] : [];
      rows.push([
        `${r.id}@${sizeLabel(point.events)}`,
        `${r.workload} (cost curve)`,
        [figureText(r.figure, point.figures[r.figure]), ...extra].join(', '),
        point.limit === null ? '-' : `${fmtNumber(point.limit.value)}${unitOf(r.figure)}`,
        point.ratio === null ? '-' : fmtNumber(point.ratio),
        '',
        '',
      ]);
    }
  }
  return rows;
}

/** The table as lines, columns padded. */
export function renderTable(results: Results): string[] {
  const rows = tableRows(results);
  const widths = TABLE_HEADER.map((h, i) =>
    maxOf(
      rows.map((r) => (r[i] ?? '').length),
      h.length,
    ),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(TABLE_HEADER), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** Every note of every result, prefixed with its id. */
export function renderNotes(results: Results): string[] {
  const out: string[] = [];
  for (const id of BENCH_IDS) for (const n of results[id]?.notes ?? []) out.push(`${id}: ${n}`);
  return out;
}
