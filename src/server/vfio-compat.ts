// SPDX-License-Identifier: GPL-2.0-only
/**
 * The VFIO type1 container emulation of iommufd (drivers/iommu/iommufd/vfio_compat.c, v6.12) under
 * `ioptrace run`: IOMMU_VFIO_IOAS, which names the context's compat IOAS, and the VFIO container ioctls
 * that act on that IOAS (VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_IOMMU_GET_INFO
 * with its capability chain, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA). The kernel serves them on any
 * iommufd file, /dev/iommu as well as /dev/vfio/vfio; the only difference of the latter is that its
 * context starts in MM accounting (iommufd_fops_open), which the session chooses at open.
 *
 * Each call becomes the trace ops that run the same kernel functions: MAP_DMA is `ioas_map` at a fixed
 * IOVA (iopt_map_user_pages), UNMAP_DMA is `vfio_unmap` (the cuts of type1 mode, then iopt_unmap_iova)
 * or `ioas_unmap` with `all` (iopt_unmap_all), SET_IOMMU(TYPE1) is `ioas_huge_pages` off
 * (iopt_disable_large_pages). The rest reads the model's state and writes no op.
 *
 * Handlers return the ioctl's value (>= 0) or a negative errno, as the kernel's functions do.
 */
import type { TraceOp } from '../events/trace.js';
import { U64_MAX } from '../events/trace.js';
import type { OpRecord } from '../replay/replayer.js';
import type { Ioas, State } from '../state/state.js';
import { itreeEntries } from '../structures/interval-tree.js';
import { EFAULT, EINVAL, ENODEV, ENOENT, EOPNOTSUPP, errnoFromName } from '../machine/errno.js';
import { IOMMUFD_TYPE } from './uapi.js';

const ENOTTY = 25;
const PAGE_SIZE = 4096n;
const U32_MAX = 0xffffffff;

/** The VFIO ioctls (_IO(VFIO_TYPE, VFIO_BASE + n); VFIO_TYPE is ';', the iommufd type). */
const VFIO_BASE = 100;
const vfioRequest = (n: number): number => (IOMMUFD_TYPE << 8) | (VFIO_BASE + n);
export const VFIO_GET_API_VERSION = vfioRequest(0);
export const VFIO_CHECK_EXTENSION = vfioRequest(1);
export const VFIO_SET_IOMMU = vfioRequest(2);
export const VFIO_IOMMU_GET_INFO = vfioRequest(12);
export const VFIO_IOMMU_MAP_DMA = vfioRequest(13);
export const VFIO_IOMMU_UNMAP_DMA = vfioRequest(14);
export const VFIO_IOMMU_DIRTY_PAGES = vfioRequest(17);

const VFIO_NAMES: Readonly<Record<number, string>> = {
  [VFIO_GET_API_VERSION]: 'VFIO_GET_API_VERSION',
  [VFIO_CHECK_EXTENSION]: 'VFIO_CHECK_EXTENSION',
  [VFIO_SET_IOMMU]: 'VFIO_SET_IOMMU',
  [VFIO_IOMMU_GET_INFO]: 'VFIO_IOMMU_GET_INFO',
  [VFIO_IOMMU_MAP_DMA]: 'VFIO_IOMMU_MAP_DMA',
  [VFIO_IOMMU_UNMAP_DMA]: 'VFIO_IOMMU_UNMAP_DMA',
};

/** The name of a VFIO container ioctl this module serves, or null. */
export const vfioIoctlName = (cmd: number): string | null => VFIO_NAMES[cmd] ?? null;

export const VFIO_API_VERSION = 0;

/** Extensions (VFIO_CHECK_EXTENSION's argument) and IOMMU types (VFIO_SET_IOMMU's). */
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_TYPE1v2_IOMMU = 3;
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_TYPE1_NESTING_IOMMU = 6;
export const VFIO_NOIOMMU_IOMMU = 8;
export const VFIO_UNMAP_ALL = 9;

export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;

export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

