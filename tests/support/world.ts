// SPDX-License-Identifier: GPL-2.0-only
/**
 * The one world builder of the tests: a real Sim over a fresh State with an in-memory log, the builders
 * that put a scenario in place (processes, populated mappings with a chosen physical layout, domains, IOASes,
 * areas), the given/when/then form for specs of kernel functions, the queries tests read the state with,
 * and the check that rebuilding the log reproduces the live state.
 *
 * Builders emit the events a scenario needs directly, so a spec's "given" costs no kernel code; the kernel
 * function under test is then called in `when`, which returns exactly the events that call emitted.
 */
import { expect } from 'vitest';
import { Event } from '../../src/events/events.js';
import type { EventOf } from '../../src/events/events.js';
import { ioasAlloc, vfioSetType1 } from '../../src/kernel/ioas.js';
import { FLAG_NAMES, PRE_MERGE_FLAGS, VARIANTS, isMerged } from '../../src/kernel/variants.js';
import type { Ptr } from '../../src/machine/heap.js';
import { kmalloc } from '../../src/machine/heap.js';
import { mmap } from '../../src/machine/memory.js';
import { createProcess, exitProcess as machineExit } from '../../src/machine/mm.js';
import { Sim } from '../../src/machine/sim.js';
import { Emitter, MemorySink } from '../../src/state/emit.js';
import { reduce } from '../../src/state/reduce.js';
import type { RunConfig, State } from '../../src/state/state.js';
import { DEFAULT_CONFIG, initialState, recomputeDigest } from '../../src/state/state.js';
import { mappingsPieces } from '../../src/structures/mapping-table.js';
import { itreeEntries } from '../../src/structures/interval-tree.js';
import { rangeForEachAll, rangeGet } from '../../src/structures/range-map.js';
import { xaRuns } from '../../src/structures/xarray.js';

export const PAGE = 4096;
/** PAGE as a bigint, for IOVA and address arithmetic. */
export const PAGE_N = 4096n;
export const MOCK_APERTURE: [bigint, bigint] = [1n << 24n, (1n << 31n) - 1n];

export interface World {
  sim: Sim;
  sink: MemorySink;
}

export interface WorldOptions extends Partial<RunConfig> {
  /** Whether the Sim models the merged code structure; by default, whether the flags include every pre-merge fix. */
  merged?: boolean;
}

/** The fix flags of the three eras, for tests that sweep them. */
export const VARIANT_FLAGS: Record<'v3' | 'merged' | 'upstream', readonly string[]> = {
  v3: [],
  merged: PRE_MERGE_FLAGS,
  upstream: FLAG_NAMES,
};

/**
 * A world running the given fix flags (a variant name or an explicit list; none means v3 as posted). The
 * configuration goes through RunConfigured, so the log carries it and a rebuild sees the same settings.
 */
export function world(variant: string | readonly string[] = [], options: WorldOptions = {}): World {
  const fixes = typeof variant === 'string' ? VARIANTS[variant] : variant;
  if (fixes === undefined) throw new Error(`world: no variant ${String(variant)}`);
  const { merged, ...config } = options;
  const flags = new Set(fixes);
  const sink = new MemorySink();
  const sim = new Sim(new Emitter(initialState(), sink), flags, merged ?? isMerged(flags));
  sim.emit({
    type: 'RunConfigured',
    v: 1,
    ...DEFAULT_CONFIG,
    ...config,
    variant: typeof variant === 'string' ? variant : 'custom',
    fixes: [...fixes],
  });
  return { sim, sink };
}

// ---------------------------------------------------------------------------------------------------------
// Given: builders

/** A process with its mm; the caller of later kernel calls unless `as` says otherwise. */
export function proc(
  w: World,
  pid: string,
  opts: { uid?: number; memlock?: bigint | null; cap?: boolean } = {},
): number {
  const mm = w.sim.newId();
  w.sim.emit({
    type: 'ProcessCreated',
    v: 1,
    pid,
    mm,
    uid: opts.uid ?? 1000,
    memlock: opts.memlock === undefined ? 1n << 30n : opts.memlock,
    capIpcLock: opts.cap ?? false,
  });
  w.sim.current = { pid, mm };
  return mm;
}

