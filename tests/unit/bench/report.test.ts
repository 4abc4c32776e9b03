// SPDX-License-Identifier: GPL-2.0-only
// The benchmark's result arithmetic and table on fixed numbers: ratios, goals, shortfalls, the JSON shape.
import { describe, expect, it } from 'vitest';
import {
  BENCH_IDS,
  fmtNumber,
  fmtPct,
  goalHolds,
  makeResult,
  ratioOf,
  renderNotes,
  renderTable,
  shortfall,
} from '../../../bench/report.js';
import type { Results } from '../../../bench/report.js';

describe('ratioOf', () => {
  it('divides the figure by the limit', () => {
    expect(ratioOf(140_000, 200_000)).toBe(0.7);
    expect(ratioOf(3, 12)).toBe(0.25);
  });

  it('has no ratio without a positive, finite limit or a figure', () => {
    expect(ratioOf(5, 0)).toBeNull();
    expect(ratioOf(5, -1)).toBeNull();
    expect(ratioOf(5, null)).toBeNull();
    expect(ratioOf(undefined, 5)).toBeNull();
    expect(ratioOf(Number.NaN, 5)).toBeNull();
    expect(ratioOf(5, Number.POSITIVE_INFINITY)).toBeNull();
  });
});

describe('goalHolds', () => {
  it('holds at the bound itself, for both directions', () => {
    expect(goalHolds({ figure: 'ratio', op: '>=', value: 0.7 }, {}, 0.7)).toBe(true);
    expect(goalHolds({ figure: 'p99Ms', op: '<=', value: 50 }, { p99Ms: 50 }, null)).toBe(true);
  });

  it('fails just past the bound', () => {
    expect(goalHolds({ figure: 'ratio', op: '>=', value: 0.7 }, {}, 0.6999)).toBe(false);
    expect(goalHolds({ figure: 'p99Ms', op: '<=', value: 50 }, { p99Ms: 50.01 }, null)).toBe(false);
  });

  it('fails when its input was not measured', () => {
    expect(goalHolds({ figure: 'ratio', op: '>=', value: 0.7 }, {}, null)).toBe(false);
    expect(goalHolds({ figure: 'p99Ms', op: '<=', value: 50 }, {}, null)).toBe(false);
    expect(goalHolds({ figure: 'p99Ms', op: '<=', value: 50 }, { p99Ms: Number.NaN }, null)).toBe(false);
  });
});

describe('shortfall', () => {
  it('says how far a lower bound is missed, in percent of the bound', () => {
    expect(shortfall({ figure: 'ratio', op: '>=', value: 0.7 }, {}, 0.42)).toBe('ratio 0.42, needs >= 0.7: 40% short');
  });

  it('says how far an upper bound is passed', () => {
    expect(shortfall({ figure: 'p99Ms', op: '<=', value: 50 }, { p99Ms: 75 }, null)).toBe(
      'p99Ms 75, needs <= 50: 50% over',
    );
  });

  it('is null for a goal that holds, and names a figure that is missing', () => {
    expect(shortfall({ figure: 'ratio', op: '<=', value: 0.2 }, {}, 0.1)).toBeNull();
    expect(shortfall({ figure: 'peakRssMiB', op: '<=', value: 512 }, {}, null)).toBe('peakRssMiB was not measured');
  });
});

describe('makeResult', () => {
  it('computes the ratio against the limit and meets a goal at the bound', () => {
    const r = makeResult({
      id: 'B1',
      workload: 'append',
      mode: 'full',
      figure: 'storedEventsPerSec',
      figures: { storedEventsPerSec: 140_000, events: 1_000_000 },
      limit: { what: 'raw insert', value: 200_000 },
      goals: [{ figure: 'ratio', op: '>=', value: 0.7 }],
    });
    expect(r.ratio).toBe(0.7);
    expect(r.met).toBe(true);
    expect(r.goal).toBe('ratio >= 0.7');
    expect(r.notes).toEqual([]);
  });

  it('is not met when the ratio falls short, and notes by how much', () => {
    const r = makeResult({
      id: 'B2',
      workload: 'rebuild',
      mode: 'quick',
      figure: 'eventsPerSec',
      figures: { eventsPerSec: 45_000 },
      limit: { what: 'raw scan', value: 300_000 },
      goals: [{ figure: 'ratio', op: '>=', value: 0.6 }],
      notes: ['read back through the store'],
    });
    expect(r.ratio).toBe(0.15);
    expect(r.met).toBe(false);
    expect(r.notes).toEqual(['read back through the store', 'goal not met: ratio 0.15, needs >= 0.6: 75% short']);
  });

  it('takes a given ratio (a workload against another) instead of one against the limit', () => {
    const r = makeResult({
      id: 'B6',
      workload: 'model',
      mode: 'full',
      figure: 'opsPerSec',
      figures: { opsPerSec: 4_500 },
      limit: null,
      ratio: 4_500 / 1_500,
      goals: [{ figure: 'ratio', op: '>=', value: 3 }],
    });
    expect(r.ratio).toBe(3);
    expect(r.limit).toBeNull();
    expect(r.met).toBe(true);
  });

  it('needs every goal: one failing goal of three makes it unmet', () => {
    const r = makeResult({
      id: 'B5',
      workload: 'guest',
      mode: 'full',
      figure: 'opsPerSec',
      figures: { opsPerSec: 2_000, peakRssMiB: 600, maxStateBytesPerPage: 0.01, mapEventsPerPage: 0.0001 },
      limit: null,
      goals: [
        { figure: 'peakRssMiB', op: '<=', value: 512 },
        { figure: 'maxStateBytesPerPage', op: '<=', value: 1 },
        { figure: 'mapEventsPerPage', op: '<=', value: 0.01 },
      ],
    });
    expect(r.ratio).toBeNull();
    expect(r.met).toBe(false);
    expect(r.goal).toBe('peakRssMiB <= 512 and maxStateBytesPerPage <= 1 and mapEventsPerPage <= 0.01');
    expect(r.notes).toEqual(['goal not met: peakRssMiB 600, needs <= 512: 17.2% over']);
  });

  it('is never met without a goal', () => {
    const r = makeResult({
      id: 'B3',
      workload: 'seek',
      mode: 'full',
      figure: 'p99Ms',
      figures: { p99Ms: 1 },
      limit: null,
      goals: [],
    });
    expect(r.met).toBe(false);
  });
});

