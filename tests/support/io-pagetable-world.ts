// SPDX-License-Identifier: GPL-2.0-only
/** Shared setup for the io_pagetable tests: a process with a buffer, a context and one IOAS "A". */
import { expect } from 'vitest';
import type { Event } from '../../src/events/events.js';
import { itreeEntries } from '../../src/structures/interval-tree.js';
import { ioasAlloc, vfioSetType1 } from '../../src/kernel/ioas.js';
import { FLAG_NAMES, PRE_MERGE_FLAGS, isMerged } from '../../src/kernel/variants.js';
import { btreeEntries } from '../../src/structures/btree.js';
import { mmap } from '../../src/machine/memory.js';
import { createProcess } from '../../src/machine/mm.js';
import { Sim } from '../../src/machine/sim.js';
import { Emitter, MemorySink } from '../../src/state/emit.js';
import { reduce } from '../../src/state/reduce.js';
import { type State, initialState } from '../../src/state/state.js';

export const BUF = 0x7f0000000000n;
export const PAGE = 4096n;

export const VARIANT_FLAGS: Record<'v3' | 'merged' | 'upstream', readonly string[]> = {
  v3: [],
  merged: PRE_MERGE_FLAGS,
  upstream: FLAG_NAMES,
};

export interface World {
  sim: Sim;
  sink: MemorySink;
}

/** A sim on `flags` with process 1 (16 populated pages at BUF), context "c" and IOAS "A". */
export function world(
  flags: readonly string[],
  opts: { account?: 'user' | 'mm'; vfioType1?: boolean; bufPages?: bigint; huge?: '4K' | '2M' } = {},
): World {
  const fixes = new Set(flags);
  const sink = new MemorySink();
  const sim = new Sim(new Emitter(initialState(), sink), fixes, isMerged(fixes));
  createProcess(sim, '1', { uid: 1000, memlock: null, capIpcLock: false });
  const mm = sim.state.processes['1']?.mm ?? -1;
  sim.current = { pid: '1', mm };
  expect(mmap(sim, '1', BUF, (opts.bufPages ?? 16n) * PAGE, { huge: opts.huge ?? '4K', writable: true })).toBe(0);
  const vfioType1 = opts.vfioType1 ?? false;
  sim.emit({ type: 'CtxOpened', v: 1, ctx: 'c', pid: '1', account: opts.account ?? 'user', vfioType1 });
  expect(ioasAlloc(sim, 'A', 'c')).toBe(0);
  if (vfioType1) expect(vfioSetType1(sim, 'A')).toBe(0);
  return { sim, sink };
}

/** The areas of an IOAS as [iova, last] pairs, in address order. */
export function areasOf(state: State, ioas: string): [bigint, bigint][] {
  const io = state.ioases[ioas];
  if (io === undefined) return [];
  return itreeEntries(io.areas).map((e) => [e.start, e.last]);
}

/** A domain's mappings as [iova, size] pieces, merged where they touch. */
export function mappedRanges(state: State, domain: string): [bigint, bigint][] {
  const d = state.domains[domain];
  if (d === undefined) return [];
  const out: [bigint, bigint][] = [];
  for (const [, m] of btreeEntries(d.mappings.tree)) {
    const prev = out[out.length - 1];
    if (prev !== undefined && prev[0] + prev[1] === m.iova) prev[1] += m.size;
    else out.push([m.iova, m.size]);
  }
  return out;
}

export function eventsOf<T extends Event['type']>(sink: MemorySink, type: T): Extract<Event, { type: T }>[] {
  return sink.events.filter((e): e is Extract<Event, { type: T }> => e.type === type);
}

/** Replay the log on a fresh state: it must equal the live one (digest and structure). */
export function expectRebuildEqualsLive(w: World): void {
  const fresh = initialState();
  for (const e of w.sink.events) reduce(fresh, e);
  expect(fresh.digest).toEqual(w.sim.state.digest);
  expect(fresh).toEqual(w.sim.state);
}

/** Pins held on all frames (each page of a segment counts). */
export function totalPins(state: State): number {
  let total = 0;
  for (const [, seg] of btreeEntries(state.frames.tree)) total += seg.value.pins * seg.count;
  return total;
}
