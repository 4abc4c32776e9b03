// SPDX-License-Identifier: GPL-2.0-only
/**
 * The ioctl layer above io_pagetable (drivers/iommu/iommufd/ioas.c, vfio_compat.c, and the mock device
 * attach of selftest.c / device.c; spec section 14 step 1, "Attach", "Detach", "Split"): argument checks
 * and errnos, then the io_pagetable call, then what the kernel copies back to user space.
 *
 * These are the entry points of the replay dispatcher, one per trace op. Every function returns 0 or a
 * negative errno (results that user space reads back ride along); none throws for a kernel rejection.
 *
 * Copy-back rules modelled: IOMMU_IOAS_UNMAP writes the unmapped length only on success; VFIO's
 * UNMAP_DMA writes it on every exit after the cut (what iopt_unmap_iova left in its zeroed local), and
 * not at all when the cut fails (user space then reads back its own size).
 *
 * Variants: [up:map-requires-prot] MAP and COPY refuse a mapping with neither READ nor WRITE. Everything
 * else is in io-pagetable.ts, iova-alloc.ts and area-split.ts.
 */
import { EEXIST, EINVAL, ENOENT, ENOMEM, ENOTTY, EOVERFLOW } from '../machine/errno.js';
import { domainAlloc, domainFree } from '../machine/iommu-domain.js';
import type { Sim } from '../machine/sim.js';
import { ioptCutIova } from './area-split.js';
import {
  type PagesListElm,
  ioasOf,
  ioasOfDomain,
  ioptDisableLargePages,
  ioptEnableLargePages,
  ioptFreePagesList,
  ioptGetPages,
  ioptMapFilePages,
  ioptMapPages,
  ioptMapUserPages,
  ioptReserveIova,
  ioptSetAllowIova,
  ioptTableAddDomain,
  ioptTableRemoveDomain,
  ioptUnmapAll,
  ioptUnmapIova,
} from './io-pagetable.js';
import { U64_MAX } from './iova-alloc.js';

export interface MapArgs {
  uptr: bigint;
  length: bigint;
  /** null = let the kernel allocate the IOVA (no IOMMU_IOAS_MAP_FIXED_IOVA). */
  iova: bigint | null;
  read: boolean;
  write: boolean;
}

export interface CopyArgs {
  src: string;
  dst: string;
  srcIova: bigint;
  length: bigint;
  dstIova: bigint | null;
  read: boolean;
  write: boolean;
}

/** IOMMU_IOAS_ALLOC: a new, empty IOAS in context `ctx` (-ENOMEM when the object allocation fails). */
export function ioasAlloc(sim: Sim, ioas: string, ctx: string): number {
  if (sim.state.ioases[ioas] !== undefined) return -EEXIST;
  if (sim.faultPoint('kmalloc', 'iommufd_object_alloc')) return -ENOMEM;
  sim.emit({ type: 'IoasAllocated', v: 1, ioas, ctx });
  return 0;
}

/**
 * IOMMU_IOAS_MAP: -EOVERFLOW if iova or length is 2^64 - 1, [up:map-requires-prot] -EINVAL without READ
 * and WRITE, then iopt_map_user_pages. Returns the IOVA used (allocated or fixed) on success.
 */
export function ioasMap(sim: Sim, ioas: string, args: MapArgs): { rc: number; iova: bigint | null } {
  if ((args.iova ?? 0n) >= U64_MAX || args.length >= U64_MAX) return { rc: -EOVERFLOW, iova: null };
  if (sim.has('map-requires-prot') && !args.read && !args.write) return { rc: -EINVAL, iova: null };
  ioasOf(sim, ioas);
  return ioptMapUserPages(sim, ioas, args.iova, args.uptr, args.length, { read: args.read, write: args.write });
}

export interface MapFileArgs {
  file: string;
  start: bigint;
  length: bigint;
  iova: bigint | null;
  read: boolean;
  write: boolean;
}

