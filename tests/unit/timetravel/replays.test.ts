import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { parseTraceText } from '../../../src/replay/parse.js';
import { replay } from '../../../src/replay/replayer.js';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { MemorySink } from '../../../src/state/emit.js';
import { MemorySource } from '../../../src/timetravel/source.js';
import type { OpSpan, SnapshotBlob } from '../../../src/timetravel/source.js';
import { SnapshotSpacing } from '../../../src/state/snapshot-spacing.js';
import { rebuildFinal, verifyRebuild } from '../../../src/timetravel/rebuild.js';
import { withoutStateDigest } from '../../../src/state/records.js';
import { reduce } from '../../../src/state/reduce.js';
import { initialState, recomputeDigest } from '../../../src/state/state.js';
import { stateAt } from '../../../src/timetravel/state-at.js';
import { Cursor } from '../../../src/timetravel/cursor.js';
import { digestHex } from '../../../src/lib/digest.js';
import { yieldToEventLoop, yielder } from '../../support/yield.js';

const TRACES = [
  'replays/bad-free.jsonl',
  ...readdirSync('replays/selftest')
    .filter((f) => f.endsWith('.jsonl'))
    .sort()
    .map((f) => `replays/selftest/${f}`),
];

/** Replay a shipped trace live, then give its log as a source whose op digests are the live ones. */
async function recorded(
  path: string,
  variant: string,
): Promise<{ source: MemorySource; live: ReturnType<typeof replay> }> {
  const sink = new MemorySink();
  const trace = parseTraceText(readFileSync(path, 'utf8'), path);
  const live = replay(trace, { variant, fixes: resolveVariant(variant).fixes, sink });
  const spacing = new SnapshotSpacing({ minEvents: 64, maxEvents: 1024, bytesPerEvent: 16 });
  const rebuilt = MemorySource.fromEvents(sink.events, sink.ops, { spacing });
  const spans: OpSpan[] = live.ops.map((o) => ({
    index: o.index,
    firstSeq: o.firstSeq,
    lastSeq: o.lastSeq,
    digest: o.digest,
    name: o.op,
  }));
  const blobs: SnapshotBlob[] = [];
  for (const seq of rebuilt.snapshotSeqs()) {
    const blob = await rebuilt.snapshotAtOrBefore(seq);
    if (blob !== undefined) blobs.push(blob);
  }
  return { source: new MemorySource(sink.events, sink.ops, blobs, spans), live };
}

/** At most n ops, evenly spread, always the first and the last. */
function sample<T>(list: readonly T[], n: number): T[] {
  if (list.length <= n) return [...list];
  return Array.from({ length: n }, (_, i) => list[Math.round((i * (list.length - 1)) / (n - 1))] as T);
}

describe('time travel over the shipped traces', () => {
  for (const path of TRACES) {
    // Tens of seconds on a loaded machine: the event loop gets a turn between the steps (tests/README.md).
    it(`${path}: rebuild gives the live digest after every op; seeks and patch steps give the live states`, async () => {
      const pause = yielder();
      const { source, live } = await recorded(path, 'v3');
      await yieldToEventLoop();
      const report = await verifyRebuild(source);
      expect(report.mismatch).toBeNull();
      expect(report.ops).toBe(live.ops.length);
      expect(report.state).toEqual(live.state);
      await yieldToEventLoop();

      // The final state without a digest kept on the way: the same state, the digest recomputed at the end.
      expect(await rebuildFinal(source)).toEqual(live.state);
      await yieldToEventLoop();
      // Half of the run without the digest, then on with it kept: whatever the writers remember of a table
      // (records.ts) must not outlive the writes made while it was off.
      const events = source.eventList;
      const half = Math.floor(events.length / 2);
      const state = initialState();
      withoutStateDigest(() => {
        for (const event of events.slice(0, half)) reduce(state, event);
      });
      state.digest = recomputeDigest(state);
      for (const event of events.slice(half)) reduce(state, event);
      expect(state).toEqual(live.state);
      await yieldToEventLoop();

      for (const op of sample(live.ops, 40)) {
        expect(digestHex((await stateAt(source, op.lastSeq)).digest), `op ${op.index}`).toBe(op.digest);
        await pause();
      }

      const c = await Cursor.open(source, -1);
      while ((await c.forward()) !== null) await pause();
      expect(c.state).toEqual(live.state);
      while ((await c.back()) !== null) await pause();
      expect(c.state).toEqual(await stateAt(source, 0));
      await yieldToEventLoop();

      const upstream = await recorded(path, 'upstream');
      await yieldToEventLoop();
      expect((await verifyRebuild(upstream.source)).mismatch).toBeNull();
    });
  }
});
