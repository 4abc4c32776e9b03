// SPDX-License-Identifier: GPL-2.0-only
/**
 * A small world for the pages.c tests: a Sim over a fresh state with a MemorySink, and builders that emit
 * the machine and iommufd events a scenario needs (processes, populated mappings with a chosen physical
 * layout, domains, an IOAS, areas). The kernel code under test is then called directly.
 */
import type { Event } from '../../src/events/events.js';
import type { Ptr } from '../../src/machine/heap.js';
import { kmalloc } from '../../src/machine/heap.js';
import { exitProcess as machineExit } from '../../src/machine/mm.js';
import { Sim } from '../../src/machine/sim.js';
import { rangeGet } from '../../src/structures/range-map.js';
import { VARIANTS, isMerged } from '../../src/kernel/variants.js';
import { xaRuns } from '../../src/structures/xarray.js';
import { Emitter, MemorySink } from '../../src/state/emit.js';
import type { State } from '../../src/state/state.js';
import { initialState } from '../../src/state/state.js';

export const PAGE = 4096;
export const MOCK_APERTURE: [bigint, bigint] = [1n << 24n, (1n << 31n) - 1n];

export interface World {
  sim: Sim;
  sink: MemorySink;
}

/** A world running the given fix flags (a variant name or an explicit list). */
export function world(
  variant: keyof typeof VARIANTS | readonly string[],
  config: { testBuild?: boolean; tempMemoryLimit?: number } = {},
): World {
  const fixes = typeof variant === 'string' ? (VARIANTS[variant] ?? []) : variant;
  const sink = new MemorySink();
  const emitter = new Emitter(initialState(), sink);
  const set = new Set(fixes);
  const sim = new Sim(emitter, set, isMerged(set));
  sim.emit({
    type: 'RunConfigured',
    v: 1,
    pageSize: PAGE,
    testBuild: config.testBuild ?? true,
    tempMemoryLimit: config.tempMemoryLimit ?? 65536,
    gupZeroOnOverflow: true,
    variant: typeof variant === 'string' ? variant : 'custom',
    fixes: [...fixes],
  });
  return { sim, sink };
}

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

export function xaContents(state: State, pages: number): [number, number, number][] {
  const p = state.pages[pages];
  if (p === undefined) return [];
  return [...xaRuns(p.xa, 0, Number.MAX_SAFE_INTEGER)].map((r) => [r.index, r.pfn, r.count]);
}

export function eventsOf<T extends Event['type']>(w: World, type: T): Extract<Event, { type: T }>[] {
  return w.sink.events.filter((e): e is Extract<Event, { type: T }> => e.type === type);
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
