// SPDX-License-Identifier: GPL-2.0-only
/**
 * Snapshot format 2: the State encoded in parts, so that a recorder re-encodes only what changed since its
 * last snapshot. Between two snapshots of a long run most of the state's bytes (page tables, the IO page
 * tables of the domains) are usually untouched while the frame table and a few records change.
 *
 * A part is one large structure of the State: the frame table, each mm's page table and VMAs, each memfd's
 * page table, each pages' xarray and interval trees, each IOAS's interval trees, each domain's mapping
 * tree and (version 5) set of IO page tables. "The rest" is the State with those fields set to null. Each
 * is v8.serialize'd and raw-DEFLATEd (level 1) on its own. A structure with fewer than `partMinEntries`
 * entries stays in the rest: each part costs a deflate stream of its own (tens of us), more than
 * re-encoding a small structure.
 *
 * The blob: a u32 (little-endian) byte length of the header, the header (UTF-8 JSON:
 * `{"rest": bytes, "parts": [[path, bytes], ...]}`, a path being the keys from the State down to the
 * field), then the rest's bytes and each part's bytes in header order. Self-contained: decoding needs no
 * other snapshot.
 *
 * A SnapshotEncoder keeps each part's bytes with the write clock they were encoded at
 * (structures/write-marks.ts) and reuses them while none of the part's containers has been written since:
 * exact, since every in-place write of a structure marks it. A structure replaced by a new object simply
 * misses the cache. The cache is keyed by the structures (a WeakMap), so it keeps no state alive; one
 * encoder belongs to one recorder.
 *
 * v8.serialize keeps the objects shared within one value shared; between parts they would come back as
 * copies. No reducer stores one object in two structures, or in a structure and a record, and stored values
 * are never changed in place, so nothing could tell.
 */
import { deserialize, serialize } from 'node:v8';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { writeClock, writtenSince } from '../structures/write-marks.js';
import type { IntervalTree } from '../structures/interval-tree.js';
import type { RangeMap } from '../structures/range-map.js';
import { rangeAtomCount } from '../structures/range-map.js';
import type { Xarray } from '../structures/xarray.js';
import { InternalError } from '../lib/errors.js';
import type { State } from './state.js';

/** Fewest entries (segments, runs, nodes, mappings) of a structure encoded as a part of its own. */
export const PART_MIN_ENTRIES = 256;

interface Part {
  /** Keys from the State down to the field that holds the structure. */
  path: string[];
  value: object;
  /** The objects whose write marks cover every write of the structure. */
  containers: object[];
  entries: number;
}

/** The State's structures, in a fixed order, with what a write to each marks. */
function structuresOf(state: State): Part[] {
  const parts: Part[] = [];
  const rangeMap = (path: string[], m: RangeMap<unknown>): void => {
    parts.push({ path, value: m, containers: [m, m.tree], entries: rangeAtomCount(m) });
  };
  const xarray = (path: string[], xa: Xarray): void => {
    parts.push({ path, value: xa, containers: [xa, xa.runs], entries: xa.runs.size });
  };
  const itree = (path: string[], t: IntervalTree<number> | IntervalTree<bigint>): void => {
    parts.push({ path, value: t, containers: [t], entries: t.count });
  };
  rangeMap(['frames'], state.frames);
  for (const [id, mm] of Object.entries(state.mms)) {
    xarray(['mms', id, 'pt'], mm.pt);
    rangeMap(['mms', id, 'vmas'], mm.vmas);
  }
  for (const [name, file] of Object.entries(state.files)) xarray(['files', name, 'pt'], file.pt);
  for (const [id, pages] of Object.entries(state.pages)) {
    xarray(['pages', id, 'xa'], pages.xa);
    itree(['pages', id, 'accessTree'], pages.accessTree);
    itree(['pages', id, 'domainsTree'], pages.domainsTree);
  }
  for (const [name, ioas] of Object.entries(state.ioases)) {
    for (const field of ['areas', 'allowed', 'reserved'] as const) itree(['ioases', name, field], ioas[field]);
  }
  for (const [name, domain] of Object.entries(state.domains)) {
    const tree = domain.mappings.tree;
    parts.push({ path: ['domains', name, 'mappings', 'tree'], value: tree, containers: [tree], entries: tree.size });
  }
  for (const [name, domain] of Object.entries(state.domains)) {
    const set = domain.ioPageTableSet;
    if (set !== undefined)
      parts.push({ path: ['domains', name, 'ioPageTableSet'], value: set, containers: [set], entries: set.count });
  }
  return parts;
}

