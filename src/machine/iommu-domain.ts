// SPDX-License-Identifier: GPL-2.0-only
/**
 * IOMMU domains as IO page tables (spec section 15): the iommu core's iommu_map / iommu_unmap /
 * iommu_iova_to_phys (drivers/iommu/iommu.c) over two drivers: a generic page-table driver with 4 KiB,
 * 2 MiB and 1 GiB IOPTEs (or the sizes a trace gives), and the selftest mock domain
 * (drivers/iommu/iommufd/selftest.c). The mock has two eras: up to v6.18 an xarray with IO pages of
 * PAGE_SIZE / 2 and its START/LAST flag bit; with [up:mock-iommupt] (e93d5945ed5b, v6.19) an iommupt page
 * table of the amdv1 format's "mock" variant (drivers/iommu/generic_pt/fmt/iommu_mock.c), whose interior
 * table levels are tracked in Domain.ioPageTables because allocating them is where its map can fail.
 *
 * A domain's `mappings` holds pieces: `size` bytes from `iova` map `paddr` as IOPTEs of `pgsize`, tagged
 * with the `extent` (the iommu_map call) that made them. The reducer splits a generic map into pieces with
 * pgsizeRuns (the core's choice of the largest size the alignment allows) and stores one piece per mock map
 * with the flag bit on its first and last mock page.
 *
 * Invariants: pieces never overlap; generic pieces are whole IOPTEs (an unmap removes whole IOPTEs, so a
 * piece's iova stays aligned to its pgsize); a successful map is exactly one IommuMapped with a fresh extent
 * id; an unmap is at most one IommuUnmapped, whose `removed` lists the bytes really removed.
 *
 * Pairing: iommufd must unmap exactly what it mapped, call by call (what the mock's flag checks enforce and
 * what makes huge IOPTEs safe). An unmap that begins or ends strictly inside one extent (the contiguous
 * pieces of one map call) is a 'domain_pairing' violation, reported before the unmap, for both drivers.
 *
 * Deviations: one driver call per core call (the core's per-size loop is folded into pgsizeRuns); the
 * generic driver refuses a map over a present IOPTE before mapping anything (the kernel maps up to it,
 * fails and unmaps what it mapped: the same end state); no storage failures inside the drivers but the
 * iommupt mock's table allocations; no aperture check in map (iommufd checks the aperture at attach), and
 * the iommupt mock's own limits (IOVAs below 2^38, output addresses below 2^51: -ERANGE) are not checked
 * (the mock's aperture ends at 2^31, physical addresses stay far below); a map or unmap whose range wraps 2^64 is
 * rejected (map: -EINVAL) or clipped at 2^64 (unmap). Without [up:map-requires-prot] a map with neither
 * READ nor WRITE is stored like any other.
 */
import { mappingAt, mappingsEmpty, mappingsForEachFrom } from '../structures/mapping-table.js';
import { InternalError } from '../lib/errors.js';
import { ioPageTableKey } from '../state/state.js';
import type { Domain, Mapping, State } from '../state/state.js';
import { EADDRINUSE, EEXIST, EINVAL, ENOENT, ENOMEM } from './errno.js';
import { RunList } from './sim.js';
import type { Sim } from './sim.js';
import { hex } from '../lib/format.js';
import { pgsizeRuns } from '../state/reducers/domain.js';

/** IOMMU_READ / IOMMU_WRITE of a map. */
export interface IommuProt {
  read: boolean;
  write: boolean;
}

const U64_LIMIT = 1n << 64n;
/** The mock domain's aperture: [2^24, 2^31 - 1]. */
export const MOCK_APERTURE: readonly [bigint, bigint] = [1n << 24n, (1n << 31n) - 1n];
/** IOPTE sizes of the generic driver unless a trace gives its own. */
export const GENERIC_PGSIZES: readonly bigint[] = [1n << 12n, 1n << 21n, 1n << 30n];

/**
 * The iommupt mock ([up:mock-iommupt]): the amdv1 format with a 2 KiB granule (whatever PAGE_SIZE is),
 * started at level 2 with no dynamic top. Each level's table holds 512 items, so a level-0 item is 2 KiB,
 * a level-1 item 1 MiB and a level-2 item 512 MiB, and amdv1's contiguous entries give every power of two
 * from an item up to its whole table less one doubling: IO pages of 2^11 .. 2^37 bytes.
 */
