// SPDX-License-Identifier: GPL-2.0-only
/**
 * Hardware page tables and the selftest's mock devices, as iommufd of v6.12 keeps them
 * (drivers/iommu/iommufd/hw_pagetable.c, device.c and the mock driver of selftest.c): IOMMU_HWPT_ALLOC,
 * IOMMU_GET_HW_INFO, and the selftest sub-ops MOCK_DOMAIN (on an IOAS or on a hwpt) and
 * MOCK_DOMAIN_REPLACE.
 *
 * What the model holds of a hwpt is its paging domain in the IOAS's page table: `domain_attach` is
 * iommufd_hwpt_paging_alloc's iopt_table_add_domain, `domain_detach` the hwpt's destruction
 * (iopt_table_remove_domain). Which device is attached to which hwpt changes nothing the model stores (the
 * mock has no reserved regions and no MSI window), so the bookkeeping of attachments lives here, and a
 * replace is `domain_attach` of a new automatic domain and/or `domain_detach` of an automatic one its last
 * device left: no new trace op is needed.
 *
 * Automatic domains (iommufd_device_auto_get_domain): a device attached to an IOAS first tries every
 * automatic hwpt of that IOAS in the order they were created (the IOAS's hwpt_list) and takes the first
 * that accepts it; only when none does is a new one allocated. An automatic hwpt goes when its last device
 * leaves; one that user space allocated stays until IOMMU_DESTROY.
 *
 * Deviation (fault-point order): the kernel allocates the attach handle between the domain's allocation and
 * iopt_table_add_domain; here its fault point comes before the `domain_attach` op that does both.
 */
import type { TraceOp } from '../events/trace.js';
import type { OpRecord } from '../replay/replayer.js';
import { MOCK_DEVICE_FLAGS } from './uapi.js';
import { E2BIG, EBUSY, EFAULT, EINVAL, ENOENT, ENOMEM, EOPNOTSUPP } from '../machine/errno.js';

/** A hw_pagetable of kind paging. `seq` orders the IOAS's hwpt_list; `devices` counts its attachments. */
export interface HwptObject {
  kind: 'hwpt';
  domain: string;
  ioas: string;
  auto: boolean;
  nestParent: boolean;
  dirty: boolean;
  devices: number;
  seq: number;
}

/** The selftest object of a mock device: its bound device object and the hwpt it is attached to. */
export interface SelftestObject {
  kind: 'selftest';
  idev: number;
  hwpt: number;
  devFlags: number;
}

export interface DeviceObject {
  kind: 'device';
  selftest: number;
}

/** The other objects of a context, as far as this module needs to tell them apart. */
export type OtherObject = { kind: 'ioas'; name: string } | { kind: 'access'; name: string; file: bigint };

export type IdObject = OtherObject | HwptObject | SelftestObject | DeviceObject;

export interface HwptCall {
  pid: number;
  arg: bigint;
}

/** What the session lends this module: its object table, the model, user memory and its counters. */
export interface HwptHost {
  allocId(objects: Map<number, IdObject>, obj: IdObject): number;
  /** Run an op on the model; its errno is thrown as the ioctl's. */
  run(op: TraceOp): OpRecord;
  /** iommufd_ucmd_respond: copy the command back (EFAULT). */
  respond(call: HwptCall, buf: Buffer): void;
  writeUser(pid: number, addr: bigint, bytes: Buffer): boolean;
  readUser(pid: number, addr: bigint, length: number): Buffer | null;
  countUnserved(name: string): void;
  newDomainName(): string;
  /** A kernel fault point the session stands for (a failslab site): true when fail-nth makes it fail. */
  faultPoint(fn: string): boolean;
  fail(errno: number): never;
}

/** enum iommufd_hwpt_alloc_flags of v6.12. */
const HWPT_ALLOC_NEST_PARENT = 1 << 0;
const HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;
const HWPT_FAULT_ID_VALID = 1 << 2;
const HWPT_DATA_NONE = 0;
/** IOMMU_HWPT_DATA_SELFTEST and sizeof(struct iommu_hwpt_selftest) (its one field, iotlb). */
const HWPT_DATA_SELFTEST = 0xdead;
const HWPT_SELFTEST_SIZE = 4;
/** MOCK_FLAGS_DEVICE_NO_DIRTY: the mock device without dirty tracking. */
const MOCK_DEVICE_NO_DIRTY = 1 << 0;
/** IOMMU_HW_INFO_TYPE_SELFTEST and IOMMU_HW_INFO_SELFTEST_REGVAL of the selftest header. */
const HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
const HW_INFO_SELFTEST_REGVAL = 0xdeadbeef;
/** sizeof(struct iommu_test_hw_info): flags, test_reg. */
const HW_INFO_DATA_LEN = 8;
/** IOMMU_HW_CAP_DIRTY_TRACKING */
const HW_CAP_DIRTY_TRACKING = 1n;

