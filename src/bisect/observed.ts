// SPDX-License-Identifier: GPL-2.0-only
/**
 * Divergence against a recording: a trace recorded on a real kernel carries `{"observed": KIND, ...}` lines
 * after an op (docs/trace-format.md); this compares them with the model's effects of the same op and reports
 * every op and kind where they differ, the first one being "where the model stops matching the kernel".
 *
 * What is compared, per op, for each kind that has at least one observation at that op (a recording need
 * not capture every kind for every op, so a kind with no line at an op is taken as not recorded there):
 * - iommu_map (domain, iova, paddr, size) vs the op's IommuMapped events: the translations mapped, per
 *   domain, with calls that continue each other (next iova and paddr) merged, so a kernel that maps in other
 *   chunks than the model still agrees when the same translations result;
 * - iommu_unmap (domain, iova, size, unmapped) vs IommuUnmapped: the calls, per domain, with consecutive
 *   complete calls (unmapped == size) merged; a short unmap stays a call of its own;
 * - pin / unpin (pfn, count) vs PagesPinned / PagesUnpinned: the multiset of PFNs (runs may be split
 *   differently), as ranges with their multiplicity;
 * - warn (site) vs the Warned events' function names, as a multiset, leading underscores ignored: a static
 *   helper such as __iopt_area_unfill_domain is often inlined, and a kernel's WARN report then names the
 *   function it was inlined into under either spelling;
 * - result (errno, default ok; iova, unmapped, data, pfns when given) vs the op's errno and outputs; pfns
 *   compare as the sequence of PFNs, so [[5,2]] equals [[5,1],[6,1]].
 * Each side is rendered in one canonical form, so "differ" means the rendered lists differ.
 */
import type { Event } from '../events/events.js';
import { mappedEventsOf, pinEventsOf } from '../events/runs.js';
import type { Observation, ObservationKind } from '../events/trace.js';
import { OBSERVATION_KINDS } from '../events/trace.js';
import type { VariantSpec } from '../kernel/variants.js';
import type { ParsedTrace } from '../replay/parse.js';
import { replay } from '../replay/replayer.js';
import type { OpRecord, ReplayResult } from '../replay/replayer.js';
import type { EventSink } from '../state/emit.js';
import { hex } from '../state/diff.js';

export interface ObservedDivergence {
  /** Op index (1..N: the trace's ops). */
  op: number;
  line: number;
  name: string;
  kind: ObservationKind;
  /** What the kernel was observed doing, one canonical line each. */
  observed: string[];
  /** What the model did, in the same form. */
  model: string[];
}

export interface ObservedReport {
  /** Ops with at least one observation. */
  opsObserved: number;
  observations: number;
  /** Every (op, kind) that differs, in op order then kind order. */
  divergences: ObservedDivergence[];
  /** The first divergence: where the model stops matching the recording; null when it never does. */
  first: ObservedDivergence | null;
}

/** The model's events of one op. */
export type OpEvents = (op: number) => Iterable<Event>;

// ---- canonical forms ------------------------------------------------------------------------------------

interface MapCall {
  domain: string;
  iova: bigint;
  paddr: bigint;
  size: bigint;
}

function mapLines(calls: MapCall[]): string[] {
  const sorted = [...calls].sort((x, y) =>
    x.domain < y.domain ? -1 : x.domain > y.domain ? 1 : x.iova < y.iova ? -1 : x.iova > y.iova ? 1 : 0,
  );
  const merged: MapCall[] = [];
  for (const c of sorted) {
    const last = merged[merged.length - 1];
    if (
      last !== undefined &&
      last.domain === c.domain &&
      last.iova + last.size === c.iova &&
      last.paddr + last.size === c.paddr
    ) {
      last.size += c.size;
    } else merged.push({ ...c });
  }
  return merged.map((c) => `${c.domain} iova ${hex(c.iova)} paddr ${hex(c.paddr)} size ${hex(c.size)}`);
}

interface UnmapCall {
  domain: string;
  iova: bigint;
  size: bigint;
  unmapped: bigint;
}