/** enum iommufd_vfio_ioas_op */
export const IOMMU_VFIO_IOAS_GET = 0;
export const IOMMU_VFIO_IOAS_SET = 1;
export const IOMMU_VFIO_IOAS_CLEAR = 2;

/** Layouts (x86-64): struct iommu_vfio_ioas and the VFIO type1 structs. */
export const VFIO_IOAS_OFF = { ioasId: 4, op: 8, reserved: 10 } as const;
/** struct vfio_iommu_type1_info: the minimum is offsetofend(iova_pgsizes); cap_offset and pad follow. */
const INFO = { minSize: 16, size: 24, flags: 4, iovaPgsizes: 8, capOffset: 16 } as const;
/** struct vfio_iommu_type1_dma_map: argsz, flags, vaddr, iova, size. */
const DMA_MAP = { minSize: 32, flags: 4, vaddr: 8, iova: 16, size: 24 } as const;
/** struct vfio_iommu_type1_dma_unmap: argsz, flags, iova, size (then the dirty bitmap data, unused). */
const DMA_UNMAP = { minSize: 24, flags: 4, iova: 8, size: 16 } as const;
/** struct vfio_iommu_type1_info_dma_avail: header (id u16, version u16, next u32), avail u32. */
const CAP_DMA_AVAIL_SIZE = 12;
/** struct vfio_iommu_type1_info_cap_iova_range: header, nr_iovas, reserved, then 16-byte ranges. */
const CAP_IOVA_HEAD_SIZE = 16;
const IOVA_RANGE_SIZE = 16;

/** What the module needs of the context: its objects by id and its compat IOAS (the model's name). */
export interface CompatContext {
  objects: ReadonlyMap<number, { kind: string; name?: string }>;
  /** ictx->vfio_ioas: the model name of the compat IOAS, or null. */
  vfioIoas: string | null;
}

/** What the module needs of the session. */
export interface CompatHost {
  readonly state: State;
  /** copy_from_user of the caller: null where it faults. */
  read(addr: bigint, length: number): Buffer | null;
  /** copy_to_user of the caller: false where it faults. */
  write(addr: bigint, data: Uint8Array): boolean;
  /** Declare the caller's user range to the model (its `mmap` ops) before an op pins it. */
  declare(uptr: bigint, length: bigint): void;
  /** Run one op on the model and write it to the trace. */
  step(op: TraceOp): OpRecord;
  /** A call answered as a kernel without the feature answers, counted by name. */
  unserved(name: string): void;
  readonly pid: number;
}

/** The op's result as the kernel function's: 0 or a negative errno. */
const rcOf = (rec: OpRecord): number => (rec.errno === null ? 0 : errnoFromName(rec.errno));

/**
 * get_compat_ioas: the compat IOAS as the id the context knows it by, with its model name; -ENODEV when
 * there is none. Object ids are reused, names are not: the IOAS must still be the one that was set.
 */
function compatIoas(ctx: CompatContext): { id: number; name: string } | number {
  if (ctx.vfioIoas === null) return -ENODEV;
  for (const [id, obj] of ctx.objects)
    if (obj.kind === 'ioas' && obj.name === ctx.vfioIoas) return { id, name: obj.name };
  return -ENODEV;
}

/**
 * The holes between the reserved ranges of an IOAS over the whole 64-bit space, in order: what
 * IOAS_IOVA_RANGES reports and the IOVA-range capability lists (interval_tree_for_each_span).
 */
export function reservedHoles(ioas: Ioas): [bigint, bigint][] {
  const holes: [bigint, bigint][] = [];
  let next = 0n;
  for (const r of itreeEntries(ioas.reserved)) {
    if (r.start > next) holes.push([next, r.start - 1n]);
    if (r.last + 1n > next) next = r.last + 1n;
    if (r.last === U64_MAX) next = U64_MAX + 1n;
  }
  if (next <= U64_MAX) holes.push([next, U64_MAX]);
  return holes;
}

