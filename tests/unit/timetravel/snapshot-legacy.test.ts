// SPDX-License-Identifier: GPL-2.0-only
/**
 * Snapshots stored before the structures held progressions (formats 1 and 2: one object per xarray run,
 * range map segment and mapping piece) load into the state the same run has now, atoms and digests alike.
 */
import { serialize } from 'node:v8';
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DEFAULT_GUEST, guestTrace } from '../../../bench/generate.js';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { digestHex } from '../../../src/lib/digest.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { replay } from '../../../src/replay/replayer.js';
import { btreeCreate, btreeSet } from '../../../src/structures/btree.js';
import { mappingsForEachFrom } from '../../../src/structures/mapping-table.js';
import type { MappingTable } from '../../../src/structures/mapping-table.js';
import { rangeAtomCount, rangeForEachAll } from '../../../src/structures/range-map.js';
import type { RangeMap } from '../../../src/structures/range-map.js';
import { xaForEachRun } from '../../../src/structures/xarray.js';
import type { Xarray } from '../../../src/structures/xarray.js';
import { SNAPSHOT_FORMAT, deserializeState, serializeState } from '../../../src/state/snapshot.js';
import type { State } from '../../../src/state/state.js';

/** The state after the whole 8 MiB guest of scattered 4 KiB pages is mapped into two domains (op 6). */
function mappedGuest(): State {
  const text = guestTrace({ ...DEFAULT_GUEST, guestBytes: 8 << 20, accessOps: 2, chunkBytes: null, smallPages: true });
  let mapped: State | undefined;
  replay(parseTraceText(text.text), {
    variant: 'upstream',
    fixes: resolveVariant('upstream').fixes,
    onOp: (record, state) => {
      if (record.index === 7) mapped = deserializeState(serializeState(state));
    },
  });
  if (mapped === undefined) throw new Error('the guest was not mapped');
  return mapped;
}

// What formats 1 and 2 stored: one plain object per entry, in a tree keyed as the entries are.
function oldXarray(xa: Xarray): unknown {
  const runs = btreeCreate<number, object>();
  xaForEachRun(
    xa,
    0,
    Number.MAX_SAFE_INTEGER,
    (index, pfn, count) => void btreeSet(runs, index, { index, pfn, count }),
  );
  return { runs, digest: xa.digest, count: xa.count };
}
function oldRangeMap<V>(m: RangeMap<V>): unknown {
  const tree = btreeCreate<number, object>();
  rangeForEachAll(m, (start, count, value, key) => void btreeSet(tree, start, { start, count, value, key }));
  return { tree, digest: m.digest, count: m.count };
}
function oldMappings(t: MappingTable): unknown {
  const tree = btreeCreate<bigint, object>();
  mappingsForEachFrom(t, undefined, (m) => void btreeSet(tree, m.iova, { ...m }));
  return { tree, digest: t.digest };
}

function oldShape(state: State): unknown {
  const s = structuredClone(state) as unknown as Record<string, Record<string, Record<string, unknown>>>;
  s['frames'] = oldRangeMap(state.frames) as never;
  for (const [id, mm] of Object.entries(state.mms)) {
    (s['mms'] as Record<string, Record<string, unknown>>)[id] = {
      ...s['mms']?.[id],
      pt: oldXarray(mm.pt),
      vmas: oldRangeMap(mm.vmas),
    };
  }
  for (const [id, p] of Object.entries(state.pages)) {
    (s['pages'] as Record<string, Record<string, unknown>>)[id] = { ...s['pages']?.[id], xa: oldXarray(p.xa) };
  }
  for (const [name, d] of Object.entries(state.domains)) {
    (s['domains'] as Record<string, Record<string, unknown>>)[name] = {
      ...s['domains']?.[name],
      mappings: oldMappings(d.mappings),
    };
  }
  return s;
}

describe('snapshots of formats 1 and 2', () => {
  const state = mappedGuest();

  it('hold one object per entry where format 3 holds one atom per row', () => {
    expect(SNAPSHOT_FORMAT).toBe(3);
    // 2048 frames, every other PFN: one atom in the frame table, the page table and each domain.
    expect(state.frames.elements).toBe(2048);
    expect(rangeAtomCount(state.frames)).toBe(1);
    const mm = Object.values(state.mms)[0];
    expect(mm?.pt.runs.size).toBe(1);
    expect(Object.values(state.domains).map((d) => d.mappings.tree.size)).toEqual([1, 1]);
  });

  it('load as the state format 3 gives, digest included', () => {
    const legacy = oldShape(state);
    const fromV1 = deserializeState(deflateRawSync(serialize(legacy), { level: 1 }), 1);
    expect(fromV1).toEqual(state);
    expect(digestHex(fromV1.digest)).toBe(digestHex(state.digest));
    expect(deserializeState(serializeState(legacy as State), 2)).toEqual(state);
  });
});
