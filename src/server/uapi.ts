// SPDX-License-Identifier: GPL-2.0-only
/**
 * The iommufd ioctl ABI as Linux v6.12 defines it (include/uapi/linux/iommufd.h and the selftest header
 * drivers/iommu/iommufd/iommufd_test.h), written out as request numbers, byte offsets and the minimum and
 * current sizes that the kernel's ioctl table (iommufd_ioctl_ops) gives each command.
 *
 * Every command is _IO(';', 0x80 + n): no size or direction bits; the struct's first u32 carries its size.
 */

export const IOMMUFD_TYPE = 0x3b;
export const IOMMUFD_CMD_BASE = 0x80;

/** The request number of command `nr` (0x80 + n). */
export const iommufdRequest = (nr: number): number => (IOMMUFD_TYPE << 8) | nr;

/** One command of the kernel's ioctl table: its name, minimum size (offsetofend of the last v1 field), size. */
export interface IoctlOp {
  nr: number;
  name: string;
  minSize: number;
  size: number;
}

/** The commands served, with the sizes of v6.12 (sizeof on x86-64: u64 fields are 8-aligned). */
export const SERVED_OPS: readonly IoctlOp[] = [
  { nr: 0x80, name: 'IOMMU_DESTROY', minSize: 8, size: 8 },
  { nr: 0x81, name: 'IOMMU_IOAS_ALLOC', minSize: 12, size: 12 },
  { nr: 0x82, name: 'IOMMU_IOAS_ALLOW_IOVAS', minSize: 24, size: 24 },
  { nr: 0x83, name: 'IOMMU_IOAS_COPY', minSize: 40, size: 40 },
  { nr: 0x84, name: 'IOMMU_IOAS_IOVA_RANGES', minSize: 32, size: 32 },
  { nr: 0x85, name: 'IOMMU_IOAS_MAP', minSize: 40, size: 40 },
  { nr: 0x86, name: 'IOMMU_IOAS_UNMAP', minSize: 24, size: 24 },
  { nr: 0x87, name: 'IOMMU_OPTION', minSize: 24, size: 24 },
  { nr: 0x88, name: 'IOMMU_VFIO_IOAS', minSize: 12, size: 12 },
  { nr: 0x89, name: 'IOMMU_HWPT_ALLOC', minSize: 24, size: 48 },
  { nr: 0x8a, name: 'IOMMU_GET_HW_INFO', minSize: 32, size: 40 },
  // The selftest's command (0x80 + 32); only a CONFIG_IOMMUFD_TEST kernel has it.
  { nr: 0xa0, name: 'IOMMU_TEST_CMD', minSize: 68, size: 72 },
];

/**
 * Commands of v6.12 this server does not serve: they are in the kernel's table, so the table's own size
 * checks apply (EINVAL below the minimum, E2BIG for a non-zero tail, EFAULT); past those they are answered
 * as a kernel without the command answers (ENOTTY) and counted by name in the run report.
 */
export const UNSERVED_OPS: Readonly<Record<number, IoctlOp>> = {
  0x8b: { nr: 0x8b, name: 'IOMMU_HWPT_SET_DIRTY_TRACKING', minSize: 16, size: 16 },
  0x8c: { nr: 0x8c, name: 'IOMMU_HWPT_GET_DIRTY_BITMAP', minSize: 48, size: 48 },
  0x8d: { nr: 0x8d, name: 'IOMMU_HWPT_INVALIDATE', minSize: 32, size: 32 },
  0x8e: { nr: 0x8e, name: 'IOMMU_FAULT_QUEUE_ALLOC', minSize: 16, size: 16 },
};

/**
 * Commands that came after v6.12, served when the run's variant has the flag that models them (a kernel of
 * that release has the command in its table); without the flag they are answered as v6.12 answers a number
 * that is not in its table: ENOTTY. Sizes from include/uapi/linux/iommufd.h of the release that added them.
 */
export interface LaterIoctlOp extends IoctlOp {
  flag: string;
}

export const LATER_OPS: readonly LaterIoctlOp[] = [
  // struct iommu_ioas_change_process { u32 size; u32 __reserved; } (829ed626499c, v6.13).
  { nr: 0x92, name: 'IOMMU_IOAS_CHANGE_PROCESS', minSize: 8, size: 8, flag: 'ioas-change-process' },
];

export const IOMMU_DESTROY = iommufdRequest(0x80);
export const IOMMU_IOAS_ALLOC = iommufdRequest(0x81);
export const IOMMU_IOAS_ALLOW_IOVAS = iommufdRequest(0x82);
export const IOMMU_IOAS_COPY = iommufdRequest(0x83);
export const IOMMU_IOAS_IOVA_RANGES = iommufdRequest(0x84);
export const IOMMU_IOAS_MAP = iommufdRequest(0x85);
export const IOMMU_IOAS_UNMAP = iommufdRequest(0x86);
export const IOMMU_VFIO_IOAS = iommufdRequest(0x88);
export const IOMMU_TEST_CMD = iommufdRequest(0xa0);
/** The last number of the v6.12 table (IOMMU_TEST_CMD); a number outside the table goes to the VFIO ioctls. */
export const IOMMUFD_CMD_LAST = 0xa0;

