// SPDX-License-Identifier: GPL-2.0-only
// The event source contract on every source of a run: in memory (snapshots spaced by cost), and stored
// through recordReplay on every store backend (StoreSource).
import { resolveVariant } from '../../src/kernel/variants.js';
import { parseTraceText } from '../../src/replay/parse.js';
import { recordReplay } from '../../src/replay/record.js';
import { SnapshotSpacing } from '../../src/state/snapshot-spacing.js';
import { expect } from 'vitest';
import { MemorySource } from '../../src/timetravel/source.js';
import type { SnapshotBlob } from '../../src/timetravel/source.js';
import { StoreSource } from '../../src/timetravel/store-source.js';
import { onEveryBackend } from './backends.js';
import { TRACE, VARIANT, eventSourceContract, liveRun } from './event-source.contract.js';

eventSourceContract('in memory', async () => {
  const { sink, ops } = liveRun();
  const spacing = new SnapshotSpacing({ minEvents: 8, maxEvents: 16, bytesPerEvent: 16 });
  const spaced = MemorySource.fromEvents(sink.events, sink.ops, { spacing });
  const blobs: SnapshotBlob[] = [];
  for (const seq of spaced.snapshotSeqs()) {
    const blob = await spaced.snapshotAtOrBefore(seq);
    if (blob !== undefined) blobs.push(blob);
  }
  expect(blobs.length).toBeGreaterThan(1);
  return { source: new MemorySource(sink.events, sink.ops, blobs, ops), dispose: () => Promise.resolve() };
});

onEveryBackend((backend, factory) => {
  eventSourceContract(`stored (${backend})`, async () => {
    const { store, dispose } = await factory();
    const { text } = liveRun();
    const recorded = await recordReplay(store, parseTraceText(text, TRACE), {
      tracePath: TRACE,
      traceText: text,
      variant: VARIANT,
      fixes: resolveVariant(VARIANT).fixes,
    });
    return { source: await StoreSource.open(store, recorded.run), dispose };
  });
});