/** Byte offsets of struct iommu_hwpt_alloc and struct iommu_hw_info (v6.12). */
export const HWPT_OFF = {
  alloc: { flags: 4, devId: 8, ptId: 12, outHwptId: 16, reserved: 20, dataType: 24, dataLen: 28, dataUptr: 32 },
  hwInfo: {
    flags: 4,
    devId: 8,
    dataLen: 12,
    dataUptr: 16,
    outDataType: 24,
    outMaxPasidLog2: 28,
    reserved: 29,
    outCapabilities: 32,
  },
  /** struct iommu_test_cmd: mock_domain_replace.pt_id in the union. */
  replacePtId: 16,
  mockDomain: { outStdevId: 16, outHwptId: 20, outIdevId: 24 },
} as const;

export class HwptCommands {
  private seq = 0;

  constructor(private readonly host: HwptHost) {}

  // ---- MOCK_DOMAIN / MOCK_DOMAIN_FLAGS -----------------------------------------------------------------------

  /**
   * iommufd_test_mock_domain: the selftest object, the mock device (its flags checked), the bound device,
   * then iommufd_device_attach to `ptId` (an IOAS or a paging hwpt). The answer carries the three ids.
   */
  mockDomain(objects: Map<number, IdObject>, call: HwptCall, buf: Buffer, ptId: number, devFlags: number): number {
    const { host } = this;
    if (host.faultPoint('iommufd_object_alloc(selftest)')) host.fail(ENOMEM);
    // mock_dev_create refuses device flags this mock does not know (PASID is later than v6.12).
    if (devFlags & ~MOCK_DEVICE_FLAGS) host.fail(EINVAL);
    if (host.faultPoint('mock_dev_create')) host.fail(ENOMEM);
    // iommufd_device_bind: the context's iommufd_group of the mock's own new iommu_group.
    if (host.faultPoint('iommufd_get_group')) host.fail(ENOMEM);
    const selftest = host.allocId(objects, { kind: 'selftest', idev: 0, hwpt: 0, devFlags });
    let idev = 0;
    try {
      if (host.faultPoint('iommufd_object_alloc(device)')) host.fail(ENOMEM);
      idev = host.allocId(objects, { kind: 'device', selftest });
      const hwpt = this.attach(objects, selftest, devFlags, ptId, 'attach');
      objects.set(selftest, { kind: 'selftest', idev, hwpt, devFlags });
    } catch (err) {
      objects.delete(selftest);
      if (idev) objects.delete(idev);
      throw err;
    }
    const self = objects.get(selftest) as SelftestObject;
    const m = HWPT_OFF.mockDomain;
    buf.writeUInt32LE(selftest, m.outStdevId);
    buf.writeUInt32LE(self.hwpt, m.outHwptId);
    buf.writeUInt32LE(idev, m.outIdevId);
    try {
      host.respond(call, buf);
    } catch (err) {
      this.destroySelftest(objects, selftest);
      throw err;
    }
    return 0;
  }

