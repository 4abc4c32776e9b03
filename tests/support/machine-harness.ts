// SPDX-License-Identifier: GPL-2.0-only
/** A real Sim over a fresh state with an in-memory log, and the "rebuild from the log equals live" check. */
import { expect } from 'vitest';
import { Event } from '../../src/events/events.js';
import type { EventOf } from '../../src/events/events.js';
import { Sim } from '../../src/machine/sim.js';
import { Emitter, MemorySink } from '../../src/state/emit.js';
import { reduce } from '../../src/state/reduce.js';
import { recomputeDigest } from '../../src/state/state.js';
import { DEFAULT_CONFIG, initialState } from '../../src/state/state.js';
import type { RunConfig } from '../../src/state/state.js';

export interface Harness {
  sim: Sim;
  sink: MemorySink;
}

/** A Sim with the given fix flags; config changes go through RunConfigured so that the log carries them. */
export function harness(opts: { flags?: string[]; merged?: boolean; config?: Partial<RunConfig> } = {}): Harness {
  const sink = new MemorySink();
  const sim = new Sim(new Emitter(initialState(), sink), new Set(opts.flags ?? []), opts.merged ?? true);
  if (opts.config !== undefined) {
    const c = { ...DEFAULT_CONFIG, ...opts.config };
    sim.emit({ type: 'RunConfigured', v: 1, ...c, variant: 'test', fixes: [...(opts.flags ?? [])] });
  }
  return { sim, sink };
}

/** Every logged event is valid, and reducing the log over a fresh state gives the live state and digest. */
export function expectRebuildEqual({ sim, sink }: Harness): void {
  const rebuilt = initialState();
  for (const event of sink.events) {
    Event.parse(event);
    reduce(rebuilt, event);
  }
  expect(rebuilt).toEqual(sim.state);
  expect(rebuilt.digest).toEqual(sim.state.digest);
  expect(recomputeDigest(sim.state)).toEqual(sim.state.digest);
}

/** The logged events of one type, in order. */
export function eventsOf<T extends Event['type']>(sink: MemorySink, type: T): EventOf<T>[] {
  return sink.events.filter((e): e is EventOf<T> => e.type === type);
}

/** Event types from position `from` of the log on. */
export function typesSince(sink: MemorySink, from: number): string[] {
  return sink.events.slice(from).map((e) => e.type);
}