export const MOCK_PT_PGSIZES: readonly bigint[] = Array.from({ length: 27 }, (_, i) => 1n << BigInt(11 + i));
/** The bytes one interior table spans, by its level: a level-0 table maps 1 MiB, a level-1 table 512 MiB. */
const PT_TABLE_SPAN: readonly bigint[] = [1n << 20n, 1n << 29n];
/** The level a leaf of `pgsize` bytes is installed at. */
const ptLeafLevel = (pgsize: bigint): number => (pgsize < PT_TABLE_SPAN[0]! ? 0 : pgsize < PT_TABLE_SPAN[1]! ? 1 : 2);

/** A mock domain built on an iommupt page table rather than the xarray of earlier kernels. */
export const isIommuptMock = (d: Domain): boolean =>
  d.kind === 'mock' && (d.ioPageTables !== undefined || d.ioPageTableSet !== undefined);
/** The xarray mock of [v3 .. v6.18], with its START/LAST bits and per-page WARNs. */
export const isXarrayMock = (d: Domain): boolean => d.kind === 'mock' && !isIommuptMock(d);

function domainOf(state: State, name: string): Domain {
  const d = state.domains[name];
  if (d === undefined) throw new InternalError(`no domain ${name}`);
  return d;
}

const isPow2 = (x: bigint): boolean => x > 0n && (x & (x - 1n)) === 0n;

/** The smallest IO page size of a domain: the alignment of every map and unmap. */
export function domainPgsizeMin(state: State, domain: string): bigint {
  const sizes = domainOf(state, domain).pgsizes;
  return sizes.reduce((a, b) => (b < a ? b : a), sizes[0] ?? 1n);
}

/**
 * Allocate a paging domain. mock: IO page PAGE_SIZE / 2 (with [up:mock-iommupt] the iommupt table's
 * 2 KiB .. 128 GiB) and aperture [2^24, 2^31 - 1] (a given aperture wins; given page sizes are ignored:
 * the mock driver has its own). generic: the given page sizes (powers of two) or 4K | 2M | 1G, aperture
 * as given or the whole 64-bit space.
 */
export function domainAlloc(
  sim: Sim,
  name: string,
  kind: 'mock' | 'generic',
  opts: { pgsizes?: bigint[]; aperture?: [bigint, bigint] } = {},
): void {
  if (sim.state.domains[name] !== undefined) throw new InternalError(`domain ${name} already exists`);
  const iommupt = kind === 'mock' && sim.has('mock-iommupt');
  const pgsizes = iommupt
    ? [...MOCK_PT_PGSIZES]
    : kind === 'mock'
      ? [BigInt(sim.pageSize / 2)]
      : [...(opts.pgsizes ?? GENERIC_PGSIZES)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (pgsizes.length === 0 || !pgsizes.every(isPow2)) {
    throw new InternalError(`domain ${name}: page sizes must be powers of two, got ${pgsizes.join(', ')}`);
  }
  const aperture: [bigint, bigint] =
    opts.aperture ?? (kind === 'mock' ? [MOCK_APERTURE[0], MOCK_APERTURE[1]] : [0n, U64_LIMIT - 1n]);
  sim.emit({
    type: 'DomainAllocated',
    v: 1,
    domain: name,
    kind,
    pgsizes,
    aperture,
    ...(iommupt ? { pageTable: 'iommupt' as const } : {}),
    ...(iommupt && sim.ioPageTableSets ? { tableSet: true as const } : {}),
  });
}

/** iommu_domain_free: WARN if anything is still mapped (the mock's !xa_empty check), then free. */
export function domainFree(sim: Sim, name: string): void {
  const d = domainOf(sim.state, name);
  // pt_iommu_deinit frees the table levels whatever they still map: the iommupt mock has no such check.
  if (!mappingsEmpty(d.mappings) && !isIommuptMock(d)) {
    sim.warn(d.kind === 'mock' ? 'mock_domain_free' : 'iommu_domain_free', 'freeing with mappings', {
      domain: name,
      mappedBytes: d.mappedBytes,
    });
  }
  sim.emit({ type: 'DomainFreed', v: 1, domain: name });
}

/** The piece that maps the byte at `iova`. */
function pieceAt(d: Domain, iova: bigint): Mapping | undefined {
  return mappingAt(d.mappings, iova);
}

/** The present parts of [start, end), clipped, ascending, merged where they touch: [iova, size][]. */
function presentIn(d: Domain, start: bigint, end: bigint): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  const add = (a: bigint, b: bigint): void => {
    const last = out[out.length - 1];
    if (last !== undefined && last[0] + last[1] === a) last[1] += b - a;
    else out.push([a, b - a]);
  };
  const head = pieceAt(d, start);
  if (head !== undefined && head.iova < start) add(start, head.iova + head.size < end ? head.iova + head.size : end);
  mappingsForEachFrom(d.mappings, start, (m) => {
    if (m.iova >= end) return false;
    add(m.iova, m.iova + m.size < end ? m.iova + m.size : end);
    return true;
  });
  return out;
}