  /**
   * iommufd_device_change_pt for a device not attached yet (`attach`) or attached (`replace`): a paging hwpt
   * is taken as is, an IOAS goes through the automatic domains. Returns the hwpt id now attached.
   */
  private attach(
    objects: Map<number, IdObject>,
    selftest: number,
    devFlags: number,
    ptId: number,
    how: 'attach' | 'replace',
  ): number {
    const { host } = this;
    const pt = objects.get(ptId) ?? host.fail(ENOENT);
    const current = how === 'replace' ? (objects.get(selftest) as SelftestObject).hwpt : 0;
    if (pt.kind === 'hwpt') {
      const rc = this.doAttach(pt, devFlags, ptId === current);
      if (rc) host.fail(rc);
      this.moveDevice(objects, selftest, current, ptId);
      return ptId;
    }
    if (pt.kind !== 'ioas') return host.fail(EINVAL);
    // iommufd_device_auto_get_domain: the IOAS's automatic hwpts in hwpt_list order; EINVAL means "try the next".
    const autos = [...objects.entries()]
      .filter((e): e is [number, HwptObject] => e[1].kind === 'hwpt' && e[1].auto && e[1].ioas === pt.name)
      .sort((a, b) => a[1].seq - b[1].seq);
    for (const [id, hwpt] of autos) {
      const rc = this.doAttach(hwpt, devFlags, id === current);
      if (rc === EINVAL) continue;
      if (rc) host.fail(rc);
      this.moveDevice(objects, selftest, current, id);
      return id;
    }
    // A new automatic domain. Attach (immediate_attach) allocates its handle before the domain is filled;
    // replace attaches after; either failure takes the new hwpt down again.
    if (how === 'attach' && host.faultPoint('iommufd_hwpt_attach_device')) host.fail(ENOMEM);
    const id = this.newPaging(objects, pt.name, { auto: true, nestParent: false, dirty: false });
    if (how === 'replace' && host.faultPoint('iommufd_hwpt_replace_device')) {
      this.destroyHwpt(objects, id);
      host.fail(ENOMEM);
    }
    this.moveDevice(objects, selftest, current, id);
    return id;
  }

  /**
   * iommufd_device_do_attach / do_replace on one hwpt: 0, or the errno. The same hwpt again is a replace
   * that changes nothing; otherwise the attach handle (a failslab site) and the mock's attach_dev, which
   * refuses a dirty-tracking domain to a device without dirty tracking.
   */
  private doAttach(hwpt: HwptObject, devFlags: number, same: boolean): number {
    if (same) return 0;
    if (this.host.faultPoint('iommufd_hwpt_attach_device')) return ENOMEM;
    if (hwpt.dirty && devFlags & MOCK_DEVICE_NO_DIRTY) return EINVAL;
    return 0;
  }

  /** The device's attachment moves from hwpt `from` (0: none) to `to`; an automatic hwpt left empty goes. */
  private moveDevice(objects: Map<number, IdObject>, selftest: number, from: number, to: number): void {
    if (from === to) return;
    const self = objects.get(selftest);
    if (self?.kind === 'selftest') self.hwpt = to;
    const target = objects.get(to);
    if (target?.kind === 'hwpt') target.devices++;
    if (from) this.putHwpt(objects, from);
  }

  /** iommufd_hw_pagetable_put: one device fewer; an automatic hwpt is destroyed with its last device. */
  private putHwpt(objects: Map<number, IdObject>, id: number): void {
    const hwpt = objects.get(id);
    if (hwpt?.kind !== 'hwpt') return;
    hwpt.devices--;
    if (hwpt.auto && hwpt.devices === 0) this.destroyHwpt(objects, id);
  }

  /** iommufd_hwpt_paging_alloc with the IOAS: the object (its id), the domain filled from the IOAS. */
  private newPaging(
    objects: Map<number, IdObject>,
    ioas: string,
    opts: { auto: boolean; nestParent: boolean; dirty: boolean },
  ): number {
    const domain = this.host.newDomainName();
    // The hw_pagetable object's allocation is the op's own first fault point, then the domain's fill.
    this.host.run({ op: 'domain_attach', domain, ioas, kind: 'mock', pgsizes: null, aperture: null });
    return this.host.allocId(objects, { kind: 'hwpt', domain, ioas, devices: 0, seq: ++this.seq, ...opts });
  }

  /** The hwpt's destruction: iopt_table_remove_domain and the domain freed. */
  private destroyHwpt(objects: Map<number, IdObject>, id: number): void {
    const hwpt = objects.get(id);
    if (hwpt?.kind !== 'hwpt') return;
    this.host.run({ op: 'domain_detach', domain: hwpt.domain });
    objects.delete(id);
  }

  // ---- destruction -------------------------------------------------------------------------------------------

  /** iommufd_selftest_destroy: the device detaches (its hwpt put), is unbound, and the mock device goes. */
  destroySelftest(objects: Map<number, IdObject>, id: number): void {
    const self = objects.get(id);
    if (self?.kind !== 'selftest') return;
    objects.delete(id);
    objects.delete(self.idev);
    if (self.hwpt) this.putHwpt(objects, self.hwpt);
  }

