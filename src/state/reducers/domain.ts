// SPDX-License-Identifier: GPL-2.0-only
/**
 * Reducers for IOMMU domains as IO page tables. A successful iommu_map call becomes mappings of uniform
 * IOPTE size (the largest sizes that the alignment of iova and paddr allows, as the IOMMU core splits a
 * call); the mock domain stores one piece per call with its START/LAST flag bit on the first and last mock
 * page. An unmap removes exactly the byte ranges its event lists (the model decided what the driver removes).
 */
import type { EventOf } from '../../events/events.js';
import { tupleAddTo, tuplePart, tupleRemoveFrom, tupleStart, zeroDigest } from '../../lib/digest.js';
import { mappingAt, mappingsCreate, mappingsReplace } from '../../structures/mapping-table.js';
import { recordAdd, recordRemove, recordSet, recordStructure } from '../records.js';
import { markWritten } from '../../structures/write-marks.js';
import { ioPageTableKey } from '../state.js';
import type { Domain, IoPageTableSet, Mapping, MappingTable, State } from '../state.js';
import { mustGet } from './lookup.js';

export interface PgsizeRun {
  iova: bigint;
  paddr: bigint;
  size: bigint;
  pgsize: bigint;
}

/** A domain's page sizes, largest first, sorted once per list (a map of 4 KiB pages calls this per page). */
const descendingSizes = new WeakMap<readonly bigint[], readonly bigint[]>();

function descending(pgsizes: readonly bigint[]): readonly bigint[] {
  let sizes = descendingSizes.get(pgsizes);
  if (sizes === undefined) {
    sizes = [...pgsizes].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    descendingSizes.set(pgsizes, sizes);
  }
  return sizes;
}

/** Split a map call into runs of one IOPTE size each, choosing per step the largest size that fits. */
export function pgsizeRuns(iova: bigint, paddr: bigint, size: bigint, pgsizes: readonly bigint[]): PgsizeRun[] {
  const sizes = descending(pgsizes);
  const runs: PgsizeRun[] = [];
  let off = 0n;
  while (off < size) {
    const at = iova + off;
    const pa = paddr + off;
    const left = size - off;
    let pg: bigint | undefined;
    for (const p of sizes) {
      if (left >= p && at % p === 0n && pa % p === 0n) {
        pg = p;
        break;
      }
    }
    pg ??= sizes[sizes.length - 1] ?? left;
    const last = runs[runs.length - 1];
    if (last && last.pgsize === pg && last.iova + last.size === at) last.size += pg;
    else runs.push({ iova: at, paddr: pa, size: pg, pgsize: pg });
    off += pg;
  }
  return runs;
}

/**
 * Remove [start, end) from the table, cutting the pieces it overlaps, and write `pieces` (ascending, within
 * [start, end)) in its place: one write of the table. Returns the bytes of older pieces removed.
 */
function writeRange(t: MappingTable, start: bigint, end: bigint, pieces: readonly Mapping[]): bigint {
  const head = mappingAt(t, start);
  const tail = mappingAt(t, end - 1n);
  const written: Mapping[] = [];
  let kept = 0n;
  // What is left of a piece cut by the range keeps the flag bit on its far side only.
  if (head !== undefined && head.iova < start) {
    written.push({ ...head, size: start - head.iova, tailFlag: false });
    kept += start - head.iova;
  }
  for (const m of pieces) written.push(m);
  if (tail !== undefined && tail.iova + tail.size > end) {
    const size = tail.iova + tail.size - end;
    written.push({ ...tail, iova: end, paddr: tail.paddr + (end - tail.iova), size, headFlag: false });
    kept += size;
  }
  const lo = head !== undefined && head.iova < start ? head.iova : start;
  return mappingsReplace(t, lo, end, written) - kept;
}

/** Add (`present`) or remove one table of a digested set; a key already so is left alone. */
function tableSetPut(set: IoPageTableSet, key: string, present: boolean): void {
  if ((set.keys[key] === true) === present) return;
  if (present) set.keys[key] = true;
  else delete set.keys[key];
  set.count += present ? 1 : -1;
  tupleStart();
  tuplePart(key);
  if (present) tupleAddTo(set.digest);
  else tupleRemoveFrom(set.digest);
}

export function domainAllocated(s: State, e: EventOf<'DomainAllocated'>): void {
  const domain: Domain = {
    name: e.domain,
    kind: e.kind,
    pgsizes: [...e.pgsizes],
    aperture: [e.aperture[0], e.aperture[1]],
    mappings: mappingsCreate(),
    mappedBytes: 0n,
    ...(e.pageTable !== 'iommupt'
      ? {}
      : e.tableSet === true
        ? { ioPageTableSet: { keys: {}, count: 0, digest: zeroDigest() } }
        : { ioPageTables: {} }),
  };
  s.domains[e.domain] = domain;
  recordAdd(s, 'domain', e.domain, domain);
}