/** [start, end) of the extent `m` belongs to: the contiguous pieces with its extent id. */
function extentSpan(d: Domain, m: Mapping): [bigint, bigint] {
  let start = m.iova;
  for (;;) {
    const prev = mappingAt(d.mappings, start - 1n);
    if (prev === undefined || prev.extent !== m.extent || prev.iova + prev.size !== start) break;
    start = prev.iova;
  }
  let end = m.iova + m.size;
  for (;;) {
    const next = mappingAt(d.mappings, end);
    if (next === undefined || next.iova !== end || next.extent !== m.extent) break;
    end = next.iova + next.size;
  }
  return [start, end];
}

/**
 * iommu_map: map [iova, iova + size) to paddr. -EINVAL unless iova, paddr and size are multiples of the
 * smallest page size (or, with [up:map-requires-prot], when prot has neither READ nor WRITE). mock: the
 * [merged, test] fault point first (-ENOENT), then every mock page that is already mapped WARNs and is
 * overwritten. generic: a present IOPTE in the range WARNs and fails the call with -EEXIST, mapping nothing.
 * iommupt mock ([up:mock-iommupt]): ptMockMap. Size 0 maps nothing and succeeds.
 */
export function iommuMap(
  sim: Sim,
  domain: string,
  iova: bigint,
  paddr: bigint,
  size: bigint,
  prot: IommuProt,
  fn: string,
  list: MappedExtents | null = null,
): number {
  settleOver(sim, domain, iova, iova + size);
  const d = domainOf(sim.state, domain);
  if (size === 0n) return 0;
  const min = domainPgsizeMin(sim.state, domain);
  if ((iova | paddr | size) % min !== 0n) return -EINVAL;
  const end = iova + size;
  if (end > U64_LIMIT) return -EINVAL;
  if (sim.has('map-requires-prot') && !prot.read && !prot.write) return -EINVAL;
  if (isIommuptMock(d)) return ptMockMap(sim, d, iova, paddr, size, prot, fn, list);
  if (d.kind === 'mock') {
    if (sim.merged && sim.testBuild && sim.faultPoint('iommu_map', fn)) return -ENOENT;
    for (const [at, n] of presentIn(d, iova, end)) {
      for (let p = at; p < at + n; p += min) sim.warn('mock_domain_map_pages', 'old', { domain, iova: p });
    }
  } else {
    const present = presentIn(d, iova, end)[0];
    if (present !== undefined) {
      sim.warn('iommu_map', 'IOPTE already present', { domain, iova: present[0], size: present[1] });
      return -EEXIST;
    }
  }
  emitMapped(sim, domain, iova, paddr, size, prot, fn, list);
  return 0;
}

/** One extent of an IommuMappedRuns event. */
interface MappedExtent {
  extent: number;
  iova: bigint;
  paddr: bigint;
  size: bigint;
}

/**
 * The extents one batch_to_domain call has mapped but not yet reported, for version 4's IommuMappedRuns
 * events (at most sim.runsPerEvent extents each). It waits in sim.pendingList, so any other event reports
 * it first, and iommu_map reports it before reading mappings it overlaps: the log and every read see the
 * order of one IommuMapped per extent.
 */