  /** IOMMU_DESTROY of a hwpt: refused while a device is attached (its users count), else destroyed. */
  destroy(objects: Map<number, IdObject>, id: number): number {
    const hwpt = objects.get(id);
    if (hwpt?.kind !== 'hwpt') return this.host.fail(ENOENT);
    if (hwpt.devices > 0) this.host.fail(EBUSY);
    this.destroyHwpt(objects, id);
    return 0;
  }

  /** At release: whether the object has no other holder now (iommufd_fops_release destroys those). */
  releasable(obj: IdObject): boolean {
    return obj.kind === 'selftest' || (obj.kind === 'hwpt' && obj.devices === 0);
  }

  /** At release: destroy a releasable hwpt or selftest object. */
  release(objects: Map<number, IdObject>, id: number): void {
    const obj = objects.get(id);
    if (obj?.kind === 'selftest') this.destroySelftest(objects, id);
    else if (obj?.kind === 'hwpt') this.destroyHwpt(objects, id);
  }

  // ---- MOCK_DOMAIN_REPLACE -----------------------------------------------------------------------------------

  /** iommufd_test_mock_domain_replace: iommufd_device_replace of the selftest object's device to `pt_id`. */
  replace(objects: Map<number, IdObject>, call: HwptCall, buf: Buffer, stdevId: number): number {
    const { host } = this;
    const self = objects.get(stdevId);
    if (self?.kind !== 'selftest') return host.fail(ENOENT);
    const ptId = buf.readUInt32LE(HWPT_OFF.replacePtId);
    const pt = objects.get(ptId) ?? host.fail(ENOENT);
    if (pt.kind !== 'hwpt' && pt.kind !== 'ioas') return host.fail(EINVAL);
    const now = this.attach(objects, stdevId, self.devFlags, ptId, 'replace');
    buf.writeUInt32LE(now, HWPT_OFF.replacePtId);
    // A failed answer leaves the replace done, as iommufd_test_mock_domain_replace does.
    host.respond(call, buf);
    return 0;
  }

  // ---- IOMMU_HWPT_ALLOC --------------------------------------------------------------------------------------

  /**
   * iommufd_hwpt_alloc: reserved field, data type against length, the device, then the parent: an IOAS gives
   * a paging hwpt (the mock's domain_alloc_user checks the flags), a paging hwpt a nested one (outside the
   * model: answered as a mock without nesting answers, EOPNOTSUPP, and counted).
   */
  hwptAlloc(objects: Map<number, IdObject>, call: HwptCall, buf: Buffer): number {
    const { host } = this;
    const o = HWPT_OFF.alloc;
    const flags = buf.readUInt32LE(o.flags);
    const dataType = buf.readUInt32LE(o.dataType);
    const dataLen = buf.readUInt32LE(o.dataLen);
    if (buf.readUInt32LE(o.reserved) !== 0) host.fail(EOPNOTSUPP);
    if ((dataType === HWPT_DATA_NONE) !== (dataLen === 0)) host.fail(EINVAL);
    const dev = objects.get(buf.readUInt32LE(o.devId));
    if (dev?.kind !== 'device') return host.fail(ENOENT);
    const self = objects.get(dev.selftest) as SelftestObject;
    // An id that names nothing is EINVAL here (not ENOENT): the lookup's error is replaced.
    const pt = objects.get(buf.readUInt32LE(o.ptId)) ?? host.fail(EINVAL);
    if (pt.kind === 'hwpt') {
      if (flags & ~HWPT_FAULT_ID_VALID || dataLen === 0) host.fail(EOPNOTSUPP);
      if (pt.auto || !pt.nestParent) host.fail(EINVAL);
      this.nestedDataChecks(call, buf);
      host.countUnserved('IOMMU_HWPT_ALLOC(nested)');
      return host.fail(EOPNOTSUPP);
    }
    if (pt.kind !== 'ioas') return host.fail(EINVAL);
    if (flags & ~(HWPT_ALLOC_NEST_PARENT | HWPT_ALLOC_DIRTY_TRACKING)) host.fail(EOPNOTSUPP);
    const dirty = (flags & HWPT_ALLOC_DIRTY_TRACKING) !== 0;
    if (dirty && self.devFlags & MOCK_DEVICE_NO_DIRTY) host.fail(EOPNOTSUPP);
    // mock_domain_alloc_user takes no driver data for a paging domain; the object is already allocated then.
    if (dataLen !== 0) {
      if (host.faultPoint('iommufd_object_alloc(hwpt)')) host.fail(ENOMEM);
      host.fail(EOPNOTSUPP);
    }
    const id = this.newPaging(objects, pt.name, {
      auto: false,
      nestParent: (flags & HWPT_ALLOC_NEST_PARENT) !== 0,
      dirty,
    });
    buf.writeUInt32LE(id, o.outHwptId);
    try {
      host.respond(call, buf);
    } catch (err) {
      this.destroyHwpt(objects, id);
      throw err;
    }
    return 0;
  }