/** IOMMU_VFIO_IOAS on a command the table already copied in (`buf`, the user's size in `userSize`). */
export function vfioIoas(host: CompatHost, ctx: CompatContext, arg: bigint, buf: Buffer, userSize: number): number {
  if (buf.readUInt16LE(VFIO_IOAS_OFF.reserved) !== 0) return -EOPNOTSUPP;
  switch (buf.readUInt16LE(VFIO_IOAS_OFF.op)) {
    case IOMMU_VFIO_IOAS_GET: {
      const ioas = compatIoas(ctx);
      if (typeof ioas === 'number') return ioas;
      buf.writeUInt32LE(ioas.id, VFIO_IOAS_OFF.ioasId);
      // iommufd_ucmd_respond: as much of the struct as the user's size holds.
      return host.write(arg, buf.subarray(0, Math.min(userSize, buf.length))) ? 0 : -EFAULT;
    }
    case IOMMU_VFIO_IOAS_SET: {
      const obj = ctx.objects.get(buf.readUInt32LE(VFIO_IOAS_OFF.ioasId));
      if (obj?.kind !== 'ioas' || obj.name === undefined) return -ENOENT;
      ctx.vfioIoas = obj.name;
      return 0;
    }
    case IOMMU_VFIO_IOAS_CLEAR:
      ctx.vfioIoas = null;
      return 0;
    default:
      return -EOPNOTSUPP;
  }
}

/**
 * iommufd_vfio_ioctl: a request outside the iommufd table. The container ioctls are served; every other
 * one (VFIO_IOMMU_DIRTY_PAGES included) is -ENOIOCTLCMD, which user space sees as ENOTTY. `arg` is the raw
 * argument: a value for CHECK_EXTENSION and SET_IOMMU, a user pointer for the others.
 */
export function vfioIoctl(host: CompatHost, ctx: CompatContext, cmd: number, arg: bigint): number {
  switch (cmd) {
    case VFIO_GET_API_VERSION:
      return VFIO_API_VERSION;
    case VFIO_SET_IOMMU:
      return setIommu(host, ctx, arg);
    case VFIO_CHECK_EXTENSION:
      return checkExtension(host, ctx, arg);
    case VFIO_IOMMU_GET_INFO:
      return getInfo(host, ctx, arg);
    case VFIO_IOMMU_MAP_DMA:
      return mapDma(host, ctx, arg);
    case VFIO_IOMMU_UNMAP_DMA:
      return unmapDma(host, ctx, arg);
    default:
      return -ENOTTY;
  }
}

/**
 * VFIO_CHECK_EXTENSION: type1 and type1v2 and UNMAP_ALL are there (no no-IOMMU mode exists without a
 * no-IOMMU group, which the model has not); DMA_CC_IOMMU asks the compat IOAS whether every paging hwpt
 * enforces cache coherency, and a mock device's never does (the mock has no ENFORCE_CACHE_COHERENCY
 * capability); NOIOMMU needs CONFIG_VFIO_NOIOMMU, which the ground-truth kernel does not set.
 */
function checkExtension(host: CompatHost, ctx: CompatContext, type: bigint): number {
  switch (type) {
    case BigInt(VFIO_TYPE1_IOMMU):
    case BigInt(VFIO_TYPE1v2_IOMMU):
    case BigInt(VFIO_UNMAP_ALL):
      return 1;
    case BigInt(VFIO_DMA_CC_IOMMU): {
      const ioas = compatIoas(ctx);
      if (typeof ioas === 'number') return ioas;
      return (host.state.ioases[ioas.name]?.domains.length ?? 0) > 0 ? 0 : 1;
    }
    default:
      return 0;
  }
}

/** VFIO_SET_IOMMU: TYPE1 or TYPE1v2 on the compat IOAS; TYPE1 turns large pages off so any range can be cut. */
function setIommu(host: CompatHost, ctx: CompatContext, type: bigint): number {
  if (type !== BigInt(VFIO_TYPE1_IOMMU) && type !== BigInt(VFIO_TYPE1v2_IOMMU)) return -EINVAL;
  const ioas = compatIoas(ctx);
  if (typeof ioas === 'number') return ioas;
  if (type !== BigInt(VFIO_TYPE1_IOMMU)) return 0;
  return rcOf(host.step({ op: 'ioas_huge_pages', ioas: ioas.name, enable: false }));
}

