import { serialize } from 'node:v8';
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encodeJson } from '../../../src/lib/codec.js';
import { InternalError } from '../../../src/lib/errors.js';
import { digestHex } from '../../../src/lib/digest.js';
import {
  SNAPSHOT_FORMAT,
  decodeEvent,
  deserializeState,
  parseEvent,
  serializeState,
} from '../../../src/state/snapshot.js';
import type { Event } from '../../../src/events/events.js';
import type { State } from '../../../src/state/state.js';
import { scriptedRun } from '../../support/recorded-runs.js';

describe('serializeState / deserializeState', () => {
  const run = scriptedRun({ snapshotEvery: 0 });

  it('round-trips every state of a run exactly, digest included', () => {
    for (const state of run.live) {
      const back = deserializeState(serializeState(state));
      expect(back).toEqual(state);
      expect(digestHex(back.digest)).toBe(digestHex(state.digest));
    }
  });

  it('compresses: the last state of the scripted run is far smaller than its serialization', () => {
    const last = run.live[run.live.length - 1] as State;
    expect(serializeState(last).length).toBeLessThan(4096);
  });

  it('reads format 1 (v8.serialize of the whole state, raw DEFLATE level 1), which older runs stored', () => {
    expect(SNAPSHOT_FORMAT).toBe(3);
    for (const state of run.live) {
      const back = deserializeState(deflateRawSync(serialize(state), { level: 1 }), 1);
      expect(back).toEqual(state);
      expect(back).toEqual(deserializeState(serializeState(state), 3));
    }
  });

  it('gives a private copy: mutating it leaves the original alone', () => {
    const last = run.live[run.live.length - 1] as State;
    const copy = deserializeState(serializeState(last));
    copy.counts.violations = 42;
    expect(last.counts.violations).toBe(1);
  });

  it('refuses an unknown format and bytes that are not a snapshot', () => {
    const blob = serializeState(run.live[0] as State);
    expect(() => deserializeState(blob, SNAPSHOT_FORMAT + 1)).toThrow(
      new InternalError('snapshot format 4 is unknown to this version of ioptrace'),
    );
    expect(() => deserializeState(new Uint8Array([1, 2, 3]))).toThrow(InternalError);
  });
});

describe('decodeEvent / parseEvent', () => {
  const mapped: Event = {
    type: 'IommuMapped',
    v: 1,
    domain: 'd1',
    extent: 3,
    iova: 0x1000n,
    paddr: 0x40000000n,
    size: 0x2000n,
    read: true,
    write: false,
    fn: 'iommu_map',
  };
  const pinned: Event = { type: 'PagesPinned', v: 1, pfn: 0x40000, count: 16, fn: 'pin_user_pages', mm: 1 };

  it('decodes payloads with and without bigints to the events that were encoded', () => {
    expect(decodeEvent(encodeJson(mapped))).toEqual(mapped);
    expect(decodeEvent(encodeJson(pinned))).toEqual(pinned);
    expect(parseEvent(encodeJson(mapped))).toEqual(mapped);
  });

  it('refuses an unknown type or version, and parseEvent also a wrong field', () => {
    expect(() => decodeEvent('{"type":"Nope","v":1}')).toThrow(
      new InternalError('event payload has unknown type "Nope"'),
    );
    expect(() => decodeEvent('{"type":"PagesPinned","v":2}')).toThrow(
      new InternalError('event PagesPinned has version 2, expected 1'),
    );
    expect(() => decodeEvent('not json')).toThrow(InternalError);
    expect(() => parseEvent('{"type":"PagesPinned","v":1,"pfn":-1,"count":1,"fn":"f","mm":null}')).toThrow(
      /^event payload: pfn: /,
    );
  });
});