function unmapLines(calls: UnmapCall[]): string[] {
  const sorted = [...calls].sort((x, y) =>
    x.domain < y.domain ? -1 : x.domain > y.domain ? 1 : x.iova < y.iova ? -1 : x.iova > y.iova ? 1 : 0,
  );
  const merged: UnmapCall[] = [];
  for (const c of sorted) {
    const last = merged[merged.length - 1];
    const complete = (u: UnmapCall): boolean => u.unmapped === u.size;
    if (
      last !== undefined &&
      last.domain === c.domain &&
      complete(last) &&
      complete(c) &&
      last.iova + last.size === c.iova
    ) {
      last.size += c.size;
      last.unmapped += c.unmapped;
    } else merged.push({ ...c });
  }
  return merged.map((c) => `${c.domain} iova ${hex(c.iova)} size ${hex(c.size)} unmapped ${hex(c.unmapped)}`);
}

/** A multiset of PFNs given as runs, as maximal ranges of equal multiplicity: `pfn 0x40000..0x401ff x1`. */
/** The [pfn, count] runs the model pinned or unpinned, whether one event per run or lists (version 4). */
function pinRuns(events: readonly Event[], type: 'PagesPinned' | 'PagesUnpinned'): (readonly [number, number])[] {
  return events.flatMap((e) => pinEventsOf(e).flatMap((r) => (r.type === type ? [[r.pfn, r.count] as const] : [])));
}

function pfnMultisetLines(runs: readonly (readonly [number, number])[]): string[] {
  const edges = new Map<number, number>();
  for (const [pfn, count] of runs) {
    if (count <= 0) continue;
    edges.set(pfn, (edges.get(pfn) ?? 0) + 1);
    edges.set(pfn + count, (edges.get(pfn + count) ?? 0) - 1);
  }
  const points = [...edges.keys()].sort((x, y) => x - y);
  // Segments [first, end) of constant multiplicity, merged where a split run left an edge of net zero.
  const segments: [number, number, number][] = [];
  let depth = 0;
  for (let i = 0; i < points.length; i++) {
    const at = points[i] as number;
    depth += edges.get(at) ?? 0;
    const next = points[i + 1];
    if (depth === 0 || next === undefined) continue;
    const last = segments[segments.length - 1];
    if (last !== undefined && last[1] === at && last[2] === depth) last[1] = next;
    else segments.push([at, next, depth]);
  }
  return segments.map(([first, end, n]) =>
    end - 1 === first ? `pfn ${hex(first)} x${n}` : `pfn ${hex(first)}..${hex(end - 1)} x${n}`,
  );
}

/** PFN runs as a sequence, maximally coalesced: `[0x40000 +512, 0x40400 +1]`. */
function pfnSequence(runs: readonly (readonly [number, number])[]): string {
  const merged: [number, number][] = [];
  for (const [pfn, count] of runs) {
    const last = merged[merged.length - 1];
    if (last !== undefined && last[0] + last[1] === pfn) last[1] += count;
    else merged.push([pfn, count]);
  }
  return `[${merged.map(([p, n]) => `${hex(p)} +${n}`).join(', ')}]`;
}