/**
 * iommufd_get_pagesizes: the page sizes every domain of the IOAS supports; sub-page sizes count as the
 * CPU page (vfio_update_pgsize_bitmap), and never below the IOAS's IOVA alignment.
 */
function pageSizes(ioas: Ioas, state: State): bigint {
  let bitmap = U64_MAX;
  for (const name of ioas.domains) {
    const domain = state.domains[name];
    if (domain !== undefined) bitmap &= domain.pgsizes.reduce((a, s) => a | s, 0n);
  }
  if (bitmap & (PAGE_SIZE - 1n)) bitmap = (bitmap & ~(PAGE_SIZE - 1n) & U64_MAX) | PAGE_SIZE;
  return bitmap > ioas.iovaAlignment ? bitmap : ioas.iovaAlignment;
}

/**
 * VFIO_IOMMU_GET_INFO: the fixed part, then the capability chain (DMA_AVAIL, then IOVA_RANGE) written
 * only where the user's argsz holds each piece; argsz comes back as the size the whole chain needs, and
 * cap_offset is set only when all of it fitted.
 */
function getInfo(host: CompatHost, ctx: CompatContext, arg: bigint): number {
  const head = host.read(arg, INFO.minSize);
  if (head === null) return -EFAULT;
  const argsz = head.readUInt32LE(0);
  if (argsz < INFO.minSize) return -EINVAL;
  const copyBack = Math.min(argsz, INFO.size);
  const found = compatIoas(ctx);
  if (typeof found === 'number') return found;
  const ioas = host.state.ioases[found.name];
  if (ioas === undefined) return -ENODEV;

  const holes = reservedHoles(ioas);
  const fills: ((at: bigint, avail: number) => number)[] = [
    (at, avail) => {
      if (avail < CAP_DMA_AVAIL_SIZE) return CAP_DMA_AVAIL_SIZE;
      const cap = Buffer.alloc(CAP_DMA_AVAIL_SIZE);
      cap.writeUInt16LE(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 0);
      cap.writeUInt16LE(1, 2);
      // iommufd's limit is the memory cgroup's, so it reports the largest value.
      cap.writeUInt32LE(U32_MAX, 8);
      return host.write(at, cap) ? CAP_DMA_AVAIL_SIZE : -EFAULT;
    },
    (at, avail) => {
      const sizeFor = (n: number): number => CAP_IOVA_HEAD_SIZE + n * IOVA_RANGE_SIZE;
      for (const [i, [start, last]] of holes.entries()) {
        if (avail < sizeFor(i + 1)) continue;
        const range = Buffer.alloc(IOVA_RANGE_SIZE);
        range.writeBigUInt64LE(start, 0);
        range.writeBigUInt64LE(last, 8);
        if (!host.write(at + BigInt(sizeFor(i)), range)) return -EFAULT;
      }
      if (avail >= sizeFor(holes.length)) {
        const cap = Buffer.alloc(CAP_IOVA_HEAD_SIZE);
        cap.writeUInt16LE(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 0);
        cap.writeUInt16LE(1, 2);
        cap.writeUInt32LE(holes.length, 8);
        if (!host.write(at, cap)) return -EFAULT;
      }
      return sizeFor(holes.length);
    },
  ];
  let total = INFO.size;
  let lastCap: bigint | null = null;
  for (const fill of fills) {
    const size = argsz > total ? fill(arg + BigInt(total), argsz - total) : fill(0n, 0);
    if (size < 0) return size;
    // put_user of the previous capability's `next`, once the user's buffer reaches this one.
    if (lastCap !== null && argsz >= total) {
      const next = Buffer.alloc(4);
      next.writeUInt32LE(total);
      if (!host.write(lastCap + 4n, next)) return -EFAULT;
    }
    lastCap = arg + BigInt(total);
    total += Math.ceil(size / 8) * 8;
  }
  const info = Buffer.alloc(INFO.size);
  info.writeUInt32LE(total, 0);
  info.writeUInt32LE(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS, INFO.flags);
  info.writeBigUInt64LE(pageSizes(ioas, host.state), INFO.iovaPgsizes);
  info.writeUInt32LE(argsz >= total ? INFO.size : 0, INFO.capOffset);
  return host.write(arg, info.subarray(0, copyBack)) ? 0 : -EFAULT;
}