  /**
   * What the mock's nested domain_alloc_user checks before it builds a nested domain (the object is
   * allocated first): the data type (EOPNOTSUPP), then iommu_copy_struct_from_user of struct
   * iommu_hwpt_selftest: a length below its iotlb field is EINVAL, a longer one needs a zero tail (E2BIG),
   * an unreadable one is EFAULT.
   */
  private nestedDataChecks(call: HwptCall, buf: Buffer): void {
    const { host } = this;
    const o = HWPT_OFF.alloc;
    if (host.faultPoint('iommufd_object_alloc(hwpt nested)')) host.fail(ENOMEM);
    if (buf.readUInt32LE(o.dataType) !== HWPT_DATA_SELFTEST) host.fail(EOPNOTSUPP);
    const len = buf.readUInt32LE(o.dataLen);
    const uptr = buf.readBigUInt64LE(o.dataUptr);
    if (len < HWPT_SELFTEST_SIZE) host.fail(EINVAL);
    for (let at = HWPT_SELFTEST_SIZE; at < len;) {
      const chunk = Math.min(len - at, 4096);
      const tail = host.readUser(call.pid, uptr + BigInt(at), chunk) ?? host.fail(EFAULT);
      if (tail.some((b) => b !== 0)) host.fail(E2BIG);
      at += chunk;
    }
    if (host.faultPoint('copy_from_user') || host.readUser(call.pid, uptr, HWPT_SELFTEST_SIZE) === null)
      host.fail(EFAULT);
  }

  // ---- IOMMU_GET_HW_INFO -------------------------------------------------------------------------------------

  /**
   * iommufd_get_hw_info: flags and reserved bytes must be zero (EOPNOTSUPP), the device looked up, the mock's
   * info (its allocation a failslab site) copied up to the user's data_len and the rest of the user's
   * buffer cleared (EFAULT), then data_len, the type, the capabilities and max_pasid_log2 (0: the v6.12
   * mock has no PASID) go back in the command.
   */
  getHwInfo(objects: Map<number, IdObject>, call: HwptCall, buf: Buffer): number {
    const { host } = this;
    const o = HWPT_OFF.hwInfo;
    if (buf.readUInt32LE(o.flags) !== 0 || buf.readUIntLE(o.reserved, 3) !== 0) host.fail(EOPNOTSUPP);
    const dev = objects.get(buf.readUInt32LE(o.devId));
    if (dev?.kind !== 'device') return host.fail(ENOENT);
    const self = objects.get(dev.selftest) as SelftestObject;
    if (host.faultPoint('mock_domain_hw_info')) host.fail(ENOMEM);
    const info = Buffer.alloc(HW_INFO_DATA_LEN);
    info.writeUInt32LE(HW_INFO_SELFTEST_REGVAL, 4);
    const userLen = buf.readUInt32LE(o.dataLen);
    const uptr = buf.readBigUInt64LE(o.dataUptr);
    const copyLen = Math.min(userLen, HW_INFO_DATA_LEN);
    if (copyLen > 0 && !host.writeUser(call.pid, uptr, info.subarray(0, copyLen))) host.fail(EFAULT);
    if (copyLen < userLen && !host.writeUser(call.pid, uptr + BigInt(copyLen), Buffer.alloc(userLen - copyLen)))
      host.fail(EFAULT);
    buf.writeUInt32LE(HW_INFO_DATA_LEN, o.dataLen);
    buf.writeUInt32LE(HW_INFO_TYPE_SELFTEST, o.outDataType);
    buf.writeBigUInt64LE(self.devFlags & MOCK_DEVICE_NO_DIRTY ? 0n : HW_CAP_DIRTY_TRACKING, o.outCapabilities);
    buf.writeUInt8(0, o.outMaxPasidLog2);
    host.respond(call, buf);
    return 0;
  }
}