/**
 * IOMMU_IOAS_MAP_FILE ([up:ioas-map-file], v6.13; -ENOTTY before: the ioctl does not exist): the checks
 * of IOMMU_IOAS_MAP (-EOVERFLOW for 2^64 - 1 values, -EINVAL without READ and WRITE), then
 * iopt_map_file_pages. Returns the IOVA used on success.
 */
export function ioasMapFile(sim: Sim, ioas: string, args: MapFileArgs): { rc: number; iova: bigint | null } {
  if (!sim.has('ioas-map-file')) return { rc: -ENOTTY, iova: null };
  if ((args.iova ?? 0n) >= U64_MAX || args.length >= U64_MAX) return { rc: -EOVERFLOW, iova: null };
  if (!args.read && !args.write) return { rc: -EINVAL, iova: null };
  ioasOf(sim, ioas);
  return ioptMapFilePages(sim, ioas, args.iova, args.file, args.start, args.length, {
    read: args.read,
    write: args.write,
  });
}

/**
 * IOMMU_IOAS_UNMAP: iova 0 with length 2^64 - 1 unmaps everything ([merged] success on an empty IOAS);
 * otherwise -EOVERFLOW for 2^64 - 1 values, then iopt_unmap_iova. `unmapped` is what user space reads
 * back: the length on success, null (not written) on failure.
 */
export function ioasUnmap(
  sim: Sim,
  ioas: string,
  args: { iova: bigint; length: bigint } | { all: true },
): { rc: number; unmapped: bigint | null } {
  ioasOf(sim, ioas);
  let r;
  if ('all' in args || (args.iova === 0n && args.length === U64_MAX)) {
    r = ioptUnmapAll(sim, ioas);
  } else {
    if (args.iova >= U64_MAX || args.length >= U64_MAX) return { rc: -EOVERFLOW, unmapped: null };
    r = ioptUnmapIova(sim, ioas, args.iova, args.length);
    // [up:vfio-unmap-empty-success] the range walk no longer fails on an empty range; IOAS_UNMAP still does.
    if (!r.rc && r.unmapped === 0n && sim.has('vfio-unmap-empty-success')) return { rc: -ENOENT, unmapped: null };
  }
  return r.rc ? { rc: r.rc, unmapped: null } : { rc: 0, unmapped: r.unmapped };
}

/**
 * IOMMU_IOAS_COPY: map the pages behind [srcIova, srcIova + length) of `src` into `dst` at dstIova (null =
 * allocate), sharing the same iopt_pages (no new pins when they are already pinned). -EOVERFLOW,
 * [up:map-requires-prot] -EINVAL, then iopt_get_pages (-ENOENT if not fully mapped) and iopt_map_pages.
 */
export function ioasCopy(sim: Sim, args: CopyArgs): { rc: number; iova: bigint | null } {
  if (args.length >= U64_MAX || args.srcIova >= U64_MAX || (args.dstIova ?? 0n) >= U64_MAX)
    return { rc: -EOVERFLOW, iova: null };
  if (sim.has('map-requires-prot') && !args.read && !args.write) return { rc: -EINVAL, iova: null };
  ioasOf(sim, args.src);
  const list: PagesListElm[] = [];
  const rc = ioptGetPages(sim, args.src, args.srcIova, args.length, list);
  if (rc) return { rc, iova: null };
  ioasOf(sim, args.dst);
  const r = ioptMapPages(
    sim,
    args.dst,
    list,
    args.length,
    args.dstIova ?? 0n,
    { read: args.read, write: args.write },
    args.dstIova === null,
  );
  ioptFreePagesList(sim, list);
  return r.rc ? { rc: r.rc, iova: null } : { rc: 0, iova: r.iova };
}

/** IOMMU_IOAS_ALLOW_IOVAS: replace the allowed ranges ([start, last] each). */
export function ioasAllowIovas(sim: Sim, ioas: string, ranges: [bigint, bigint][]): number {
  ioasOf(sim, ioas);
  return ioptSetAllowIova(sim, ioas, ranges);
}