/**
 * VFIO_IOMMU_MAP_DMA: only READ and WRITE flags, then iopt_map_user_pages at the fixed IOVA in the
 * context's accounting mode. Nothing is copied back.
 */
function mapDma(host: CompatHost, ctx: CompatContext, arg: bigint): number {
  const map = host.read(arg, DMA_MAP.minSize);
  if (map === null) return -EFAULT;
  const flags = map.readUInt32LE(DMA_MAP.flags);
  if (map.readUInt32LE(0) < DMA_MAP.minSize || flags & ~(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE))
    return -EINVAL;
  const ioas = compatIoas(ctx);
  if (typeof ioas === 'number') return ioas;
  const uptr = map.readBigUInt64LE(DMA_MAP.vaddr);
  const iova = map.readBigUInt64LE(DMA_MAP.iova);
  const length = map.readBigUInt64LE(DMA_MAP.size);
  // The `ioas_map` op adds IOMMU_IOAS_MAP's own checks (2^64 - 1 values, [map-requires-prot] no
  // protection), which this path does not make: such calls are outside what the op can stand for.
  const noProt = !(flags & (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE));
  if (iova === U64_MAX || length === U64_MAX || (noProt && host.state.run.fixes.includes('map-requires-prot'))) {
    host.unserved('VFIO_IOMMU_MAP_DMA (2^64 - 1 values, or neither READ nor WRITE)');
    return -ENOTTY;
  }
  host.declare(uptr, length);
  const rec = host.step({
    op: 'ioas_map',
    ioas: ioas.name,
    pid: String(host.pid),
    uptr,
    length,
    iova,
    read: (flags & VFIO_DMA_MAP_FLAG_READ) !== 0,
    write: (flags & VFIO_DMA_MAP_FLAG_WRITE) !== 0,
  });
  return rcOf(rec);
}

/**
 * VFIO_IOMMU_UNMAP_DMA: UNMAP_ALL needs iova and size 0 (-EINVAL, nothing copied back); otherwise the
 * type1 unmap. The bytes unmapped go back in `size`, on failure too, except when the type1 cut failed.
 */
function unmapDma(host: CompatHost, ctx: CompatContext, arg: bigint): number {
  const unmap = host.read(arg, DMA_UNMAP.minSize);
  if (unmap === null) return -EFAULT;
  const flags = unmap.readUInt32LE(DMA_UNMAP.flags);
  if (unmap.readUInt32LE(0) < DMA_UNMAP.minSize || flags & ~VFIO_DMA_UNMAP_FLAG_ALL) return -EINVAL;
  const ioas = compatIoas(ctx);
  if (typeof ioas === 'number') return ioas;
  const iova = unmap.readBigUInt64LE(DMA_UNMAP.iova);
  const length = unmap.readBigUInt64LE(DMA_UNMAP.size);
  let rec: OpRecord;
  if (flags & VFIO_DMA_UNMAP_FLAG_ALL) {
    if (iova !== 0n || length !== 0n) return -EINVAL;
    rec = host.step({ op: 'ioas_unmap', ioas: ioas.name, iova: 0n, length: U64_MAX, all: true });
  } else {
    rec = host.step({ op: 'vfio_unmap', ioas: ioas.name, iova, length });
  }
  const rc = rcOf(rec);
  const unmapped = typeof rec.outputs['unmapped'] === 'bigint' ? rec.outputs['unmapped'] : 0n;
  // The model reports a failed cut as `size` left as it was: there is nothing to copy back then.
  if (rc !== 0 && unmapped === length) return rc;
  unmap.writeBigUInt64LE(unmapped, DMA_UNMAP.size);
  return host.write(arg, unmap) ? rc : -EFAULT;
}
