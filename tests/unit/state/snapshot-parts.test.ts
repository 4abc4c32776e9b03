import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { encodeJson } from '../../../src/lib/codec.js';
import { InternalError } from '../../../src/lib/errors.js';
import { reduce } from '../../../src/state/reduce.js';
import { PART_MIN_ENTRIES, SnapshotEncoder, decodeParts } from '../../../src/state/snapshot-parts.js';
import { deserializeState } from '../../../src/state/snapshot.js';
import { FIRST_PFN } from '../../../src/state/state.js';
import type { State } from '../../../src/state/state.js';
import { P1_MM, scriptedRun } from '../../support/recorded-runs.js';

/** The last state of the scripted run, as a private mutable copy. */
function scriptedState(): State {
  const live = scriptedRun({ snapshotEvery: 0 }).live;
  return structuredClone(live[live.length - 1] as State);
}

/** The part paths a blob's header lists, joined by dots. */
function partsOf(blob: Buffer): string[] {
  const header = JSON.parse(blob.toString('utf8', 4, 4 + blob.readUInt32LE(0))) as { parts: [string[], number][] };
  return header.parts.map(([path]) => path.join('.'));
}

function expectDecodesTo(blob: Buffer, state: State): void {
  const back = deserializeState(blob, 2);
  expect(isDeepStrictEqual(back, state)).toBe(true);
  expect(encodeJson(back)).toBe(encodeJson(state));
}

describe('SnapshotEncoder', () => {
  it('encodes each structure of the state as a part, and reuses every part when nothing was written', () => {
    const state = scriptedState();
    const encoder = new SnapshotEncoder(0);
    const first = encoder.encode(state);
    const pages = Object.keys(state.pages);
    expect(partsOf(first)).toEqual([
      'frames',
      `mms.${P1_MM}.pt`,
      `mms.${P1_MM}.vmas`,
      ...pages.flatMap((id) => [`pages.${id}.xa`, `pages.${id}.accessTree`, `pages.${id}.domainsTree`]),
      'ioases.i1.areas',
      'ioases.i1.allowed',
      'ioases.i1.reserved',
      'domains.d1.mappings.tree',
    ]);
    const n = 7 + 3 * pages.length;
    expect(encoder.stats).toEqual({ encoded: n, reused: 0 });
    expectDecodesTo(first, state);

    const second = encoder.encode(state);
    expect(encoder.stats).toEqual({ encoded: n, reused: n });
    expect(second.equals(first)).toBe(true);
  });

  it('encodes again exactly the parts a reducer wrote, in place or by new nodes', () => {
    const state = scriptedState();
    const encoder = new SnapshotEncoder(0);
    encoder.encode(state);
    const before = { ...encoder.stats };
    // Pins change a frame segment's value; the page table, VMAs and everything else are untouched.
    reduce(state, { type: 'PagesPinned', v: 1, pfn: FIRST_PFN + 5, count: 3, fn: 'pin_user_pages', mm: P1_MM });
    const pinned = encoder.encode(state);
    expect(encoder.stats.encoded - before.encoded).toBe(1);
    expectDecodesTo(pinned, state);

    // Remapping a page rewrites a run of the mm's page table and two frame segments.
    reduce(state, {
      type: 'CowBroken',
      v: 1,
      mm: P1_MM,
      vpn: 0x100 + 7,
      oldPfn: FIRST_PFN + 7,
      newPfn: FIRST_PFN + 9,
      fn: 'wp_page_copy',
    });
    const cowed = encoder.encode(state);
    expect(encoder.stats.encoded - before.encoded).toBe(3);
    expectDecodesTo(cowed, state);
  });

  it('misses the cache for a structure replaced by a new object', () => {
    const state = scriptedState();
    const encoder = new SnapshotEncoder(0);
    encoder.encode(state);
    const { encoded, reused } = encoder.stats;
    state.frames = structuredClone(state.frames);
    expectDecodesTo(encoder.encode(state), state);
    expect(encoder.stats.encoded).toBe(encoded + 1);
    expect(encoder.stats.reused).toBe(reused + encoded - 1);
  });

  it('keeps structures smaller than PART_MIN_ENTRIES in the rest', () => {
    const state = scriptedState();
    const blob = new SnapshotEncoder().encode(state);
    expect(state.frames.tree.size).toBeLessThan(PART_MIN_ENTRIES);
    expect(partsOf(blob)).toEqual([]);
    expectDecodesTo(blob, state);
    // Alternate pins on every other frame: one segment per frame.
    for (let i = 0; i < 2 * PART_MIN_ENTRIES; i += 2) {
      reduce(state, { type: 'PagesPinned', v: 1, pfn: FIRST_PFN + i, count: 1, fn: 'pin_user_pages', mm: P1_MM });
    }
    expect(state.frames.tree.size).toBeGreaterThanOrEqual(PART_MIN_ENTRIES);
    const big = new SnapshotEncoder().encode(state);
    expect(partsOf(big)).toEqual(['frames']);
    expectDecodesTo(big, state);
  });

  it('refuses a blob whose header or parts do not fit', () => {
    const blob = new SnapshotEncoder(0).encode(scriptedState());
    expect(() => decodeParts(blob.subarray(0, 3))).toThrow(new InternalError('snapshot is too short for its header'));
    expect(() => decodeParts(blob.subarray(0, 40))).toThrow(new InternalError('snapshot header runs past its end'));
    expect(() => decodeParts(blob.subarray(0, blob.length - 1))).toThrow(
      new InternalError('snapshot part runs past its end'),
    );
    expect(() => decodeParts(Buffer.concat([blob, Buffer.from([0])]))).toThrow(
      new InternalError('snapshot has 1 bytes after its parts'),
    );
    const header = (text: string): Buffer => {
      const length = Buffer.alloc(4);
      length.writeUInt32LE(Buffer.byteLength(text));
      return Buffer.concat([length, Buffer.from(text)]);
    };
    expect(() => decodeParts(header('{"rest":0,"parts":[[[],0]]}'))).toThrow(
      new InternalError('snapshot header is not a list of parts'),
    );
    // A part whose field the rest does not hold as null.
    const rest = blob.subarray(4 + blob.readUInt32LE(0));
    const restLength = (JSON.parse(blob.toString('utf8', 4, 4 + blob.readUInt32LE(0))) as { rest: number }).rest;
    const misplaced = Buffer.concat([
      header(`{"rest":${restLength},"parts":[[["nextPfn"],${restLength}]]}`),
      rest.subarray(0, restLength),
      rest.subarray(0, restLength),
    ]);
    expect(() => decodeParts(misplaced)).toThrow(new InternalError('snapshot part nextPfn has no place in the state'));
  });
});