export class MappedExtents extends RunList<MappedExtent, bigint> {
  constructor(
    private readonly owner: Sim,
    readonly domain: string,
    prot: IommuProt,
    fn: string,
    perEvent: number,
  ) {
    super(
      owner,
      perEvent,
      (extents) =>
        owner.emit({ type: 'IommuMappedRuns', v: 1, domain, read: prot.read, write: prot.write, fn, extents }),
      { span: { start: (e) => e.iova, end: (e) => e.iova + e.size }, waits: true },
    );
  }

  /** A list for one call of `fn` in a version 4 trace; null (one IommuMapped per extent) in earlier versions. */
  static forCall(sim: Sim, domain: string, prot: IommuProt, fn: string): MappedExtents | null {
    return sim.runsPerEvent === null ? null : new MappedExtents(sim, domain, prot, fn, sim.runsPerEvent);
  }

  addExtent(iova: bigint, paddr: bigint, size: bigint): void {
    // The id is taken now, as the single event would take it.
    this.add({ extent: this.owner.newId(), iova, paddr, size });
  }

  /** Whether an unreported extent of `domain` may overlap [start, end). */
  overlapsIn(domain: string, start: bigint, end: bigint): boolean {
    return domain === this.domain && this.overlaps(start, end);
  }
}

/** Report the unreported extents before a read of [start, end) of `domain`'s mappings that they overlap. */
function settleOver(sim: Sim, domain: string, start: bigint, end: bigint): void {
  const p = sim.pendingList;
  if (p !== null && (!(p instanceof MappedExtents) || p.overlapsIn(domain, start, end))) sim.flushPending();
}

/** One IOPTE extent written: the event both mock eras end a (partial) map with. */
function emitMapped(
  sim: Sim,
  domain: string,
  iova: bigint,
  paddr: bigint,
  size: bigint,
  prot: IommuProt,
  fn: string,
  list: MappedExtents | null = null,
): void {
  if (list !== null) {
    list.addExtent(iova, paddr, size);
    return;
  }
  sim.emit({
    type: 'IommuMapped',
    v: 1,
    domain,
    extent: sim.newId(),
    iova,
    paddr,
    size,
    read: prot.read,
    write: prot.write,
    fn,
  });
}

/** Record the interior tables a map or unmap of an iommupt mock allocated and freed, if any. */
function emitTables(sim: Sim, domain: string, allocated: [number, bigint][], freed: [number, bigint][], fn: string) {
  if (allocated.length === 0 && freed.length === 0) return;
  sim.emit({ type: 'IoPageTablesChanged', v: 1, domain, allocated, freed, fn });
}

/** A domain's interior tables as a walk sees them: membership, and all of them when a range is large. */
interface TableSet {
  has(key: string): boolean;
  keys(): Iterable<string>;
}

/** The tables of a domain's record. */
function storedTables(d: Domain): TableSet {
  const stored = d.ioPageTableSet?.keys ?? d.ioPageTables ?? {};
  return { has: (key) => stored[key] === true, keys: () => Object.keys(stored) };
}

/** Fewest candidate tables of a range for which walking the whole set is cheaper than probing each. */
const PROBE_LIMIT = 64n;

/** The interior tables of `tables` below level `below` whose whole span lies in [start, end). */
function tablesWithin(tables: TableSet, below: number, start: bigint, end: bigint): [number, bigint][] {
  const out: [number, bigint][] = [];
  for (let level = 0; level < below && level < PT_TABLE_SPAN.length; level++) {
    const span = PT_TABLE_SPAN[level]!;
    const first = start % span === 0n ? start : start - (start % span) + span;
    if (first + span > end) continue;
    if ((end - first) / span <= PROBE_LIMIT) {
      // A small range: probe each table it could hold.
      for (let base = first; base + span <= end; base += span) {
        if (tables.has(ioPageTableKey(level, base))) out.push([level, base]);
      }
      continue;
    }
    // A large range can span millions of tables where the set holds a few: walk the set.
    for (const key of tables.keys()) {
      const at = key.indexOf('@');
      if (Number(key.slice(0, at)) !== level) continue;
      const base = BigInt(key.slice(at + 1));
      if (base >= first && base + span <= end) out.push([level, base]);
    }
  }
  return out.sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : a[0] - b[0]));
}