/** enum iommufd_ioas_map_flags */
export const MAP_FIXED_IOVA = 1 << 0;
export const MAP_WRITEABLE = 1 << 1;
export const MAP_READABLE = 1 << 2;
export const MAP_FLAGS = MAP_FIXED_IOVA | MAP_WRITEABLE | MAP_READABLE;

/** The selftest sub-ops of IOMMU_TEST_CMD (v6.12 numbering). */
export const TEST_OP_NAMES: Readonly<Record<number, string>> = {
  1: 'ADD_RESERVED',
  2: 'MOCK_DOMAIN',
  3: 'MD_CHECK_MAP',
  4: 'MD_CHECK_REFS',
  5: 'CREATE_ACCESS',
  6: 'DESTROY_ACCESS_PAGES',
  7: 'ACCESS_PAGES',
  8: 'ACCESS_RW',
  9: 'SET_TEMP_MEMORY_LIMIT',
  10: 'MOCK_DOMAIN_REPLACE',
  11: 'ACCESS_REPLACE_IOAS',
  12: 'MOCK_DOMAIN_FLAGS',
  13: 'DIRTY',
  14: 'MD_CHECK_IOTLB',
  15: 'TRIGGER_IOPF',
  16: 'DEV_CHECK_CACHE',
};
export const TEST_OP_ADD_RESERVED = 1;
export const TEST_OP_MOCK_DOMAIN = 2;
export const TEST_OP_MD_CHECK_MAP = 3;
export const TEST_OP_MD_CHECK_REFS = 4;
export const TEST_OP_CREATE_ACCESS = 5;
export const TEST_OP_DESTROY_ACCESS_PAGES = 6;
export const TEST_OP_ACCESS_PAGES = 7;
export const TEST_OP_ACCESS_RW = 8;
export const TEST_OP_SET_TEMP_MEMORY_LIMIT = 9;
export const TEST_OP_MOCK_DOMAIN_REPLACE = 10;
export const TEST_OP_ACCESS_REPLACE_IOAS = 11;
export const TEST_OP_MOCK_DOMAIN_FLAGS = 12;

/** The mock device flags a v6.12 mock accepts (MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_FLAGS_DEVICE_HUGE_IOVA). */
export const MOCK_DEVICE_FLAGS = (1 << 0) | (1 << 1);
export const MOCK_FLAGS_DEVICE_HUGE_IOVA = 1 << 1;
/** CREATE_ACCESS flags: MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES. */
export const ACCESS_CREATE_NEEDS_PIN_PAGES = 1 << 0;
/** ACCESS_PAGES flags: MOCK_FLAGS_ACCESS_WRITE, MOCK_FLAGS_ACCESS_SYZ. */
export const ACCESS_WRITE = 1 << 0;
export const ACCESS_SYZ = 1 << 16;
/** ACCESS_RW flags: MOCK_ACCESS_RW_WRITE, MOCK_ACCESS_RW_SLOW_PATH (and the SYZ bit). */
export const ACCESS_RW_WRITE = 1 << 0;
export const ACCESS_RW_SLOW_PATH = 1 << 2;
/** The selftest driver refuses page arrays and bounce buffers above 16 MiB (-ENOMEM). */
export const ACCESS_MAX_LENGTH = 16n * 1024n * 1024n;

/** enum iommufd_option and enum iommufd_option_ops. */
export const OPTION_RLIMIT_MODE = 0;
export const OPTION_HUGE_PAGES = 1;
export const OPTION_OP_SET = 0;
export const OPTION_OP_GET = 1;

/** Byte offsets of the fields the server reads and writes. */
export const OFF = {
  size: 0,
  destroy: { id: 4 },
  ioasAlloc: { flags: 4, outIoasId: 8 },
  iovaRanges: { ioasId: 4, numIovas: 8, reserved: 12, allowedIovas: 16, outIovaAlignment: 24 },
  allowIovas: { ioasId: 4, numIovas: 8, reserved: 12, allowedIovas: 16 },
  map: { flags: 4, ioasId: 8, reserved: 12, userVa: 16, length: 24, iova: 32 },
  copy: { flags: 4, dstIoasId: 8, srcIoasId: 12, length: 16, dstIova: 24, srcIova: 32 },
  unmap: { ioasId: 4, iova: 8, length: 16 },
  changeProcess: { reserved: 4 },
  option: { optionId: 4, op: 8, reserved: 10, objectId: 12, val64: 16 },
  test: {
    op: 4,
    id: 8,
    reserved: 12,
    // the union starts at 16
    addReserved: { start: 16, length: 24 },
    mockDomain: { outStdevId: 16, outHwptId: 20, outIdevId: 24, devFlags: 28 },
    createAccess: { outAccessFd: 16, flags: 20 },
    destroyAccessPages: { accessPagesId: 16 },
    accessPages: { flags: 16, outAccessPagesId: 20, iova: 24, length: 32, uptr: 40 },
    accessRw: { iova: 16, length: 24, uptr: 32, flags: 40 },
    memoryLimit: { limit: 16 },
    accessReplaceIoas: { ioasId: 16 },
    checkMap: { iova: 16, length: 24, uptr: 32 },
    checkRefs: { length: 16, uptr: 24, refs: 32 },
  },
} as const;

/** sizeof(struct iommu_iova_range) */
export const IOVA_RANGE_SIZE = 16;