function valueText(v: unknown): string {
  if (v === undefined || v === null) return '(none)';
  if (typeof v === 'bigint') return hex(v);
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function isRuns(v: unknown): v is [number, number][] {
  return Array.isArray(v) && v.every((r) => Array.isArray(r) && typeof r[0] === 'number' && typeof r[1] === 'number');
}

/** A WARN site without leading underscores. */
const site = (fn: string): string => fn.replace(/^_+/, '');

type Sides = { observed: string[]; model: string[] };

/** Both sides of one kind at one op. */
function sidesOf(
  kind: ObservationKind,
  observed: readonly Observation[],
  events: readonly Event[],
  record: OpRecord,
): Sides {
  switch (kind) {
    case 'iommu_map':
      return {
        observed: mapLines(
          observed.flatMap((o) =>
            o.observed === 'iommu_map' ? [{ domain: o.domain, iova: o.iova, paddr: o.paddr, size: o.size }] : [],
          ),
        ),
        model: mapLines(
          events.flatMap((e) =>
            mappedEventsOf(e).map((m) => ({ domain: m.domain, iova: m.iova, paddr: m.paddr, size: m.size })),
          ),
        ),
      };
    case 'iommu_unmap':
      return {
        observed: unmapLines(
          observed.flatMap((o) =>
            o.observed === 'iommu_unmap'
              ? [{ domain: o.domain, iova: o.iova, size: o.size, unmapped: o.unmapped }]
              : [],
          ),
        ),
        model: unmapLines(
          events.flatMap((e) =>
            e.type === 'IommuUnmapped' ? [{ domain: e.domain, iova: e.iova, size: e.size, unmapped: e.unmapped }] : [],
          ),
        ),
      };
    case 'pin':
      return {
        observed: pfnMultisetLines(observed.flatMap((o) => (o.observed === 'pin' ? [[o.pfn, o.count] as const] : []))),
        model: pfnMultisetLines(pinRuns(events, 'PagesPinned')),
      };
    case 'unpin':
      return {
        observed: pfnMultisetLines(
          observed.flatMap((o) => (o.observed === 'unpin' ? [[o.pfn, o.count] as const] : [])),
        ),
        model: pfnMultisetLines(pinRuns(events, 'PagesUnpinned')),
      };
    case 'warn':
      return {
        observed: observed.flatMap((o) => (o.observed === 'warn' ? [`WARN in ${site(o.site)}`] : [])).sort(),
        model: events.flatMap((e) => (e.type === 'Warned' ? [`WARN in ${site(e.fn)}`] : [])).sort(),
      };
    case 'result': {
      const out: Sides = { observed: [], model: [] };
      for (const o of observed) {
        if (o.observed !== 'result') continue;
        out.observed.push(`errno ${o.errno}`);
        out.model.push(`errno ${record.errno ?? 'ok'}`);
        for (const field of ['iova', 'unmapped', 'data', 'pfns'] as const) {
          const want = o[field];
          if (want === undefined) continue;
          const got = record.outputs[field];
          if (field === 'pfns') {
            out.observed.push(`pfns ${pfnSequence(want as [number, number][])}`);
            out.model.push(`pfns ${isRuns(got) ? pfnSequence(got) : valueText(got)}`);
          } else {
            out.observed.push(`${field} ${valueText(want)}`);
            out.model.push(`${field} ${valueText(got)}`);
          }
        }
      }
      return out;
    }
  }
}

function sameLines(x: readonly string[], y: readonly string[]): boolean {
  return x.length === y.length && x.every((s, i) => s === y[i]);
}

/**
 * Compare a trace's observations with a replay of it: `result` gives each op's errno and outputs,
 * `events(op)` the model's events of that op (only ops with observations are asked for).
 *
 * @example compareObserved(trace, result, (op) => store.events(run, { op })...)
 */
export function compareObserved(
  trace: ParsedTrace,
  result: Pick<ReplayResult, 'ops'>,
  events: OpEvents,
): ObservedReport {
  const divergences: ObservedDivergence[] = [];
  let opsObserved = 0;
  let observations = 0;
  trace.entries.forEach((entry, i) => {
    if (entry.observed.length === 0) return;
    const index = i + 1;
    const record = result.ops[index];
    if (record === undefined) return;
    opsObserved += 1;
    observations += entry.observed.length;
    const kinds = new Set(entry.observed.map((o) => o.observed));
    const opEvents = [...events(index)];
    for (const kind of OBSERVATION_KINDS) {
      if (!kinds.has(kind)) continue;
      const sides = sidesOf(kind, entry.observed, opEvents, record);
      if (!sameLines(sides.observed, sides.model)) {
        divergences.push({
          op: index,
          line: entry.line,
          name: record.op,
          kind,
          observed: sides.observed,
          model: sides.model,
        });
      }
    }
  });
  return { opsObserved, observations, divergences, first: divergences[0] ?? null };
}

/** Keeps the events of the ops that have observations (and nothing else) during a replay. */
class ObservedOpsSink implements EventSink {
  readonly byOp = new Map<number, Event[]>();
  constructor(private readonly wanted: ReadonlySet<number>) {}
  accept(event: Event, _seq: number, op: number): void {
    if (!this.wanted.has(op)) return;
    let list = this.byOp.get(op);
    if (list === undefined) this.byOp.set(op, (list = []));
    list.push(event);
  }
}

/** Replay a recorded trace in memory on `spec` and compare it with its observations. */
export function replayObserved(
  trace: ParsedTrace,
  spec: VariantSpec,
): { result: ReplayResult; report: ObservedReport } {
  const wanted = new Set<number>();
  trace.entries.forEach((entry, i) => {
    if (entry.observed.length > 0) wanted.add(i + 1);
  });
  const sink = new ObservedOpsSink(wanted);
  const result = replay(trace, { variant: spec.variant, fixes: spec.fixes, sink });
  return { result, report: compareObserved(trace, result, (op) => sink.byOp.get(op) ?? []) };
}
