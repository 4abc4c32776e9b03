// Format 2 over every shipped trace: snapshots taken often during the live replay, each structure a part of
// its own and the parts not written since reused, decode to exactly the live state at their seq and to what
// format 1 decodes.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { serialize } from 'node:v8';
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { Event } from '../../../src/events/events.js';
import { encodeJson } from '../../../src/lib/codec.js';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { replay } from '../../../src/replay/replayer.js';
import type { EventSink } from '../../../src/state/emit.js';
import { SnapshotEncoder, deserializeState } from '../../../src/state/snapshot.js';
import { SnapshotSpacing } from '../../../src/state/snapshot-spacing.js';
import type { State } from '../../../src/state/state.js';
import { ROOT, SHIPPED_TRACES } from '../../support/heads.js';

const FIXTURE_TRACES = readdirSync(join(ROOT, 'tests/fixtures/traces'))
  .filter((f) => f.endsWith('.jsonl'))
  .sort()
  .map((f) => relative(ROOT, join(ROOT, 'tests/fixtures/traces', f)));

/** Takes snapshots of the live state as the store's recorder does, and checks each one as it is taken. */
class CheckingSink implements EventSink {
  state: State | null = null;
  // Every structure a part, however small: the shipped traces' structures are all small.
  readonly encoder = new SnapshotEncoder(0);
  private readonly spacing = new SnapshotSpacing({ minEvents: 6, maxEvents: 48, bytesPerEvent: 64 });
  readonly problems: string[] = [];
  snapshots = 0;

  accept(_event: Event, seq: number): void {
    if (this.state === null || !this.spacing.due(seq)) return;
    const live = this.state;
    const blob = this.encoder.encode(live);
    this.spacing.taken(seq, blob.length);
    this.snapshots++;
    const back = deserializeState(blob, 2);
    // Not the bytes of v8.serialize: they depend on how V8 happens to hold a number (an integer field of
    // double representation is written as a double). Values, prototypes and key order are what matter.
    if (!isDeepStrictEqual(back, live) || encodeJson(back) !== encodeJson(live)) {
      this.problems.push(`seq ${seq}: decodes to another state`);
    }
    const v1 = deserializeState(deflateRawSync(serialize(live), { level: 1 }), 1);
    if (!isDeepStrictEqual(back, v1)) this.problems.push(`seq ${seq}: format 1 decodes to another state`);
  }
}

describe('format 2 snapshots of the shipped traces', () => {
  for (const path of [...FIXTURE_TRACES, ...SHIPPED_TRACES]) {
    it(`${path}: every snapshot decodes to the live state at its seq`, () => {
      const sink = new CheckingSink();
      const variant = 'merged';
      replay(parseTraceText(readFileSync(join(ROOT, path), 'utf8'), path), {
        variant,
        fixes: resolveVariant(variant).fixes,
        sink,
        onOp: (_record, state) => {
          sink.state = state;
        },
      });
      expect(sink.problems).toEqual([]);
      expect(sink.snapshots).toBeGreaterThan(1);
    });
  }
});
