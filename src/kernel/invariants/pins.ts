// SPDX-License-Identifier: GPL-2.0-only
/**
 * Invariant 1, globally: every frame's pin count equals the number of covered indexes whose PFN it is.
 * A pin nobody covers is a 'pin_leak'; a missing one names who expects it.
 */
import type { State } from '../../state/state.js';
import { rangeForEachAll } from '../../structures/range-map.js';
import { xaForEachRun } from '../../structures/xarray.js';
import type { InvariantFinding } from './finding.js';
import { LIST_MAX, hex } from './finding.js';
import type { Step } from './runs.js';
import { subtractRuns, zipSteps } from './runs.js';
import type { Held } from './held.js';
import { forEachContiguous } from './held.js';

export interface Expected {
  pfn: number;
  count: number;
  pages: number;
  index: number;
}

/** Who expects a pin on `pfn` (for the text), by binary search over runs sorted by pfn. */
export function holderOf(exp: readonly Expected[], pfn: number): Expected | undefined {
  let lo = 0;
  let hi = exp.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((exp[mid] as Expected).pfn <= pfn) lo = mid + 1;
    else hi = mid;
  }
  for (let k = lo - 1; k >= 0 && k >= lo - 64; k--) {
    const e = exp[k] as Expected;
    if (pfn < e.pfn + e.count) return e;
  }
  return undefined;
}

/** Which pages maps a surplus PFN at an index no tree covers, through its source mm (for the text). */
export function attributeSurplus(
  state: State,
  held: readonly Held[],
  surplus: readonly Step<number, number>[],
): string | null {
  const page = BigInt(state.config.pageSize);
  for (const h of held) {
    const p = h.pages;
    const mm = state.mms[p.sourceMm];
    if (mm === undefined || p.npages === 0) continue;
    const base = Number(p.uptr / page);
    for (const [s, l] of subtractRuns([[0, p.npages - 1]], h.cover)) {
      let found: string | null = null;
      xaForEachRun(mm.pt, base + s, base + l, (vpn, pfn, count) => {
        for (const sp of surplus) {
          const lo = Math.max(sp.start, pfn);
          const hi = Math.min(sp.end, pfn + count);
          if (lo < hi) {
            found = `iopt_pages ${p.id} index ${vpn - base + (lo - pfn)} (pfn ${hex(lo)}) is pinned but neither an access nor a filled area covers it`;
            return false;
          }
        }
        return true;
      });
      if (found !== null) return found;
    }
  }
  return null;
}

export function checkPins(state: State, held: readonly Held[], out: InvariantFinding[]): void {
  const exp: Expected[] = [];
  for (const h of held) {
    // Per contiguous run, as the segments were cut before they had a step: who holds a PFN (the text's
    // "first held by") depends on the cut when two indexes hold one frame.
    forEachContiguous(h.pfns, (index, count, pfn) => {
      if (pfn !== null) exp.push({ pfn, count, pages: h.pages.id, index });
    });
  }
  let sorted = true;
  for (let k = 1; k < exp.length && sorted; k++) sorted = (exp[k - 1] as Expected).pfn <= (exp[k] as Expected).pfn;
  if (!sorted) exp.sort((a, b) => a.pfn - b.pfn || a.pages - b.pages || a.index - b.index);

  // Expected pins per PFN as a step function (a PFN held by two indexes expects two pins).
  const expected: Step<number, number>[] = [];
  let overlap = false;
  for (const e of exp) {
    const prev = expected[expected.length - 1];
    if (prev !== undefined && e.pfn < prev.end) {
      overlap = true;
      break;
    }
    if (prev !== undefined && prev.end === e.pfn) prev.end += e.count;
    else expected.push({ start: e.pfn, end: e.pfn + e.count, value: 1 });
  }
  if (overlap) {
    expected.length = 0;
    const points: [number, number][] = [];
    for (const e of exp) points.push([e.pfn, 1], [e.pfn + e.count, -1]);
    points.sort((a, b) => a[0] - b[0]);
    let level = 0;
    for (let k = 0; k < points.length;) {
      const at = (points[k] as [number, number])[0];
      while (k < points.length && (points[k] as [number, number])[0] === at)
        level += (points[k++] as [number, number])[1];
      const nextAt = points[k]?.[0];
      if (level > 0 && nextAt !== undefined) expected.push({ start: at, end: nextAt, value: level });
    }
  }

  const actual: Step<number, number>[] = [];
  rangeForEachAll(state.frames, (start, count, frame) => {
    if (frame.pins > 0) actual.push({ start, end: start + count, value: frame.pins });
  });

  const surplus: Step<number, number>[] = [];
  const deficit: Step<number, number>[] = [];
  let extraPins = 0;
  let missingPins = 0;
  zipSteps(expected, actual, (start, end, a, b) => {
    const want = a ?? 0;
    const have = b ?? 0;
    if (want === have) return;
    const list = have > want ? surplus : deficit;
    const diff = Math.abs(have - want);
    if (have > want) extraPins += diff * (end - start);
    else missingPins += diff * (end - start);
    const prev = list[list.length - 1];
    if (prev !== undefined && prev.end === start && prev.value === diff) prev.end = end;
    else list.push({ start, end, value: diff });
  });
  const describe = (runs: readonly Step<number, number>[]): string => {
    const shown = runs
      .slice(0, LIST_MAX)
      .map(
        (r) =>
          `pfn ${hex(r.start)}${r.end - r.start > 1 ? ` +${r.end - r.start}` : ''} (${r.value} pin${r.value === 1 ? '' : 's'})`,
      );
    return shown.join(', ') + (runs.length > LIST_MAX ? ` and ${runs.length - LIST_MAX} more runs` : '');
  };
  const first = (runs: readonly Step<number, number>[]): Step<number, number> => runs[0] as Step<number, number>;
  if (surplus.length > 0) {
    const who = attributeSurplus(state, held, surplus);
    const npfns = surplus.reduce((n, r) => n + r.end - r.start, 0);
    out.push({
      key: 'pins:surplus',
      kind: 'pin_leak',
      detail: `${extraPins} pin${extraPins === 1 ? '' : 's'} on ${npfns} page${npfns === 1 ? '' : 's'} that no access or filled area holds: ${describe(surplus)}${who ? `; ${who}` : ''}`,
      objects: { pfn: first(surplus).start, count: npfns, pins: extraPins },
      signature: describe(surplus),
    });
  }
  if (deficit.length > 0) {
    const holder = holderOf(exp, first(deficit).start);
    const npfns = deficit.reduce((n, r) => n + r.end - r.start, 0);
    out.push({
      key: 'pins:deficit',
      kind: 'invariant',
      detail:
        `${missingPins} pin${missingPins === 1 ? '' : 's'} missing on ${npfns} page${npfns === 1 ? '' : 's'} that covered indexes hold: ${describe(deficit)}` +
        (holder
          ? `; first held by iopt_pages ${holder.pages} index ${holder.index + (first(deficit).start - holder.pfn)}`
          : ''),
      objects: { pfn: first(deficit).start, count: npfns, pins: missingPins, pages: holder?.pages ?? null },
    });
  }
}