/**
 * pt_iommu_amdv1_mock_map_pages under the iommu core's __iommu_map ([up:mock-iommupt]). The core cuts
 * the range into the largest IO pages the alignment of iova and paddr allows (pgsizeRuns); the walk
 * descends from the top, allocating each missing level-1 and level-0 table on the way (pt_iommu_new_table:
 * a page allocation, so a fail-nth point that fails with -ENOMEM), and installs leaves in IOVA order. A
 * present entry where a table or a leaf must go fails the call with -EADDRINUSE (no WARN); empty tables
 * under a new larger leaf are freed (clear_contig). On failure the core unmaps what was mapped, and the
 * tables allocated so far stay.
 */
function ptMockMap(
  sim: Sim,
  d: Domain,
  iova: bigint,
  paddr: bigint,
  size: bigint,
  prot: IommuProt,
  fn: string,
  list: MappedExtents | null,
): number {
  const domain = d.name;
  if (!prot.read && !prot.write) {
    sim.warn('pt_iommu_amdv1_mock_map_pages', '!(prot & (IOMMU_READ | IOMMU_WRITE))', { domain, iova });
    return -EINVAL;
  }
  // The domain's tables as this call changes them, without copying them: a guest of 4 KiB pages has a
  // level-0 table per MiB of IOVA and one map call per page.
  const stored = d.ioPageTableSet?.keys ?? d.ioPageTables ?? {};
  // Made when the call first adds or frees a table: most maps of a page find their tables there.
  let added: Set<string> | null = null;
  let dropped: Set<string> | null = null;
  const hasTable = (key: string): boolean =>
    dropped?.has(key) !== true && (added?.has(key) === true || stored[key] === true);
  const allocated: [number, bigint][] = [];
  const freed: [number, bigint][] = [];
  let mappedEnd = iova;
  let rc = 0;
  walk: for (const run of pgsizeRuns(iova, paddr, size, d.pgsizes)) {
    const level = ptLeafLevel(run.pgsize);
    const runEnd = run.iova + run.size;
    for (let cursor = run.iova; cursor < runEnd;) {
      for (let l = PT_TABLE_SPAN.length - 1; l >= level; l--) {
        const span = PT_TABLE_SPAN[l]!;
        const base = cursor - (cursor % span);
        if (hasTable(ioPageTableKey(l, base))) continue;
        // No table yet: the entry above is empty, or a leaf of a larger IO page that covers the span.
        // Above the call's IOVA: extents of this batch not yet reported may lie there.
        settleOver(sim, domain, base, base + span);
        if (presentIn(domainOf(sim.state, domain), base, base + span).length > 0) {
          rc = -EADDRINUSE;
          break walk;
        }
        if (sim.faultPoint('iommu_pages', 'pt_iommu_new_table')) {
          rc = -ENOMEM;
          break walk;
        }
        const key = ioPageTableKey(l, base);
        dropped?.delete(key);
        (added ??= new Set()).add(key);
        allocated.push([l, base]);
      }
      // The leaves up to the end of the run or of the table they go into.
      const tableSpan = PT_TABLE_SPAN[level];
      const next = tableSpan === undefined ? runEnd : cursor - (cursor % tableSpan) + tableSpan;
      const segEnd = next < runEnd ? next : runEnd;
      const present = presentIn(domainOf(sim.state, domain), cursor, segEnd)[0];
      const stop = present === undefined ? segEnd : cursor + ((present[0] - cursor) / run.pgsize) * run.pgsize;
      // Only a leaf above level 0 can cover whole tables (clear_contig).
      if (level > 0) {
        const tables: TableSet = {
          has: hasTable,
          keys: () => [...Object.keys(stored).filter((k) => dropped?.has(k) !== true), ...(added ?? [])],
        };
        for (const t of tablesWithin(tables, level, cursor, stop)) {
          const key = ioPageTableKey(t[0], t[1]);
          added?.delete(key);
          (dropped ??= new Set()).add(key);
          freed.push(t);
        }
      }
      mappedEnd = stop;
      if (present !== undefined) {
        rc = -EADDRINUSE;
        break walk;
      }
      cursor = segEnd;
    }
  }
  emitTables(sim, domain, allocated, freed, 'pt_iommu_amdv1_mock_map_pages');
  if (mappedEnd > iova) emitMapped(sim, domain, iova, paddr, mappedEnd - iova, prot, fn, list);
  // __iommu_map undoes a partial map itself.
  if (rc !== 0 && mappedEnd > iova) iommuUnmap(sim, domain, iova, mappedEnd - iova, '__iommu_map');
  return rc;
}