describe('results.json shape', () => {
  const results: Results = {
    B1: makeResult({
      id: 'B1',
      workload: 'append',
      mode: 'full',
      figure: 'storedEventsPerSec',
      figures: { storedEventsPerSec: 150_000 },
      limit: { what: 'raw insert', value: 200_000 },
      goals: [{ figure: 'ratio', op: '>=', value: 0.7 }],
      curve: [
        {
          events: 100_000,
          figures: { storedEventsPerSec: 120_000 },
          limit: { what: 'raw insert', value: 240_000 },
          ratio: 0.5,
        },
      ],
    }),
    B3: makeResult({
      id: 'B3',
      workload: 'seek',
      mode: 'full',
      figure: 'p99Ms',
      figures: { p50Ms: 7.05, p99Ms: 32.8 },
      limit: null,
      goals: [{ figure: 'p99Ms', op: '<=', value: 50 }],
    }),
  };

  it('is keyed by benchmark id, each entry with figures, limit, ratio, goal and met', () => {
    const json = JSON.parse(JSON.stringify(results)) as Record<string, Record<string, unknown>>;
    expect(Object.keys(json)).toEqual(['B1', 'B3']);
    expect(Object.keys(json).every((k) => (BENCH_IDS as readonly string[]).includes(k))).toBe(true);
    expect(json['B1']).toMatchObject({
      figures: { storedEventsPerSec: 150_000 },
      limit: { what: 'raw insert', value: 200_000 },
      ratio: 0.75,
      goal: 'ratio >= 0.7',
      met: true,
    });
    expect(json['B3']).toMatchObject({ limit: null, ratio: null, goal: 'p99Ms <= 50', met: true });
  });

  it('prints one row per result, then one per cost curve point', () => {
    expect(renderTable(results)).toEqual([
      'id       workload             figure                        limit                   ratio  goal          met',
      '-------  -------------------  ----------------------------  ----------------------  -----  ------------  ---',
      'B1       append               storedEventsPerSec 150,000/s  200,000/s (raw insert)  0.75   ratio >= 0.7  yes',
      'B3       seek                 p99Ms 32.8 ms, p50Ms 7.05 ms  -                       -      p99Ms <= 50   yes',
      'B1@100k  append (cost curve)  storedEventsPerSec 120,000/s  240,000/s               0.5',
    ]);
  });

  it('lists the notes with their id', () => {
    const withNote: Results = {
      B2: makeResult({
        id: 'B2',
        workload: 'rebuild',
        mode: 'full',
        figure: 'eventsPerSec',
        figures: { eventsPerSec: 1 },
        limit: { what: 'scan', value: 4 },
        goals: [{ figure: 'ratio', op: '>=', value: 0.6 }],
      }),
    };
    expect(renderNotes(withNote)).toEqual(['B2: goal not met: ratio 0.25, needs >= 0.6: 58.3% short']);
  });
});

describe('number formatting', () => {
  it('keeps three significant digits and separates thousands', () => {
    expect(fmtNumber(1_234_567)).toBe('1,230,000');
    expect(fmtNumber(45_431.09)).toBe('45,400');
    expect(fmtNumber(0.012345)).toBe('0.0123');
    expect(fmtNumber(2.5)).toBe('2.5');
    expect(fmtNumber(0)).toBe('0');
    expect(fmtPct(0.4)).toBe('40%');
    expect(fmtPct(0.00234)).toBe('0.234%');
  });
});