export function domainFreed(s: State, e: EventOf<'DomainFreed'>): void {
  recordRemove(s, 'domain', e.domain, mustGet(s.domains, e.domain, 'domain'));
  delete s.domains[e.domain];
}

/** What one iommu_map call writes: `size` bytes from `iova` map `paddr`. */
interface MapCall {
  extent: number;
  iova: bigint;
  paddr: bigint;
  size: bigint;
}

/** Write one map call's mappings into the domain's table; returns the bytes of older mappings it replaced. */
function mapInto(t: MappingTable, d: Domain, x: MapCall, read: boolean, write: boolean): bigint {
  // The model has already WARNed about an overlap; like the mock, the new entries replace the old ones.
  const pieces: Mapping[] = [];
  if (d.kind === 'mock' && d.ioPageTables === undefined && d.ioPageTableSet === undefined) {
    pieces.push({
      iova: x.iova,
      size: x.size,
      paddr: x.paddr,
      pgsize: d.pgsizes[0] ?? x.size,
      read,
      write,
      extent: x.extent,
      headFlag: true,
      tailFlag: true,
    });
  } else {
    for (const run of pgsizeRuns(x.iova, x.paddr, x.size, d.pgsizes)) {
      const { iova, size, paddr, pgsize } = run;
      pieces.push({ iova, size, paddr, pgsize, read, write, extent: x.extent, headFlag: false, tailFlag: false });
    }
  }
  return writeRange(t, x.iova, x.iova + x.size, pieces);
}

export function iommuMapped(s: State, e: EventOf<'IommuMapped'>): void {
  const d = mustGet(s.domains, e.domain, 'domain');
  let overwritten = 0n;
  recordStructure(s, 'domain', e.domain, d, 'mappings', (t) => {
    overwritten = mapInto(t, d, e, e.read, e.write);
  });
  recordSet(s, 'domain', e.domain, d, 'mappedBytes', d.mappedBytes - overwritten + e.size);
  s.nextId = Math.max(s.nextId, e.extent + 1);
}

/**
 * A list of IommuMapped extents (version 4): each in order, as its own event would, with the domain's
 * record taken out of the digest and put back once for the whole list (the same digest as once per extent).
 */
export function iommuMappedRuns(s: State, e: EventOf<'IommuMappedRuns'>): void {
  const d = mustGet(s.domains, e.domain, 'domain');
  let bytes = d.mappedBytes;
  let nextId = s.nextId;
  recordStructure(s, 'domain', e.domain, d, 'mappings', (t) => {
    for (const x of e.extents) {
      bytes = bytes - mapInto(t, d, x, e.read, e.write) + x.size;
      nextId = Math.max(nextId, x.extent + 1);
    }
  });
  recordSet(s, 'domain', e.domain, d, 'mappedBytes', bytes);
  s.nextId = nextId;
}

export function iommuUnmapped(s: State, e: EventOf<'IommuUnmapped'>): void {
  const d = mustGet(s.domains, e.domain, 'domain');
  let removed = 0n;
  recordStructure(s, 'domain', e.domain, d, 'mappings', (t) => {
    for (const [iova, size] of e.removed) removed += writeRange(t, iova, iova + size, []);
  });
  recordSet(s, 'domain', e.domain, d, 'mappedBytes', d.mappedBytes - removed);
}

export function ioPageTablesChanged(s: State, e: EventOf<'IoPageTablesChanged'>): void {
  const d = mustGet(s.domains, e.domain, 'domain');
  if (d.ioPageTableSet !== undefined) {
    recordStructure(s, 'domain', e.domain, d, 'ioPageTableSet', (set) => {
      if (set === undefined) return;
      markWritten(set);
      for (const [level, iova] of e.freed) tableSetPut(set, ioPageTableKey(level, iova), false);
      for (const [level, iova] of e.allocated) tableSetPut(set, ioPageTableKey(level, iova), true);
    });
    return;
  }
  const keys = new Set(Object.keys(d.ioPageTables ?? {}));
  for (const [level, iova] of e.freed) keys.delete(ioPageTableKey(level, iova));
  for (const [level, iova] of e.allocated) keys.add(ioPageTableKey(level, iova));
  // Sorted, so that the field's digest does not depend on the order the tables came and went in.
  const tables: Record<string, true> = {};
  for (const k of [...keys].sort()) tables[k] = true;
  recordSet(s, 'domain', e.domain, d, 'ioPageTables', tables);
}