/** IOMMU_OPTION_HUGE_PAGES set: enable always succeeds; disable is refused once domains and areas exist. */
export function ioasHugePages(sim: Sim, ioas: string, enable: boolean): number {
  ioasOf(sim, ioas);
  if (!enable) return ioptDisableLargePages(sim, ioas);
  ioptEnableLargePages(sim, ioas);
  return 0;
}

/**
 * The selftest's ADD_RESERVED: reserve [start, last] with no owner (iopt_reserve_iova under the IOVA
 * lock): -EADDRINUSE over an area or an allowed range. It stays until the table is destroyed.
 */
export function ioasAddReserved(sim: Sim, ioas: string, start: bigint, last: bigint): number {
  ioasOf(sim, ioas);
  return ioptReserveIova(sim, ioas, start, last, null);
}

/**
 * Attach a new domain (a mock device's hwpt, or a generic one) to `ioas`: allocate the hw_pagetable
 * (-ENOMEM) and its domain, then iopt_table_add_domain; if that fails the domain is freed again.
 */
export function domainAttach(
  sim: Sim,
  ioas: string,
  domain: string,
  opts: { kind: 'mock' | 'generic'; pgsizes?: bigint[]; aperture?: [bigint, bigint] },
): number {
  ioasOf(sim, ioas);
  if (sim.state.domains[domain] !== undefined) return -EEXIST;
  // The hw_pagetable object holding the domain (iommufd_object_alloc): a failslab site.
  if (sim.faultPoint('kmalloc', 'iommufd_hw_pagetable_alloc')) return -ENOMEM;
  // The iommupt mock allocates its top table level with the domain (table_alloc_top): a page allocation.
  if (opts.kind === 'mock' && sim.has('mock-iommupt') && sim.faultPoint('iommu_pages', 'pt_iommu_amdv1_mock_init')) {
    return -ENOMEM;
  }
  domainAlloc(sim, domain, opts.kind, {
    ...(opts.pgsizes !== undefined ? { pgsizes: opts.pgsizes } : {}),
    ...(opts.aperture !== undefined ? { aperture: opts.aperture } : {}),
  });
  const added = ioptTableAddDomain(sim, ioas, domain);
  if (added) domainFree(sim, domain);
  return added;
}

/** Destroy the device / hwpt: iopt_table_remove_domain, then free the domain. */
export function domainDetach(sim: Sim, domain: string): number {
  if (sim.state.domains[domain] === undefined) return -ENOENT;
  const ioas = ioasOfDomain(sim.state, domain);
  if (ioas !== null) ioptTableRemoveDomain(sim, ioas, domain);
  domainFree(sim, domain);
  return 0;
}

/** VFIO_SET_IOMMU with VFIO_TYPE1_IOMMU: disable large pages so that any range can be unmapped later. */
export function vfioSetType1(sim: Sim, ioas: string): number {
  ioasOf(sim, ioas);
  return ioptDisableLargePages(sim, ioas);
}

/**
 * VFIO_IOMMU_UNMAP_DMA (iommufd_vfio_unmap_dma) on the compat IOAS: with large pages disabled (TYPE1) the
 * areas are first cut at iova - 1 (unless iova is 0) and iova + length - 1, so a slice can be unmapped.
 * `unmapped` is what user space reads back in the size field.
 */
export function vfioUnmap(sim: Sim, ioas: string, iova: bigint, length: bigint): { rc: number; unmapped: bigint } {
  const io = ioasOf(sim, ioas);
  if (io.disableLargePages) {
    const cuts = [(iova + length - 1n) & U64_MAX, (iova - 1n) & U64_MAX];
    const rc = ioptCutIova(sim, ioas, iova !== 0n ? cuts : cuts.slice(0, 1));
    if (rc) return { rc, unmapped: length };
  }
  const r = ioptUnmapIova(sim, ioas, iova, length);
  return { rc: r.rc, unmapped: r.written ? r.unmapped : 0n };
}