/** The state with every part's field set to null: copies along the paths, the state itself untouched. */
function restOf(state: State, parts: readonly Part[]): object {
  const rest: Record<string, unknown> = { ...state };
  const copies = new Set<object>([rest]);
  for (const { path } of parts) {
    let node = rest;
    for (const key of path.slice(0, -1)) {
      let child = node[key] as Record<string, unknown>;
      if (!copies.has(child)) {
        child = { ...child };
        copies.add(child);
        node[key] = child;
      }
      node = child;
    }
    node[path[path.length - 1] as string] = null;
  }
  return rest;
}

const encodeValue = (value: unknown): Buffer => deflateRawSync(serialize(value), { level: 1 });

/** Encodes the states of one run in format 2, reusing the bytes of the parts not written since. */
export class SnapshotEncoder {
  private readonly cache = new WeakMap<object, { clock: number; bytes: Buffer }>();
  /** Parts encoded and parts whose cached bytes were reused, over all encodes (tests, diagnostics). */
  readonly stats = { encoded: 0, reused: 0 };

  constructor(private readonly partMinEntries: number = PART_MIN_ENTRIES) {}

  /** Encode a state for the snapshots table. The state is only read. */
  encode(state: State): Buffer {
    const clock = writeClock();
    const parts = structuresOf(state).filter((p) => p.entries >= this.partMinEntries);
    const chunks = [encodeValue(restOf(state, parts))];
    for (const part of parts) chunks.push(this.partBytes(part, clock));
    const header = Buffer.from(
      JSON.stringify({
        rest: (chunks[0] as Buffer).length,
        parts: parts.map((p, i) => [p.path, (chunks[i + 1] as Buffer).length]),
      }),
      'utf8',
    );
    const length = Buffer.alloc(4);
    length.writeUInt32LE(header.length);
    return Buffer.concat([length, header, ...chunks]);
  }

  private partBytes(part: Part, clock: number): Buffer {
    const cached = this.cache.get(part.value);
    if (cached !== undefined && !part.containers.some((c) => writtenSince(c, cached.clock))) {
      this.stats.reused++;
      return cached.bytes;
    }
    this.stats.encoded++;
    const bytes = encodeValue(part.value);
    this.cache.set(part.value, { clock, bytes });
    return bytes;
  }
}

interface Header {
  rest: number;
  parts: [string[], number][];
}

function isHeader(value: unknown): value is Header {
  const h = value as Partial<Header> | null;
  const isLength = (n: unknown): boolean => Number.isSafeInteger(n) && (n as number) >= 0;
  return (
    h !== null &&
    typeof h === 'object' &&
    isLength(h.rest) &&
    Array.isArray(h.parts) &&
    h.parts.every(
      (p) =>
        Array.isArray(p) &&
        Array.isArray(p[0]) &&
        p[0].length > 0 &&
        p[0].every((k) => typeof k === 'string') &&
        isLength(p[1]),
    )
  );
}

/** Put a part back where the rest holds its null. */
function attach(rest: unknown, path: readonly string[], value: unknown): void {
  let node = rest;
  for (const key of path.slice(0, -1)) {
    node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
  }
  const field = path[path.length - 1] as string;
  if (node === null || typeof node !== 'object' || (node as Record<string, unknown>)[field] !== null) {
    throw new InternalError(`snapshot part ${path.join('.')} has no place in the state`);
  }
  (node as Record<string, unknown>)[field] = value;
}

/** Decode a format-2 blob into the value it encodes (the caller checks that it is a State). */
export function decodeParts(bytes: Uint8Array): unknown {
  const blob = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (blob.length < 4) throw new InternalError('snapshot is too short for its header');
  const headerEnd = 4 + blob.readUInt32LE(0);
  if (headerEnd > blob.length) throw new InternalError('snapshot header runs past its end');
  const header: unknown = JSON.parse(blob.toString('utf8', 4, headerEnd));
  if (!isHeader(header)) throw new InternalError('snapshot header is not a list of parts');
  let at = headerEnd;
  const take = (n: number): unknown => {
    if (at + n > blob.length) throw new InternalError('snapshot part runs past its end');
    const value: unknown = deserialize(inflateRawSync(blob.subarray(at, at + n)));
    at += n;
    return value;
  };
  const rest = take(header.rest);
  for (const [path, n] of header.parts) attach(rest, path, take(n));
  if (at !== blob.length) throw new InternalError(`snapshot has ${blob.length - at} bytes after its parts`);
  return rest;
}