/** Report an unmap that begins or ends strictly inside one map call's extent. */
function checkPairing(sim: Sim, d: Domain, iova: bigint, end: bigint, fn: string): void {
  const sides: string[] = [];
  const objects: Record<string, bigint | number | string> = { domain: d.name, iova, size: end - iova };
  const head = pieceAt(d, iova);
  if (head !== undefined) {
    const [s, e] = extentSpan(d, head);
    if (s < iova) {
      sides.push(`begins inside extent ${head.extent} [${hex(s)}, ${hex(e)})`);
      objects['beginExtent'] = head.extent;
    }
  }
  const tail = pieceAt(d, end - 1n);
  if (tail !== undefined) {
    const [s, e] = extentSpan(d, tail);
    if (e > end) {
      sides.push(`ends inside extent ${tail.extent} [${hex(s)}, ${hex(e)})`);
      objects['endExtent'] = tail.extent;
    }
  }
  if (sides.length > 0) {
    sim.violation('domain_pairing', fn, `unmap [${hex(iova)}, ${hex(end)}) ${sides.join(' and ')}`, objects);
  }
}

/** Whether the mock page at `p` carries the shared START/LAST bit: the first or last page of its piece. */
function mockFlagged(d: Domain, p: bigint, page: bigint): boolean | null {
  const m = pieceAt(d, p);
  if (m === undefined) return null;
  return (p === m.iova && m.headFlag) || (p + page === m.iova + m.size && m.tailFlag);
}

/**
 * The mock driver's unmap checks, in the order it erases pages: each missing page WARNs ([v3 .. v6.6];
 * skipped with mock-unmap-skips-holes), and the first and the last page must carry the flag bit.
 */
/** Per-page WARNs of one mock unmap call reported one by one; the rest are counted in one more WARN. */
const MAX_PAGE_WARNS = 8;

function mockUnmapChecks(sim: Sim, d: Domain, iova: bigint, end: bigint): void {
  const page = domainPgsizeMin(sim.state, d.name);
  const skipHoles = sim.has('mock-unmap-skips-holes');
  const lastPage = end - page;
  const domain = d.name;
  const missing = (from: bigint, to: bigint): void => {
    if (skipHoles) return;
    let pos = from;
    const holes: [bigint, bigint][] = [];
    for (const [at, n] of presentIn(d, from, to)) {
      if (at > pos) holes.push([pos, at]);
      pos = at + n;
    }
    if (pos < to) holes.push([pos, to]);
    // The driver WARNs once per missing page; past a few, one WARN stands for the rest of this call, so
    // an unmap of a huge wrong range (a defect) does not flood the log with millions of identical events.
    let shown = 0;
    for (const [a, b] of holes) {
      for (let p = a; p < b; p += page) {
        if (shown === MAX_PAGE_WARNS) {
          let rest = 0n;
          for (const [x, y] of holes) if (y > p) rest += (y - (x > p ? x : p)) / page;
          sim.warn('mock_domain_unmap_pages', '!ent', { domain, iova: p, pages: rest });
          return;
        }
        sim.warn('mock_domain_unmap_pages', '!ent', { domain, iova: p });
        shown += 1;
      }
    }
  };
  const flag = (p: bigint, bit: 'START' | 'LAST'): void => {
    const flagged = mockFlagged(d, p, page);
    if (flagged === true || (flagged === null && skipHoles)) return;
    const cond = `!(xa_to_value(ent) & MOCK_PFN_${bit}_IOVA)`;
    sim.warn('mock_domain_unmap_pages', skipHoles ? `ent && ${cond}` : cond, { domain, iova: p });
  };
  missing(iova, iova + page);
  flag(iova, 'START');
  if (lastPage > iova) {
    missing(iova + page, end);
  }
  flag(lastPage, 'LAST');
}