/** Run fn as the given task (a process, or a kernel thread when pid is null). */
export function as<T>(w: World, pid: string | null, fn: () => T): T {
  const saved = w.sim.current;
  const mm = pid === null ? null : (w.sim.state.processes[pid]?.mm ?? null);
  w.sim.current = { pid, mm };
  try {
    return fn();
  } finally {
    w.sim.current = saved;
  }
}

/** Populate [vpn, vpn + pages) of mm with the physical runs given (each run [firstPfn, count]). */
export function mapRuns(
  w: World,
  mm: number,
  vpn: number,
  runs: [number, number][],
  huge: '4K' | '2M' = '4K',
  writable = true,
): void {
  let npages = 0;
  for (const [pfn, count] of runs) {
    w.sim.emit({ type: 'FramesAllocated', v: 1, pfn, count, huge });
    npages += count;
  }
  w.sim.emit({ type: 'VmaMapped', v: 1, mm, vpn, npages, writable, huge, runs });
}

/** The process exits (do_exit): mm_users drops and its address space is torn down. */
export function exitProcess(w: World, pid: string): void {
  machineExit(w.sim, pid);
}

export function mockDomain(w: World, name: string): void {
  w.sim.emit({
    type: 'DomainAllocated',
    v: 1,
    domain: name,
    kind: 'mock',
    pgsizes: [BigInt(PAGE / 2)],
    aperture: MOCK_APERTURE,
  });
}

export function ioas(w: World, name: string, domains: string[] = []): void {
  w.sim.emit({ type: 'IoasAllocated', v: 1, ioas: name, ctx: 'ctx' });
  if (domains.length > 0) w.sim.emit({ type: 'IoasDomainsSet', v: 1, ioas: name, domains });
}

/** An area over [firstIndex, lastIndex] of a pages at `iova` (page_offset from the IOVA's low bits). */
export function area(
  w: World,
  ioasName: string,
  iova: bigint,
  firstIndex: number,
  lastIndex: number,
  opts: { pageOffset?: number; lastIova?: bigint; write?: boolean } = {},
): number {
  const id = w.sim.newId();
  const pageOffset = opts.pageOffset ?? 0;
  const lastIova = opts.lastIova ?? iova + BigInt((lastIndex - firstIndex + 1) * PAGE - pageOffset) - 1n;
  w.sim.emit({
    type: 'AreaAllocated',
    v: 1,
    area: id,
    ioas: ioasName,
    iova,
    lastIova,
    pageOffset,
    firstIndex,
    lastIndex,
    prot: { read: true, write: opts.write ?? true },
  });
  return id;
}

export function setAreaPages(w: World, areaId: number, pages: number | null): void {
  w.sim.emit({ type: 'AreaPagesSet', v: 1, area: areaId, pages });
}

/** A caller-owned array of `n` page pointers (what vfio_pin_pages hands to iommufd). */
export function callerArray(w: World, n: number): Ptr {
  const ptr = kmalloc(w.sim, n * 8, { owner: 'caller', tag: 'out_pages', fn: 'test' });
  if (ptr === null) throw new Error('kmalloc failed');
  return ptr;
}

/** Where the io_pagetable tests' process keeps its buffer. */
export const BUF = 0x7f0000000000n;

/**
 * The io_pagetable tests' world, built through the kernel's own calls: process 1 with a populated buffer at
 * BUF (16 pages unless told), context "c" and IOAS "A" (set to VFIO type1 when asked).
 */
export function ioasWorld(
  flags: readonly string[],
  opts: { account?: 'user' | 'mm'; vfioType1?: boolean; bufPages?: bigint; huge?: '4K' | '2M' } = {},
): World {
  const w = world(flags);
  const { sim } = w;
  createProcess(sim, '1', { uid: 1000, memlock: null, capIpcLock: false });
  sim.current = { pid: '1', mm: sim.state.processes['1']?.mm ?? -1 };
  const bytes = (opts.bufPages ?? 16n) * PAGE_N;
  expect(mmap(sim, '1', BUF, bytes, { huge: opts.huge ?? '4K', writable: true })).toBe(0);
  const vfioType1 = opts.vfioType1 ?? false;
  sim.emit({ type: 'CtxOpened', v: 1, ctx: 'c', pid: '1', account: opts.account ?? 'user', vfioType1 });
  expect(ioasAlloc(sim, 'A', 'c')).toBe(0);
  if (vfioType1) expect(vfioSetType1(sim, 'A')).toBe(0);
  return w;
}

