// SPDX-License-Identifier: GPL-2.0-only
/**
 * The contract of an EventSource, what time travel reads a run from: given the shipped BAD_FREE trace
 * replayed on v3, every source of that run (in memory, or a stored run of any backend) gives the live
 * replay's events in order, its op spans with their digests, the type filter, and the live state at any seq.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Event, EventType } from '../../src/events/events.js';
import { resolveVariant } from '../../src/kernel/variants.js';
import { parseTraceText } from '../../src/replay/parse.js';
import { replay } from '../../src/replay/replayer.js';
import { MemorySink } from '../../src/state/emit.js';
import { digestHex } from '../../src/lib/digest.js';
import type { EventSource, OpSpan, SourcedEvent } from '../../src/timetravel/source.js';
import { stateAt } from '../../src/timetravel/state-at.js';

export const TRACE = 'replays/bad-free.jsonl';
export const VARIANT = 'v3';

/** The run every source holds: the live replay's events, the op of each, and its op spans. */
export function liveRun(): { text: string; sink: MemorySink; ops: OpSpan[] } {
  const text = readFileSync(TRACE, 'utf8');
  const sink = new MemorySink();
  const live = replay(parseTraceText(text, TRACE), { variant: VARIANT, fixes: resolveVariant(VARIANT).fixes, sink });
  const ops = live.ops.map((o) => ({
    index: o.index,
    firstSeq: o.firstSeq,
    lastSeq: o.lastSeq,
    digest: o.digest,
    name: o.op,
  }));
  return { text, sink, ops };
}

export type SourceFactory = () => Promise<{ source: EventSource; dispose: () => Promise<void> }>;

async function collect(source: EventSource, first: number, last: number, types?: readonly EventType[]) {
  const out: { seq: number; op: number; type: string }[] = [];
  for await (const e of source.events(first, last, types)) out.push({ seq: e.seq, op: e.op, type: e.event.type });
  return out;
}

export function eventSourceContract(kind: string, factory: SourceFactory): void {
  describe(`event source contract: ${kind}`, () => {
    const run = liveRun();

    it('holds the 60 events and 12 ops of the live replay, each event where the live replay put it', async () => {
      const { source, dispose } = await factory();
      try {
        expect([source.eventCount(), source.opCount()]).toEqual([60, 12]);
        const events: Event[] = [];
        for await (const e of source.events(1, source.eventCount())) events.push(e.event);
        expect(events).toEqual(run.sink.events);
        expect((await collect(source, 39, 41)).map((e) => [e.seq, e.op, e.type])).toEqual([
          [39, 8, 'ViolationDetected'],
          [40, 8, 'HeapFreed'],
          [41, 8, 'ViolationDetected'],
        ]);
      } finally {
        await dispose();
      }
    });

    it('gives the events in chunks, the same events as one by one, clipped to the run', async () => {
      const { source, dispose } = await factory();
      try {
        const chunks: SourcedEvent[][] = [];
        for await (const chunk of source.eventChunks(5, 100)) chunks.push([...chunk]);
        expect(chunks.every((c) => c.length > 0)).toBe(true);
        const oneByOne: SourcedEvent[] = [];
        for await (const e of source.events(5, 60)) oneByOne.push(e);
        expect(chunks.flat()).toEqual(oneByOne);
        expect(chunks.flat().map((e) => e.seq)).toEqual(Array.from({ length: 56 }, (_, i) => i + 5));
        const none: unknown[] = [];
        for await (const chunk of source.eventChunks(30, 29)) none.push(chunk);
        expect(none).toEqual([]);
      } finally {
        await dispose();
      }
    });

    it('gives the events alone for a replay (replayChunks), the same as in chunks, clipped to the run', async () => {
      const { source, dispose } = await factory();
      try {
        const replay: Event[] = [];
        for await (const chunk of source.replayChunks(5, 100)) replay.push(...chunk);
        expect(replay).toEqual(run.sink.events.slice(4));
        const none: unknown[] = [];
        for await (const chunk of source.replayChunks(30, 29)) none.push(chunk);
        expect(none).toEqual([]);
      } finally {
        await dispose();
      }
    });

    it('gives the op spans with the digests the live replay recorded', async () => {
      const { source, dispose } = await factory();
      try {
        const spans = await source.ops(0, 11);
        expect(spans.map((s) => [s.index, s.firstSeq, s.lastSeq, s.digest])).toEqual(
          run.ops.map((o) => [o.index, o.firstSeq, o.lastSeq, o.digest]),
        );
        expect((await source.ops(8, 8)).map((s) => s.index)).toEqual([8]);
      } finally {
        await dispose();
      }
    });

    it('filters by type, in seq order', async () => {
      const { source, dispose } = await factory();
      try {
        const found = await collect(source, 1, source.eventCount(), ['ViolationDetected']);
        expect(found.map((e) => [e.seq, e.op])).toEqual([
          [39, 8],
          [41, 8],
          [44, 8],
        ]);
      } finally {
        await dispose();
      }
    });

    it('rebuilds the live state digest at the end of every op', async () => {
      const { source, dispose } = await factory();
      try {
        for (const op of run.ops) {
          const state = await stateAt(source, op.lastSeq);
          expect([op.index, digestHex(state.digest)]).toEqual([op.index, op.digest]);
        }
      } finally {
        await dispose();
      }
    });
  });
}