/**
 * iommu_unmap: unmap [iova, iova + size) and return the bytes unmapped. Size 0, or an iova or size that is
 * not a multiple of the smallest page size, unmaps nothing and returns 0 (no event). generic: from iova,
 * remove whole IOPTEs until `size` bytes are counted, stopping at a hole: less when the range has a hole,
 * more when it starts or ends inside a large IOPTE. mock: erase every present mock page of the range, WARN
 * as the driver does, and return `size` whatever was there. iommupt mock ([up:mock-iommupt]): like generic,
 * but an unmap that starts inside a large IOPTE removes nothing; the tables whose whole span the call
 * emptied are freed (pt_iommu_amdv1_mock_unmap_pages).
 */
export function iommuUnmap(sim: Sim, domain: string, iova: bigint, size: bigint, fn: string): bigint {
  sim.flushPending();
  const d = domainOf(sim.state, domain);
  if (size === 0n) return 0n;
  const min = domainPgsizeMin(sim.state, domain);
  if ((iova | size) % min !== 0n) return 0n;
  const end = iova + size < U64_LIMIT ? iova + size : U64_LIMIT;
  checkPairing(sim, d, iova, end, fn);

  let removed: [bigint, bigint][];
  let unmapped: bigint;
  if (isIommuptMock(d)) {
    [removed, unmapped] = wholeIoptesFrom(d, iova, size, true);
    const done = iova + unmapped < end ? iova + unmapped : end;
    const freed = tablesWithin(storedTables(d), PT_TABLE_SPAN.length, iova, done);
    sim.emit({ type: 'IommuUnmapped', v: 1, domain, iova, size, unmapped, removed, fn });
    emitTables(sim, domain, [], freed, 'pt_iommu_amdv1_mock_unmap_pages');
    return unmapped;
  }
  if (d.kind === 'mock') {
    mockUnmapChecks(sim, d, iova, end);
    removed = presentIn(d, iova, end);
    unmapped = size;
  } else {
    [removed, unmapped] = wholeIoptesFrom(d, iova, size, false);
  }
  sim.emit({ type: 'IommuUnmapped', v: 1, domain, iova, size, unmapped, removed, fn });
  return unmapped;
}

/**
 * The whole IOPTEs an unmap of `size` bytes from `iova` removes: from iova until `size` bytes are counted,
 * stopping at a hole, so less when the range has one and more when it ends inside a large IOPTE. One that
 * starts inside a large IOPTE removes all of it, or, with `refuseInside` (iommupt's __unmap_range), nothing.
 */
function wholeIoptesFrom(d: Domain, iova: bigint, size: bigint, refuseInside: boolean): [[bigint, bigint][], bigint] {
  const removed: [bigint, bigint][] = [];
  let unmapped = 0n;
  let cursor = iova;
  while (unmapped < size) {
    const m = pieceAt(d, cursor);
    if (m === undefined) break;
    const pteStart = m.iova + ((cursor - m.iova) / m.pgsize) * m.pgsize;
    if (refuseInside && pteStart !== cursor) break;
    const want = ((size - unmapped + m.pgsize - 1n) / m.pgsize) * m.pgsize;
    const avail = m.iova + m.size - pteStart;
    const take = want < avail ? want : avail;
    const last = removed[removed.length - 1];
    if (last !== undefined && last[0] + last[1] === pteStart) last[1] += take;
    else removed.push([pteStart, take]);
    unmapped += take;
    cursor = pteStart + take;
  }
  return [removed, unmapped];
}

/**
 * iommu_iova_to_phys: the physical address behind `iova`, or 0 when nothing maps it. The mock WARNs on an
 * iova that is not a multiple of its page and when nothing is mapped, and answers the start of the mock
 * page (it stores page numbers, not bytes).
 */
export function iommuIovaToPhys(sim: Sim, domain: string, iova: bigint): bigint {
  const d = domainOf(sim.state, domain);
  // iommupt's iova_to_phys takes any alignment and answers 0 for a hole, without a WARN.
  if (!isXarrayMock(d)) {
    const m = pieceAt(d, iova);
    return m === undefined ? 0n : m.paddr + (iova - m.iova);
  }
  const page = domainPgsizeMin(sim.state, domain);
  if (iova % page !== 0n) sim.warn('mock_domain_iova_to_phys', 'iova % MOCK_IO_PAGE_SIZE', { domain, iova });
  const m = pieceAt(d, iova);
  if (m === undefined) {
    sim.warn('mock_domain_iova_to_phys', '!ent', { domain, iova });
    return 0n;
  }
  return m.paddr + (iova - (iova % page) - m.iova);
}