// ---------------------------------------------------------------------------------------------------------
// When / then

/** What one call did: its return value and the events it emitted, in order. */
export interface Outcome<T> {
  result: T;
  events: Event[];
  /** The emitted events' types, for a then that names the sequence. */
  types: string[];
}

/** Calls the kernel function under test and isolates what it emitted from what the given emitted. */
export function when<T>(w: World, call: () => T): Outcome<T> {
  const from = w.sink.events.length;
  const result = call();
  const events = w.sink.events.slice(from);
  return { result, events, types: events.map((e) => e.type) };
}

/** The events of one type among `events` (an Outcome's, or a whole log), in order. */
export function ofType<T extends Event['type']>(events: readonly Event[], type: T): EventOf<T>[] {
  return events.filter((e): e is EventOf<T> => e.type === type);
}

/** The whole log's events of one type. */
export function eventsOf<T extends Event['type']>(w: World | MemorySink, type: T): EventOf<T>[] {
  return ofType('sink' in w ? w.sink.events : w.events, type);
}

/** Event types of the log from position `from` on. */
export function typesSince(w: World | MemorySink, from: number): string[] {
  return ('sink' in w ? w.sink : w).events.slice(from).map((e) => e.type);
}

export function warns(w: World): [string, string][] {
  return eventsOf(w, 'Warned').map((e) => [e.fn, e.condition]);
}

export function violations(w: World): [string, string][] {
  return eventsOf(w, 'ViolationDetected').map((e) => [e.kind, e.fn]);
}

export function findings(w: World): number {
  return w.sim.state.counts.warns + w.sim.state.counts.violations;
}

/** Every logged event is valid, and reducing the log over a fresh state gives the live state and digest. */
export function expectRebuildEqual({ sim, sink }: World): void {
  const rebuilt = initialState();
  for (const event of sink.events) {
    Event.parse(event);
    reduce(rebuilt, event);
  }
  expect(rebuilt).toEqual(sim.state);
  expect(rebuilt.digest).toEqual(sim.state.digest);
  expect(recomputeDigest(sim.state)).toEqual(sim.state.digest);
}

// ---------------------------------------------------------------------------------------------------------
// State queries

export function pins(state: State, pfn: number): number {
  return rangeGet(state.frames, pfn)?.pins ?? 0;
}

/** Pin counts of pfn .. pfn + count - 1 as [pins, how many] runs. */
export function pinRuns(state: State, pfn: number, count: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    const p = pins(state, pfn + i);
    const last = out[out.length - 1];
    if (last && last[0] === p) last[1] += 1;
    else out.push([p, 1]);
  }
  return out;
}

/** Pins held on all frames (each page of a segment counts). */
export function totalPins(state: State): number {
  let total = 0;
  rangeForEachAll(state.frames, (_start, count, frame) => {
    total += frame.pins * count;
  });
  return total;
}

/** A pages' xarray as [index, pfn, count] runs. */
export function xaContents(state: State, pages: number): [number, number, number][] {
  const p = state.pages[pages];
  if (p === undefined) return [];
  return [...xaRuns(p.xa, 0, Number.MAX_SAFE_INTEGER)].map((r) => [r.index, r.pfn, r.count]);
}

/** The areas of an IOAS as [iova, last] pairs, in address order. */
export function areasOf(state: State, ioasName: string): [bigint, bigint][] {
  const io = state.ioases[ioasName];
  if (io === undefined) return [];
  return itreeEntries(io.areas).map((e) => [e.start, e.last]);
}

/** A domain's mappings as [iova, size] pieces, merged where they touch. */
export function mappedRanges(state: State, domain: string): [bigint, bigint][] {
  const d = state.domains[domain];
  if (d === undefined) return [];
  const out: [bigint, bigint][] = [];
  for (const m of mappingsPieces(d.mappings)) {
    const prev = out[out.length - 1];
    if (prev !== undefined && prev[0] + prev[1] === m.iova) prev[1] += m.size;
    else out.push([m.iova, m.size]);
  }
  return out;
}
