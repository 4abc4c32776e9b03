// SPDX-License-Identifier: GPL-2.0-only
/**
 * One `ioptrace run`: the iommufd contexts a live program opened, served by the kernel model op by op.
 *
 * Each ioctl is decoded as the kernel decodes it (iommufd_fops_ioctl: the request must be the table's
 * exact number, the user size at least the command's minimum, a larger size only with a zero tail, then
 * the command's own checks in the kernel's order) and becomes the trace ops that stand for it, run at once
 * on a LiveReplay. Every op is also written to the trace with the result the program saw as its `expect`,
 * and each user range the program hands over is first declared with an `mmap` op (size and page size from
 * /proc/PID/smaps), so the trace replays without the program.
 *
 * Object ids are the kernel's: per context, the lowest free id from 1 (xa_alloc with XA_FLAGS_ALLOC1), in
 * the order the kernel allocates them (MOCK_DOMAIN: selftest object, then the bound device, then the hwpt).
 */
import type { TraceHeader, TraceOp, TraceVersion } from '../events/trace.js';
import { defaultTraceHeader, U64_MAX } from '../events/trace.js';
import { itreeIterFirst, itreeIterNext } from '../structures/interval-tree.js';
import { areaStartByte } from '../kernel/invariants/held.js';
import { copyFromMm, frameAt, vaToPfn } from '../machine/memory.js';
import { serializeHeader, serializeOp } from '../fuzz/write.js';
import { LiveReplay } from '../replay/replayer.js';
import type { Finding, OpRecord, ReplayResult } from '../replay/replayer.js';
import {
  E2BIG,
  EBUSY,
  EFAULT,
  EINVAL,
  ENOENT,
  ENOMEM,
  EOPNOTSUPP,
  EOVERFLOW,
  EPERM,
  errnoFromName,
} from '../machine/errno.js';
import {
  ACCESS_CREATE_NEEDS_PIN_PAGES,
  ACCESS_MAX_LENGTH,
  ACCESS_RW_SLOW_PATH,
  ACCESS_RW_WRITE,
  ACCESS_SYZ,
  ACCESS_WRITE,
  IOMMUFD_CMD_BASE,
  IOMMUFD_CMD_LAST,
  IOMMUFD_TYPE,
  IOVA_RANGE_SIZE,
  MAP_FIXED_IOVA,
  MAP_FLAGS,
  MAP_READABLE,
  MAP_WRITEABLE,
  OFF,
  OPTION_HUGE_PAGES,
  OPTION_OP_GET,
  OPTION_OP_SET,
  OPTION_RLIMIT_MODE,
  SERVED_OPS,
  TEST_OP_ACCESS_PAGES,
  TEST_OP_ACCESS_REPLACE_IOAS,
  TEST_OP_ACCESS_RW,
  TEST_OP_ADD_RESERVED,
  TEST_OP_CREATE_ACCESS,
  TEST_OP_DESTROY_ACCESS_PAGES,
  TEST_OP_MD_CHECK_MAP,
  TEST_OP_MD_CHECK_REFS,
  TEST_OP_MOCK_DOMAIN,
  TEST_OP_MOCK_DOMAIN_FLAGS,
  TEST_OP_MOCK_DOMAIN_REPLACE,
  TEST_OP_NAMES,
  TEST_OP_SET_TEMP_MEMORY_LIMIT,
  LATER_OPS,
  UNSERVED_OPS,
  iommufdRequest,
} from './uapi.js';
import type { IoctlOp } from './uapi.js';
import { FailNth, parseFailNth } from './fail-nth.js';
import { FileLifetime, fdOfSocket } from './file-lifetime.js';
import { HwptCommands } from './hwpt.js';
import type { IdObject } from './hwpt.js';
import {
  CapturingMemory,
  UserMemory,
  credentialsOf,
  hasAddressSpace,
  realMeminfoText,
  realStatusText,
  socketHeldAnywhere,
  socketInodeOf,
  sharedVmasOf,
  vmasIn,
} from './user-memory.js';
import type { Vma } from './user-memory.js';
import { SharedFrames } from './shared-frames.js';
import { reservedHoles, vfioIoas, vfioIoctl, vfioIoctlName } from './vfio-compat.js';
import type { CompatHost } from './vfio-compat.js';
import { kernelAnswer } from './kernel-answer.js';
import { meminfoWithHeld, pinnedHugePagesUnmapped, poolPageSize, statusWithCharges } from './proc-files.js';
import type { KernelAnswer, KernelOutput, KernelVerdict } from './kernel-answer.js';

export const ENOTTY = 25;
export const EMSGSIZE = 90;
/** The reply that sends the call on to the real kernel: the descriptor is not one of ours. */
export const NOT_OURS = -1;
/** The reply that asks the library for a new access file (CREATE_ACCESS installs one in the caller). */
export const NEED_FD = -2;
/** EBADFD: what fget of a descriptor that is not a selftest access file answers in the mock. */
const EBADFD = 77;

/** MOCK_IO_PAGE_SIZE of the selftest: half a CPU page. */
const MOCK_IO_PAGE_SIZE = 2048n;
const PAGE_SIZE = 4096n;

export interface IoctlCall {
  pid: number;
  tid: number;
  ino: bigint;
  request: number;
  arg: bigint;
  /** 1 + the descriptor of an access file the library prepared for this call, or 0. */
  aux: number;
  /** The caller's address-space generation (protocol.h, mm_gen); absent or 0n: its mappings are read anew. */
  mmGen?: bigint;
}

export interface IoctlReply {
  ret: number;
  /** 0, an errno, or NOT_OURS. */
  err: number;
}

/** Capabilities `run --grant-cap` adds to what /proc says of every process (the two iommufd asks about). */
export const GRANTABLE_CAPS = ['CAP_IPC_LOCK', 'CAP_SYS_RESOURCE'] as const;
export type GrantableCap = (typeof GRANTABLE_CAPS)[number];

export interface SessionOptions {
  variant: string;
  fixes: readonly string[];
  /**
   * Capabilities every process of the run is taken to have besides its own (the ground truth runs its
   * programs as a root with every capability, which this machine's root may lack).
   */
  grantCaps?: readonly GrantableCap[];
  /**
   * `ioptrace record`: the kernel answers the program, the model only decodes each call into the trace's
   * ops. The model writes nothing to the program's memory (its answers are kept to compare), and each
   * call's ops take the kernel's answer as their `expect` once it is known (kernelAnswered).
   */
  kernelAnswers?: boolean;
  /** The comment lines before the header (default Session.PREAMBLE). */
  preamble?: readonly string[];
  /** A finding as it happens, one line in the style of a kernel log. */
  onFinding?: (line: string) => void;
  /**
   * The trace version to write (default 5): version 2 and later follow the program's descriptors (fork,
   * dup, close, fd passing, exit) with the ops of file lifetime (file-lifetime.ts); version 1 translates each
   * release into the ops that stand for it and keeps every context until the end.
   */
  traceVersion?: TraceVersion;
  /**
   * The header's gup_unshare_read_pins when the version's default does not fit: a recording of a real
   * kernel (every kernel since 5.19 unshares on read-only pins) in version 1, whose default is off.
   */
  gupUnshareReadPins?: boolean;
}

interface Context {
  name: string;
  ino: bigint;
  objects: Map<number, IdObject>;
  open: boolean;
  /** The process that opened it and the accounting mode its model context was opened with. */
  opener: number;
  account: 'user' | 'mm';
  /** Access files still open: each holds the context (iommufd_ctx_get), so its release waits for them. */
  accessFiles: number;
  /** ictx->vfio_ioas: the model name of the IOAS the VFIO container ioctls act on (vfio-compat.ts). */
  vfioIoas: string | null;
}

/** A selftest access file (the anonymous file CREATE_ACCESS installs), by the inode of its socket. */
interface AccessFile {
  ctx: Context | null;
  /** The model's access, once CREATE_ACCESS succeeded on this file. */
  access: string | null;
  id: number;
  /** The driver's items by id (staccess->next_id from 0): what DESTROY_ACCESS_PAGES names. */
  items: Map<number, [bigint, bigint]>;
  nextItem: number;
}

/** What the run report lists besides the model's findings. */
export interface SessionSummary {
  contexts: number;
  ioctls: Record<string, number>;
  /** Calls answered as a kernel without the feature answers, by name. */
  unserved: Record<string, number>;
}

class Errno extends Error {
  constructor(readonly errno: number) {
    super(`errno ${errno}`);
  }
}

/** Thrown before anything is done: the call must come again with a prepared access file. */
class NeedFd extends Error {}

const fail = (errno: number): never => {
  throw new Errno(errno);
};

const HUGE_OF: Readonly<Record<number, '4K' | '2M' | '1G'>> = {
  4096: '4K',
  [2 * 1024 * 1024]: '2M',
  [1024 * 1024 * 1024]: '1G',
};

/** Ops of the simulated machine, not of iommufd: they have no fault point, so fail-nth never arms them. */
const MACHINE_OPS: ReadonlySet<string> = new Set(['process', 'mmap', 'munmap', 'write', 'read', 'exit', 'rlimit']);

const alignDown = (x: bigint, a: bigint): bigint => x - (x % a);
/** The size the user gave a table command (copyStructIn keeps it on the buffer). */
const userSizeOf = (buf: Buffer): number => (buf as Buffer & { userSize?: number }).userSize ?? buf.length;
const alignUp = (x: bigint, a: bigint): bigint => alignDown(x + a - 1n, a);
const bigMin = (a: bigint, b: bigint): bigint => (a < b ? a : b);
const bigMax = (a: bigint, b: bigint): bigint => (a > b ? a : b);

export class Session {
  private readonly live: LiveReplay;
  private readonly header: TraceHeader;
  /** Version 2 only: the program's descriptors, followed into the model. */
  private readonly lifetime: FileLifetime | null;
  private readonly lines: string[] = [];
  /** The op of each line, as written (record mode patches the ops of a call with the kernel's answer). */
  private readonly written: TraceOp[] = [];
  /** Record mode: the first line of the call in progress, and where the kernel writes its outputs. */
  private callStart = 0;
  private kernelOutputs: KernelOutput[] = [];
  /** The name of the last call decoded (for record mode's report). */
  private lastCall = '';
  private readonly contexts = new Map<bigint, Context>();
  private readonly processes = new Set<number>();
  /** Processes of the run whose exit the model has not seen yet. */
  private readonly running = new Set<number>();
  /** Per process, the [start, end) ranges already declared to the model with `mmap`, sorted. */
  private readonly declared = new Map<number, [bigint, bigint][]>();
  /** The model frames of shared objects, and who declared which part of them. */
  private readonly sharedFrames = new SharedFrames(PAGE_SIZE);
  /** Ranges dropped by processes the model has not met yet, applied when their fork is learnt. */
  private readonly pendingDrops = new Map<number, { start: bigint; end: bigint; privateOnly: boolean }[]>();
  private readonly memory: UserMemory;
  private readonly counts = { ioctls: new Map<string, number>(), unserved: new Map<string, number>() };
  private readonly accessFiles = new Map<bigint, AccessFile>();
  private names = { ctx: 0, ioas: 0, hwpt: 0, access: 0 };
  private reported = { violations: 0, warns: 0 };
  private current = '';
  /** The fail-nth counters, and the task whose call is being served (its counter is the one counted off). */
  private readonly failNth = new FailNth();
  private tid = 0;
  private readonly hwpt = new HwptCommands({
    allocId: (objects, obj) => this.allocIdIn(objects, obj),
    run: (op) => this.run(op),
    respond: (call, buf) => this.respond(call as IoctlCall, buf),
    writeUser: (pid, addr, bytes) => this.memory.write(pid, addr, bytes),
    readUser: (pid, addr, length) => this.memory.read(pid, addr, length),
    countUnserved: (name) => this.count(this.counts.unserved, name),
    newDomainName: () => `hwpt${++this.names.hwpt}`,
    faultPoint: () => this.failNth.point(this.tid),
    fail,
  });

  /** Lines before the first op: a comment and the header. */
  static readonly PREAMBLE = ['# written by ioptrace run: the ops a live program issued, with what it saw'];

  constructor(private readonly options: SessionOptions) {
    const versionDefaults = defaultTraceHeader(options.traceVersion ?? 5);
    this.header = {
      ...versionDefaults,
      gup_unshare_read_pins: options.gupUnshareReadPins ?? versionDefaults.gup_unshare_read_pins,
    };
    this.live = new LiveReplay(this.header, { variant: options.variant, fixes: options.fixes });
    this.lifetime = this.header.version >= 2 ? this.followDescriptors() : null;
    this.memory = options.kernelAnswers ? new CapturingMemory() : new UserMemory();
  }

  /**
   * An open of /dev/iommu (vfio: /dev/vfio/vfio, the compat container): a new context; 0 or an errno.
   * The allocations of the open path are fail-nth sites: the name (getname), the file
   * (alloc_empty_file), the context (iommufd_fops_open).
   */
  open(pid: number, ino: bigint, vfio: boolean, tid = pid): number {
    this.lifetime?.sync(pid);
    this.tid = tid;
    for (let site = 0; site < 3; site++) if (this.failNth.point(tid)) return ENOMEM;
    this.ensureProcess(pid);
    const name = `ctx${++this.names.ctx}`;
    const rec = this.step({
      op: 'open',
      ctx: name,
      pid: String(pid),
      account: vfio ? 'mm' : 'user',
      vfio_type1: false,
      ...(this.lifetime ? { fd: fdOfSocket(pid, ino) ?? undefined } : {}),
    });
    if (rec.errno !== null) return -errnoFromName(rec.errno);
    this.contexts.set(ino, {
      name,
      ino,
      objects: new Map(),
      open: true,
      opener: pid,
      account: vfio ? 'mm' : 'user',
      accessFiles: 0,
      vfioIoas: null,
    });
    return 0;
  }

  /**
   * The program closed a descriptor of a context or access file: if no process holds the file any more,
   * this was the last close, and the file is released now, before close returns (its end-of-file, heard
   * later, then finds nothing left to release).
   */
  closed(ino: bigint, tid = 0): void {
    if (!this.contexts.has(ino) && !this.accessFiles.has(ino)) return;
    // The release runs in the closing task (task work on its way back to user space).
    this.tid = tid;
    if (this.lifetime) return this.syncDescriptors();
    this.reapExited();
    if (socketHeldAnywhere(ino)) return;
    if (this.accessFiles.has(ino)) this.releaseAccessFile(ino, tid);
    else this.release(ino, tid);
  }

  /** A socket the library prepared to become a selftest access file. */
  registerAccessFile(ino: bigint): void {
    this.accessFiles.set(ino, { ctx: null, access: null, id: 0, items: new Map(), nextItem: 0 });
  }

  /**
   * The last descriptor of an access file was closed (iommufd_test_staccess_release): the driver's unmap
   * callback over the whole space and the destruction of the access, which is what `access_destroy` runs.
   */
  releaseAccessFile(ino: bigint, tid = 0): void {
    this.tid = tid;
    if (this.lifetime) {
      this.syncDescriptors();
      if (this.accessFiles.get(ino)?.access === null) this.accessFiles.delete(ino);
      return;
    }
    const file = this.accessFiles.get(ino);
    this.accessFiles.delete(ino);
    if (file?.ctx == null || file.access === null) return;
    this.reapExited();
    this.current = 'close(access fd)';
    try {
      this.step({ op: 'access_destroy', access: file.access });
    } finally {
      this.current = '';
    }
    file.ctx.objects.delete(file.id);
    file.ctx.accessFiles--;
    if (!file.ctx.open && file.ctx.accessFiles === 0) this.teardown(file.ctx);
  }

  /**
   * A request of `pid` that reads or writes its memory begins: the mappings the server read at an earlier
   * request stay only if the library counted no change of the caller's address space since (`mmGen`).
   */
  beginRequest(pid: number, mmGen: bigint): void {
    this.memory.beginRequest(pid, mmGen);
  }

  /**
   * The process took [start, start + length) out of its address space (munmap, the old place of an mremap
   * that moved or shrank, MADV_DONTNEED of private memory, a MAP_FIXED mapping laid over it), as the
   * library reports after the C library's call succeeded. The model drops what it had declared there with
   * `munmap` ops (pinned pages stay alive, as in the kernel), so that the next use of those addresses
   * declares the memory found there then: new frames, not the old ones.
   */
  addressSpaceDropped(pid: number, start: bigint, length: bigint, privateOnly: boolean): void {
    if (length <= 0n) return;
    const end = start + length > U64_MAX ? U64_MAX : start + length;
    if (!this.processes.has(pid)) {
      // A process the model has not met yet, a fork child most likely: it is learnt at its next call (with
      // the credentials it has then), and what it dropped meanwhile is applied to what it inherits.
      const pending = this.pendingDrops.get(pid) ?? [];
      pending.push({ start, end, privateOnly });
      this.pendingDrops.set(pid, pending);
      return;
    }
    if (!this.declared.has(pid) || !this.modelAlive(pid)) return;
    if (!privateOnly) return this.dropDeclared(pid, start, end);
    // MADV_DONTNEED of a shared mapping only unmaps: the object keeps the pages, the next fault finds them.
    for (const vma of vmasIn(pid, start, end)) {
      if (vma.shared === null) this.dropDeclared(pid, bigMax(start, vma.start), bigMin(end, vma.end));
    }
  }

  /** `munmap` ops for what the model declared of `pid` in [start, end), which is then no longer declared. */
  private dropDeclared(pid: number, start: bigint, end: bigint): void {
    const declared = this.declared.get(pid) ?? [];
    const kept: [bigint, bigint][] = [];
    this.current = 'munmap';
    try {
      for (const [a, b] of declared) {
        if (b <= start || a >= end) {
          kept.push([a, b]);
          continue;
        }
        const lo = bigMax(a, start);
        const hi = bigMin(b, end);
        this.step({ op: 'munmap', pid: String(pid), addr: lo, length: hi - lo });
        if (a < lo) kept.push([a, lo]);
        if (hi < b) kept.push([hi, b]);
      }
    } finally {
      this.current = '';
    }
    this.declared.set(pid, kept);
    this.sharedFrames.dropped(pid, start, end);
  }

  /** A process connected anew (after exec, or a fresh child): a mem file opened before belongs to its old mm. */
  newProcessImage(pid: number): void {
    this.memory.drop(pid);
  }

  /** The last descriptor of a context was closed (its socket reached end-of-file). */
  release(ino: bigint, tid = 0): void {
    // Heard as end-of-file (an exit, or a close the library did not see): no task's counter to count off.
    this.tid = tid;
    if (this.lifetime) return this.syncDescriptors();
    const ctx = this.contexts.get(ino);
    if (!ctx) return;
    this.reapExited();
    ctx.open = false;
    if (ctx.accessFiles === 0) this.teardown(ctx);
  }

  /**
   * iommufd_fops_release: destroy, pass after pass in id order, every object nothing else holds, until
   * a pass destroys nothing. A selftest device object detaches its domain (its device and hwpt go with
   * it); an IOAS is destroyed once no hwpt uses it, its areas unmapped (iopt_destroy_table).
   */
  private teardown(ctx: Context): void {
    this.current = 'close(/dev/iommu)';
    try {
      for (let destroyed = true; destroyed && ctx.objects.size;) {
        destroyed = false;
        for (const id of [...ctx.objects.keys()].sort((a, b) => a - b)) {
          const obj = ctx.objects.get(id);
          if (obj !== undefined && this.hwpt.releasable(obj)) {
            this.hwpt.release(ctx.objects, id);
            destroyed = true;
          } else if (obj?.kind === 'ioas' && !this.ioasHeld(ctx, obj.name)) {
            if ((this.live.current.ioases[obj.name]?.areas.count ?? 0) > 0)
              this.step({ op: 'ioas_unmap', ioas: obj.name, iova: 0n, length: U64_MAX, all: true });
            ctx.objects.delete(id);
            destroyed = true;
          }
        }
      }
    } finally {
      this.current = '';
    }
    this.contexts.delete(ctx.ino);
  }

  /** Whether a hwpt or an access still holds the IOAS (its users count is above one). */
  private ioasHeld(ctx: Context, ioas: string): boolean {
    if ([...ctx.objects.values()].some((o) => o.kind === 'hwpt' && o.ioas === ioas)) return true;
    return [...ctx.objects.values()].some(
      (o) => o.kind === 'access' && this.live.current.accesses[o.name]?.ioas === ioas,
    );
  }

  ioctl(call: IoctlCall): IoctlReply {
    const ctx = this.contexts.get(call.ino);
    if (ctx === undefined) return { ret: -1, err: NOT_OURS };
    this.tid = call.tid;
    this.beginRequest(call.pid, call.mmGen ?? 0n);
    this.callStart = this.lines.length;
    this.kernelOutputs = [];
    if (this.memory instanceof CapturingMemory) this.memory.captured.length = 0;
    this.reapExited(call.pid);
    try {
      this.lifetime?.syncForCall(call.pid);
      return { ret: this.serve(ctx, call), err: 0 };
    } catch (err) {
      if (err instanceof Errno) return { ret: -1, err: err.errno };
      if (err instanceof NeedFd) {
        // Counted again when it comes back with the file.
        this.count(this.counts.ioctls, this.current, -1);
        return { ret: -1, err: NEED_FD };
      }
      throw err;
    } finally {
      this.lastCall = this.current;
      this.current = '';
    }
  }

  /**
   * Record mode: the kernel answered the call `ioctl` just decoded (whose reply was the model's answer).
   * The call's ops take the kernel's errno and outputs as their `expect`, its `mmap` ops the physical
   * layout the kernel pinned; the verdict says where the model answered otherwise.
   */
  kernelAnswered(model: IoctlReply, kernel: KernelAnswer): KernelVerdict & { call: string; line: number | null } {
    const captured = this.memory instanceof CapturingMemory ? this.memory.captured : [];
    const verdict = kernelAnswer({
      ops: this.written.slice(this.callStart),
      machineOps: MACHINE_OPS,
      modelErr: model.err,
      kernel,
      captured,
      outputs: this.kernelOutputs,
      read: (pid, addr, length) => this.memory.read(pid, addr, length),
    });
    for (let i = this.callStart; i < this.written.length; i++) {
      const op = this.written[i];
      if (op !== undefined) this.lines[i] = serializeOp(op);
    }
    const firstLine = (this.options.preamble ?? Session.PREAMBLE).length + 2 + this.callStart;
    this.callStart = this.lines.length;
    return {
      ...verdict,
      call: this.lastCall || `ioctl ${model.err}`,
      line: verdict.resultOp === null ? null : firstLine + verdict.resultOp,
    };
  }

  /** Record mode: where the kernel's answer to this call puts an output the trace expects. */
  private kernelOutput(output: KernelOutput): void {
    if (this.options.kernelAnswers) this.kernelOutputs.push(output);
  }

  /** Tear down (as the end of a trace does) and give the run's result with the trace it wrote. */
  finish(): { result: ReplayResult; traceText: string; summary: SessionSummary } {
    this.tid = 0;
    const preamble = this.options.preamble ?? Session.PREAMBLE;
    const firstOpLine = preamble.length + 2;
    if (this.lifetime) this.syncDescriptors();
    const result = this.live.finish(firstOpLine + this.lines.length);
    this.reportFindings(null);
    this.memory.close();
    const header = serializeHeader(this.header);
    const traceText = [...preamble, header, ...this.lines].map((l) => `${l}\n`).join('');
    return {
      result,
      traceText,
      summary: {
        contexts: this.names.ctx,
        ioctls: Object.fromEntries([...this.counts.ioctls].sort()),
        unserved: Object.fromEntries([...this.counts.unserved].sort()),
      },
    };
  }

  // ---- decoding ------------------------------------------------------------------------------------------

  private serve(ctx: Context, call: IoctlCall): number {
    const cmd = call.request >>> 0;
    const nr = cmd & 0xff;
    // iommufd_fops_ioctl: a number outside the table is one of the VFIO container ioctls, or none.
    if (nr < IOMMUFD_CMD_BASE || nr > IOMMUFD_CMD_LAST) return this.vfioContainer(ctx, call, cmd);
    const later = LATER_OPS.find((o) => o.nr === nr && this.options.fixes.includes(o.flag));
    if (later !== undefined && cmd === iommufdRequest(nr)) return this.laterCommand(ctx, call, later);
    const op = SERVED_OPS.find((o) => o.nr === nr);
    if (op === undefined || cmd !== iommufdRequest(nr)) {
      const unserved = cmd === iommufdRequest(nr) ? UNSERVED_OPS[nr] : undefined;
      // The table's size checks come before the command; only a call that passes them is counted.
      if (unserved !== undefined) this.copyStructIn(call.pid, call.arg, unserved);
      if (unserved !== undefined) this.count(this.counts.unserved, unserved.name);
      // Reading chosen: answer as a kernel without this ioctl (ENOTTY), never an invented result.
      return fail(ENOTTY);
    }
    this.current = op.name;
    const buf = this.copyStructIn(call.pid, call.arg, op);
    if (op.nr === 0xa0) {
      const sub = buf.readUInt32LE(OFF.test.op);
      this.current = `IOMMU_TEST_CMD(${TEST_OP_NAMES[sub] ?? sub})`;
    }
    this.count(this.counts.ioctls, this.current);
    this.ensureProcess(call.pid);
    switch (op.nr) {
      case 0x80:
        return this.destroy(ctx, buf);
      case 0x81:
        return this.ioasAlloc(ctx, call, buf);
      case 0x82:
        return this.allowIovas(ctx, call, buf);
      case 0x83:
        return this.ioasCopy(ctx, call, buf);
      case 0x84:
        return this.iovaRanges(ctx, call, buf);
      case 0x85:
        return this.ioasMap(ctx, call, buf);
      case 0x86:
        return this.ioasUnmap(ctx, call, buf);
      case 0x87:
        return this.option(ctx, call, buf);
      case 0x88:
        return this.kernelRc(vfioIoas(this.compatHost(call.pid), ctx, call.arg, buf, userSizeOf(buf)));
      case 0x89:
        return this.hwpt.hwptAlloc(ctx.objects, call, buf);
      case 0x8a:
        return this.hwpt.getHwInfo(ctx.objects, call, buf);
      default:
        return this.testCmd(ctx, call, buf);
    }
  }

  /** A command of a release after v6.12 whose flag the variant has (LATER_OPS). */
  private laterCommand(ctx: Context, call: IoctlCall, op: IoctlOp): number {
    this.current = op.name;
    const buf = this.copyStructIn(call.pid, call.arg, op);
    this.count(this.counts.ioctls, this.current);
    this.ensureProcess(call.pid);
    return this.changeProcess(ctx, call, buf);
  }

  /**
   * IOMMU_IOAS_CHANGE_PROCESS (iommufd_ioas_change_process): the calling process becomes the source of every
   * file-backed pages of the context and takes over their charges. A non-zero __reserved is EOPNOTSUPP;
   * nothing is copied back.
   */
  private changeProcess(ctx: Context, call: IoctlCall, buf: Buffer): number {
    if (buf.readUInt32LE(OFF.changeProcess.reserved) !== 0) fail(EOPNOTSUPP);
    this.run({ op: 'change_process', ctx: ctx.name, pid: String(call.pid) });
    return 0;
  }

  /**
   * iommufd_vfio_ioctl: the VFIO container ioctls (vfio-compat.ts); any other request is ENOTTY, and one
   * of VFIO's own numbers is counted as not served.
   */
  private vfioContainer(ctx: Context, call: IoctlCall, cmd: number): number {
    const name = vfioIoctlName(cmd);
    if (name === null) {
      const nr = cmd & 0xff;
      if (((cmd >> 8) & 0xff) === IOMMUFD_TYPE && nr >= 100 && nr < IOMMUFD_CMD_BASE)
        this.count(this.counts.unserved, `VFIO ioctl ${nr}`);
      return fail(ENOTTY);
    }
    this.current = name;
    this.count(this.counts.ioctls, name);
    this.ensureProcess(call.pid);
    return this.kernelRc(vfioIoctl(this.compatHost(call.pid), ctx, cmd, call.arg));
  }

  /** What vfio-compat.ts needs of this session, for one caller. */
  private compatHost(pid: number): CompatHost {
    const live = this.live;
    return {
      pid,
      get state() {
        return live.current;
      },
      read: (addr, length) => this.memory.read(pid, addr, length),
      write: (addr, data) => this.memory.write(pid, addr, data),
      declare: (uptr, length) => this.declare(pid, uptr, length),
      step: (op) => this.step(op),
      unserved: (name) => this.count(this.counts.unserved, name),
    };
  }

  /** A kernel function's result (a value, or a negative errno) as the ioctl's. */
  private kernelRc(rc: number): number {
    return rc < 0 ? fail(-rc) : rc;
  }

  /**
   * get_user of the size, then copy_struct_from_user: below the minimum is EINVAL, a tail beyond what the
   * kernel knows must read as zeros (E2BIG otherwise, EFAULT where it cannot be read), then the known part.
   */
  private copyStructIn(pid: number, arg: bigint, op: IoctlOp): Buffer {
    // One read of the whole struct where it is mapped (the common case): the kernel's two copies, the size
    // and then the struct, are both cut from it; elsewhere each copy is made on its own, as the kernel's.
    const whole = this.memory.read(pid, arg, op.size);
    const sizeBytes = whole ?? this.memory.read(pid, arg, 4) ?? fail(EFAULT);
    const userSize = sizeBytes.readUInt32LE(0);
    if (userSize < op.minSize) return fail(EINVAL);
    if (userSize > op.size) this.checkZeroedTail(pid, arg + BigInt(op.size), BigInt(userSize - op.size));
    const known = Math.min(userSize, op.size);
    // copy_from_user: a fail_usercopy site.
    if (this.failNth.point(this.tid)) fail(EFAULT);
    const bytes = whole?.subarray(0, known) ?? this.memory.read(pid, arg, known) ?? fail(EFAULT);
    const buf = Buffer.alloc(op.size);
    bytes.copy(buf);
    (buf as Buffer & { userSize?: number }).userSize = userSize;
    return buf;
  }

  /** check_zeroed_user: E2BIG at the first non-zero byte, EFAULT at a fault before one. */
  private checkZeroedTail(pid: number, addr: bigint, length: bigint): void {
    let at = addr;
    const end = addr + length;
    while (at < end) {
      const chunkEnd = alignDown(at, PAGE_SIZE) + PAGE_SIZE < end ? alignDown(at, PAGE_SIZE) + PAGE_SIZE : end;
      const chunk = this.memory.read(pid, at, Number(chunkEnd - at)) ?? fail(EFAULT);
      if (chunk.some((b) => b !== 0)) fail(E2BIG);
      at = chunkEnd;
    }
  }

  /** iommufd_ucmd_respond: copy the command back, as much of it as the user's size holds. */
  private respond(call: IoctlCall, buf: Buffer): void {
    const userSize = (buf as Buffer & { userSize?: number }).userSize ?? buf.length;
    if (this.failNth.point(this.tid)) fail(EFAULT);
    if (!this.memory.write(call.pid, call.arg, buf.subarray(0, Math.min(userSize, buf.length)))) fail(EFAULT);
  }

  // ---- commands ------------------------------------------------------------------------------------------

  private destroy(ctx: Context, buf: Buffer): number {
    const id = buf.readUInt32LE(OFF.destroy.id);
    const obj = ctx.objects.get(id) ?? fail(ENOENT);
    switch (obj.kind) {
      case 'ioas': {
        // A device's hwpt or an access holds the IOAS: iommufd_object_remove finds it still referenced.
        if (this.ioasHeld(ctx, obj.name)) fail(EBUSY);
        if ((this.live.current.ioases[obj.name]?.areas.count ?? 0) > 0)
          this.run({ op: 'ioas_unmap', ioas: obj.name, iova: 0n, length: U64_MAX, all: true });
        ctx.objects.delete(id);
        return 0;
      }
      case 'selftest':
        this.hwpt.destroySelftest(ctx.objects, id);
        return 0;
      case 'hwpt':
        return this.hwpt.destroy(ctx.objects, id);
      default:
        // The bound device is held by the selftest object until it goes.
        return fail(EBUSY);
    }
  }

  private ioasAlloc(ctx: Context, call: IoctlCall, buf: Buffer): number {
    if (buf.readUInt32LE(OFF.ioasAlloc.flags) !== 0) fail(EOPNOTSUPP);
    const name = `ioas${++this.names.ioas}`;
    this.run({ op: 'ioas_alloc', ioas: name, ctx: ctx.name });
    const id = this.allocId(ctx, { kind: 'ioas', name });
    buf.writeUInt32LE(id, OFF.ioasAlloc.outIoasId);
    try {
      this.respond(call, buf);
    } catch (err) {
      // The kernel aborts the object when the answer cannot be written; the model's IOAS stays, empty.
      ctx.objects.delete(id);
      throw err;
    }
    return 0;
  }

  private ioasOf(ctx: Context, id: number): string {
    const obj = ctx.objects.get(id);
    return obj?.kind === 'ioas' ? obj.name : fail(ENOENT);
  }

  private iovaRanges(ctx: Context, call: IoctlCall, buf: Buffer): number {
    const o = OFF.iovaRanges;
    if (buf.readUInt32LE(o.reserved) !== 0) fail(EOPNOTSUPP);
    const ioas = this.live.current.ioases[this.ioasOf(ctx, buf.readUInt32LE(o.ioasId))] ?? fail(ENOENT);
    const max = buf.readUInt32LE(o.numIovas);
    const out = buf.readBigUInt64LE(o.allowedIovas);
    // The allowed IOVAs are the holes between the reserved ranges over the whole 64-bit space.
    const holes = reservedHoles(ioas);
    holes.forEach(([start, last], i) => {
      if (i >= max) return;
      const elm = Buffer.alloc(IOVA_RANGE_SIZE);
      elm.writeBigUInt64LE(start, 0);
      elm.writeBigUInt64LE(last, 8);
      if (this.failNth.point(this.tid)) fail(EFAULT);
      if (!this.memory.write(call.pid, out + BigInt(i * IOVA_RANGE_SIZE), elm)) fail(EFAULT);
    });
    buf.writeUInt32LE(holes.length, o.numIovas);
    buf.writeBigUInt64LE(ioas.iovaAlignment, o.outIovaAlignment);
    this.respond(call, buf);
    if (holes.length > max) fail(EMSGSIZE);
    return 0;
  }

  private allowIovas(ctx: Context, call: IoctlCall, buf: Buffer): number {
    const o = OFF.allowIovas;
    if (buf.readUInt32LE(o.reserved) !== 0) fail(EOPNOTSUPP);
    const ioas = this.ioasOf(ctx, buf.readUInt32LE(o.ioasId));
    const count = buf.readUInt32LE(o.numIovas);
    const at = buf.readBigUInt64LE(o.allowedIovas);
    const ranges: [bigint, bigint][] = [];
    for (let i = 0; i < count; i++) {
      if (this.failNth.point(this.tid)) fail(EFAULT);
      const elm = this.memory.read(call.pid, at + BigInt(i * IOVA_RANGE_SIZE), IOVA_RANGE_SIZE) ?? fail(EFAULT);
      ranges.push([elm.readBigUInt64LE(0), elm.readBigUInt64LE(8)]);
    }
    this.run({ op: 'ioas_allow_iovas', ioas, ranges });
    return 0;
  }

  /** The checks MAP and COPY make before looking the IOAS up, so an unknown id answers in the same order. */
  private mapPrechecks(flags: number, values: readonly bigint[]): void {
    if (values.some((v) => v >= U64_MAX)) fail(EOVERFLOW);
    if (this.options.fixes.includes('map-requires-prot') && !(flags & (MAP_READABLE | MAP_WRITEABLE))) fail(EINVAL);
  }

  private ioasMap(ctx: Context, call: IoctlCall, buf: Buffer): number {
    const o = OFF.map;
    const flags = buf.readUInt32LE(o.flags);
    if (flags & ~MAP_FLAGS || buf.readUInt32LE(o.reserved) !== 0) fail(EOPNOTSUPP);
    const uptr = buf.readBigUInt64LE(o.userVa);
    const length = buf.readBigUInt64LE(o.length);
    const iova = buf.readBigUInt64LE(o.iova);
    const id = buf.readUInt32LE(o.ioasId);
    // The kernel checks the iova field for overflow even when it is only an output (no FIXED_IOVA).
    if (ctx.objects.get(id)?.kind !== 'ioas' || !(flags & MAP_FIXED_IOVA)) this.mapPrechecks(flags, [iova, length]);
    const ioas = this.ioasOf(ctx, id);
    this.declare(call.pid, uptr, length);
    this.kernelOutput({ field: 'iova', pid: call.pid, addr: call.arg + BigInt(o.iova), length: 8 });
    const rec = this.run({
      op: 'ioas_map',
      ioas,
      pid: String(call.pid),
      uptr,
      length,
      iova: flags & MAP_FIXED_IOVA ? iova : null,
      read: (flags & MAP_READABLE) !== 0,
      write: (flags & MAP_WRITEABLE) !== 0,
    });
    buf.writeBigUInt64LE(rec.outputs['iova'] as bigint, o.iova);
    this.respond(call, buf);
    return 0;
  }

  private ioasCopy(ctx: Context, call: IoctlCall, buf: Buffer): number {
    const o = OFF.copy;
    const flags = buf.readUInt32LE(o.flags);
    if (flags & ~MAP_FLAGS) fail(EOPNOTSUPP);
    const length = buf.readBigUInt64LE(o.length);
    const srcIova = buf.readBigUInt64LE(o.srcIova);
    const dstIova = buf.readBigUInt64LE(o.dstIova);
    const srcId = buf.readUInt32LE(o.srcIoasId);
    const dstId = buf.readUInt32LE(o.dstIoasId);
    const known = ctx.objects.get(srcId)?.kind === 'ioas' && ctx.objects.get(dstId)?.kind === 'ioas';
    if (!known || !(flags & MAP_FIXED_IOVA)) this.mapPrechecks(flags, [length, srcIova, dstIova]);
    const src = this.ioasOf(ctx, srcId);
    const dst = this.ioasOf(ctx, dstId);
    this.kernelOutput({ field: 'iova', pid: call.pid, addr: call.arg + BigInt(o.dstIova), length: 8 });
    const rec = this.run({
      op: 'ioas_copy',
      src,
      dst,
      src_iova: srcIova,
      length,
      dst_iova: flags & MAP_FIXED_IOVA ? dstIova : null,
      read: (flags & MAP_READABLE) !== 0,
      write: (flags & MAP_WRITEABLE) !== 0,
    });
    buf.writeBigUInt64LE(rec.outputs['iova'] as bigint, o.dstIova);
    this.respond(call, buf);
    return 0;
  }

  private ioasUnmap(ctx: Context, call: IoctlCall, buf: Buffer): number {
    const o = OFF.unmap;
    const ioas = this.ioasOf(ctx, buf.readUInt32LE(o.ioasId));
    const iova = buf.readBigUInt64LE(o.iova);
    const length = buf.readBigUInt64LE(o.length);
    const all = iova === 0n && length === U64_MAX;
    this.kernelOutput({ field: 'unmapped', pid: call.pid, addr: call.arg + BigInt(o.length), length: 8 });
    const rec = this.run({ op: 'ioas_unmap', ioas, iova, length, all });
    buf.writeBigUInt64LE(rec.outputs['unmapped'] as bigint, o.length);
    this.respond(call, buf);
    return 0;
  }

  /**
   * IOMMU_OPTION: RLIMIT_MODE on the context (setting it needs CAP_SYS_RESOURCE and a context without
   * objects), HUGE_PAGES on an IOAS; val64 is copied back on success only.
   */
  private option(ctx: Context, call: IoctlCall, buf: Buffer): number {
    const o = OFF.option;
    if (buf.readUInt16LE(o.reserved) !== 0) fail(EOPNOTSUPP);
    const optionId = buf.readUInt32LE(o.optionId);
    const opcode = buf.readUInt16LE(o.op);
    const objectId = buf.readUInt32LE(o.objectId);
    const val = buf.readBigUInt64LE(o.val64);
    let out = val;
    if (optionId === OPTION_RLIMIT_MODE) {
      this.current = 'IOMMU_OPTION(RLIMIT_MODE)';
      if (objectId !== 0) fail(EOPNOTSUPP);
      if (opcode === OPTION_OP_GET) out = ctx.account === 'mm' ? 1n : 0n;
      else if (opcode === OPTION_OP_SET) {
        if (!this.credentials(call.pid).capSysResource) fail(EPERM);
        if (ctx.objects.size) fail(EBUSY);
        if (val > 1n) fail(EINVAL);
        this.setAccountMode(ctx, val === 1n ? 'mm' : 'user');
      } else fail(EOPNOTSUPP);
    } else if (optionId === OPTION_HUGE_PAGES) {
      this.current = 'IOMMU_OPTION(HUGE_PAGES)';
      const ioas = this.ioasOf(ctx, objectId);
      if (opcode === OPTION_OP_GET) out = this.live.current.ioases[ioas]?.disableLargePages ? 0n : 1n;
      else if (opcode === OPTION_OP_SET) {
        if (val > 1n) fail(EINVAL);
        this.run({ op: 'ioas_huge_pages', ioas, enable: val === 1n });
      } else fail(EOPNOTSUPP);
    } else fail(EOPNOTSUPP);
    const back = Buffer.alloc(8);
    back.writeBigUInt64LE(out);
    if (!this.memory.write(call.pid, call.arg + BigInt(o.val64), back)) fail(EFAULT);
    return 0;
  }

  /**
   * The accounting mode of a context without objects changes: the model's context is opened with a mode
   * for good, so an empty one is left behind and a fresh one, in the new mode, stands for the file.
   */
  private setAccountMode(ctx: Context, account: 'user' | 'mm'): void {
    if (account === ctx.account) return;
    const name = `ctx${++this.names.ctx}`;
    this.run({ op: 'open', ctx: name, pid: String(ctx.opener), account, vfio_type1: false });
    ctx.name = name;
    ctx.account = account;
  }

  /** The selftest access behind descriptor `fd` of the caller (iommufd_access_get): EBADFD otherwise. */
  private accessFileOf(pid: number, fd: number): AccessFile & { access: string } {
    const ino = socketInodeOf(pid, fd);
    const file = ino === null ? undefined : this.accessFiles.get(ino);
    if (file?.access == null) return fail(EBADFD);
    return file as AccessFile & { access: string };
  }

  private testCmd(ctx: Context, call: IoctlCall, buf: Buffer): number {
    const sub = buf.readUInt32LE(OFF.test.op);
    const id = buf.readUInt32LE(OFF.test.id);
    switch (sub) {
      case TEST_OP_SET_TEMP_MEMORY_LIMIT: {
        const limit = buf.readUInt32LE(OFF.test.memoryLimit.limit);
        // It must hold one element of a batch (an unsigned long and a u32).
        if (limit < 12) fail(EINVAL);
        this.run({ op: 'temp_memory_limit', bytes: BigInt(limit) });
        return 0;
      }
      case TEST_OP_ADD_RESERVED:
        return this.addReserved(ctx, buf, id);
      case TEST_OP_CREATE_ACCESS:
        return this.createAccess(ctx, call, buf, id);
      case TEST_OP_ACCESS_PAGES:
        return this.accessPages(call, buf, id);
      case TEST_OP_DESTROY_ACCESS_PAGES: {
        const file = this.accessFileOf(call.pid, id);
        const itemId = buf.readUInt32LE(OFF.test.destroyAccessPages.accessPagesId);
        const item = file.items.get(itemId) ?? fail(ENOENT);
        file.items.delete(itemId);
        this.run({ op: 'access_unpin', access: file.access, iova: item[0], length: item[1] });
        return 0;
      }
      case TEST_OP_ACCESS_RW:
        return this.accessRw(call, buf, id);
      case TEST_OP_ACCESS_REPLACE_IOAS: {
        const file = this.accessFileOf(call.pid, id);
        const target = ctx.objects.get(buf.readUInt32LE(OFF.test.accessReplaceIoas.ioasId));
        if (target?.kind !== 'ioas') fail(ENOENT);
        this.run({ op: 'access_replace', access: file.access, ioas: (target as { name: string }).name });
        return 0;
      }
      case TEST_OP_MOCK_DOMAIN_FLAGS:
      case TEST_OP_MOCK_DOMAIN: {
        const flags = sub === TEST_OP_MOCK_DOMAIN_FLAGS ? buf.readUInt32LE(OFF.test.mockDomain.devFlags) : 0;
        // HUGE_IOVA adds the mock's large IO page; the smallest page, which alone sets alignment, stays.
        return this.hwpt.mockDomain(ctx.objects, call, buf, id, flags);
      }
      case TEST_OP_MOCK_DOMAIN_REPLACE:
        return this.hwpt.replace(ctx.objects, call, buf, id);
      case TEST_OP_MD_CHECK_MAP: {
        const hwpt = ctx.objects.get(id);
        if (hwpt?.kind !== 'hwpt') return fail(ENOENT);
        const c = OFF.test.checkMap;
        const iova = buf.readBigUInt64LE(c.iova);
        const length = buf.readBigUInt64LE(c.length);
        const uptr = buf.readBigUInt64LE(c.uptr);
        if (iova % MOCK_IO_PAGE_SIZE || length % MOCK_IO_PAGE_SIZE || uptr % MOCK_IO_PAGE_SIZE) fail(EINVAL);
        if (uptr + length > U64_MAX) fail(EINVAL);
        this.requireMapped(call.pid, uptr, length);
        const rec = this.run({ op: 'check_map', ioas: hwpt.ioas, iova, length, pid: String(call.pid), uptr });
        return rec.outputs['ok'] === true ? 0 : fail(EINVAL);
      }
      case TEST_OP_MD_CHECK_REFS: {
        const c = OFF.test.checkRefs;
        const length = buf.readBigUInt64LE(c.length);
        const uptr = buf.readBigUInt64LE(c.uptr);
        const refs = buf.readUInt32LE(c.refs);
        if (length % PAGE_SIZE || uptr % PAGE_SIZE || uptr + length > U64_MAX) fail(EINVAL);
        this.requireMapped(call.pid, uptr, length);
        const rec = this.run({ op: 'check_refs', pid: String(call.pid), uptr, length, refs });
        return rec.outputs['ok'] === true ? 0 : fail(EINVAL);
      }
      default: {
        const name = TEST_OP_NAMES[sub];
        if (name !== undefined) this.count(this.counts.unserved, `IOMMU_TEST_CMD(${name})`);
        return fail(EOPNOTSUPP);
      }
    }
  }

  /** ADD_RESERVED: a zero length is EINVAL, a range past 2^64 EOVERFLOW, then the IOAS is looked up. */
  private addReserved(ctx: Context, buf: Buffer, id: number): number {
    const start = buf.readBigUInt64LE(OFF.test.addReserved.start);
    const length = buf.readBigUInt64LE(OFF.test.addReserved.length);
    if (length === 0n) fail(EINVAL);
    if (start + length - 1n > U64_MAX) fail(EOVERFLOW);
    const ioas = this.ioasOf(ctx, id);
    this.run({ op: 'add_reserved', ioas, start, last: start + length - 1n });
    return 0;
  }

  /**
   * CREATE_ACCESS: flags first; then the descriptor (the library prepares the file at the lowest free
   * number, as get_unused_fd_flags picks it); then the access, which takes an object id, attached to the
   * IOAS. The answer carries the descriptor; on any failure the library closes it again.
   */
  private createAccess(ctx: Context, call: IoctlCall, buf: Buffer, ioasId: number): number {
    const flags = buf.readUInt32LE(OFF.test.createAccess.flags);
    if (flags & ~ACCESS_CREATE_NEEDS_PIN_PAGES) fail(EOPNOTSUPP);
    if (call.aux === 0) throw new NeedFd();
    const fd = call.aux - 1;
    const ino = socketInodeOf(call.pid, fd);
    const file = ino === null ? undefined : this.accessFiles.get(ino);
    if (ino === null || file === undefined || file.ctx !== null) return fail(ENOMEM);
    const target = ctx.objects.get(ioasId);
    // iommufd_access_create takes an id before the attach looks the IOAS up; a failed attach frees it.
    if (target?.kind !== 'ioas') return fail(ENOENT);
    const access = `acc${++this.names.access}`;
    const needsPinPages = (flags & ACCESS_CREATE_NEEDS_PIN_PAGES) !== 0;
    this.run({
      op: 'access_create',
      access,
      ioas: target.name,
      needs_pin_pages: needsPinPages,
      ...(this.lifetime ? { pid: String(call.pid), fd } : {}),
    });
    const id = this.allocId(ctx, { kind: 'access', name: access, file: ino });
    buf.writeUInt32LE(fd, OFF.test.createAccess.outAccessFd);
    try {
      this.respond(call, buf);
    } catch (err) {
      // The library closes the descriptor again: in version 2 that close is the access's release.
      if (this.lifetime) this.step({ op: 'close', pid: String(call.pid), fd });
      else this.step({ op: 'access_destroy', access });
      ctx.objects.delete(id);
      throw err;
    }
    Object.assign(file, { ctx, access, id });
    ctx.accessFiles++;
    return 0;
  }

  /**
   * ACCESS_PAGES: pin [iova, iova + length) through the access and remember it as an item whose id the
   * answer carries. The driver's check of the pinned pages against `uptr` is not made (see the README).
   */
  private accessPages(call: IoctlCall, buf: Buffer, fd: number): number {
    const o = OFF.test.accessPages;
    const flags = buf.readUInt32LE(o.flags);
    const iova = buf.readBigUInt64LE(o.iova);
    const length = buf.readBigUInt64LE(o.length);
    if (length > ACCESS_MAX_LENGTH) fail(ENOMEM);
    if (flags & ~(ACCESS_WRITE | ACCESS_SYZ)) fail(EOPNOTSUPP);
    const file = this.accessFileOf(call.pid, fd);
    if (flags & ACCESS_SYZ) {
      this.count(this.counts.unserved, 'IOMMU_TEST_CMD(ACCESS_PAGES with MOCK_FLAGS_ACCESS_SYZ)');
      return fail(EOPNOTSUPP);
    }
    this.run({
      op: 'access_pin',
      access: file.access,
      pid: String(call.pid),
      iova,
      length,
      write: (flags & ACCESS_WRITE) !== 0,
    });
    const item = file.nextItem++;
    file.items.set(item, [iova, length]);
    buf.writeUInt32LE(item, o.outAccessPagesId);
    try {
      this.respond(call, buf);
    } catch (err) {
      file.items.delete(item);
      this.step({ op: 'access_unpin', access: file.access, iova, length });
      throw err;
    }
    return 0;
  }

  /**
   * ACCESS_RW: a write copies the user's bytes in first (EFAULT), a read copies the result out after.
   * MOCK_ACCESS_RW_SLOW_PATH forces the kernel's page-by-page copy: the bytes moved are the same, and
   * the model takes its own path.
   */
  private accessRw(call: IoctlCall, buf: Buffer, fd: number): number {
    const o = OFF.test.accessRw;
    const iova = buf.readBigUInt64LE(o.iova);
    const length = buf.readBigUInt64LE(o.length);
    const uptr = buf.readBigUInt64LE(o.uptr);
    const flags = buf.readUInt32LE(o.flags);
    if (length > ACCESS_MAX_LENGTH) fail(ENOMEM);
    if (flags & ~(ACCESS_RW_WRITE | ACCESS_RW_SLOW_PATH | ACCESS_SYZ)) fail(EOPNOTSUPP);
    const file = this.accessFileOf(call.pid, fd);
    const write = (flags & ACCESS_RW_WRITE) !== 0;
    // The bounce buffer (kvzalloc) and, for a write, its copy_from_user: fail-nth sites.
    if (this.failNth.point(this.tid)) fail(ENOMEM);
    if (write && this.failNth.point(this.tid)) fail(EFAULT);
    const data = write ? (this.memory.read(call.pid, uptr, Number(length)) ?? fail(EFAULT)) : null;
    if (flags & ACCESS_SYZ) {
      this.count(this.counts.unserved, 'IOMMU_TEST_CMD(ACCESS_RW with MOCK_FLAGS_ACCESS_SYZ)');
      return fail(EOPNOTSUPP);
    }
    // The model keeps its own copy of user bytes: what the program wrote since is written to it first,
    // and what the access writes reaches the program's memory after (the pinned pages are its pages).
    const ioas = this.live.current.accesses[file.access]?.ioas ?? null;
    const pieces = ioas === null || length === 0n ? [] : this.userPieces(ioas, iova, length);
    for (const p of pieces) {
      const real = this.memory.read(p.pid, p.addr, p.length);
      if (real === null || this.modelHolds(p.pid, p.addr, real)) continue;
      this.step({ op: 'write', pid: String(p.pid), addr: p.addr, data: real.toString('hex') });
    }
    if (!write) this.kernelOutput({ field: 'data', pid: call.pid, addr: uptr, length: Number(length) });
    const rec = this.run({
      op: 'access_rw',
      access: file.access,
      pid: String(call.pid),
      iova,
      length,
      write,
      data: data ? data.toString('hex') : null,
      kthread: false,
    });
    if (!write) {
      const out = Buffer.from(String(rec.outputs['data'] ?? ''), 'hex');
      if (this.failNth.point(this.tid) || !this.memory.write(call.pid, uptr, out)) fail(EFAULT);
    } else if (data !== null) {
      for (const p of pieces) this.memory.write(p.pid, p.addr, data.subarray(p.at, p.at + p.length));
    }
    return 0;
  }

  /** Whether the model's copy of the process's memory at `addr` already reads as `bytes`. */
  private modelHolds(pid: number, addr: bigint, bytes: Buffer): boolean {
    const st = this.live.current;
    const mm = st.processes[String(pid)]?.mm;
    if (mm === undefined) return false;
    const seen = new Uint8Array(bytes.length);
    return copyFromMm(st, mm, addr, seen) === 0 && bytes.equals(seen);
  }

  /**
   * The user memory behind [iova, iova + length) of an IOAS, area by area: the process whose memory the
   * area's pages were pinned from, the address (pages->uptr plus the area's start byte), and where the
   * piece sits in the transfer.
   */
  private userPieces(
    ioasName: string,
    iova: bigint,
    length: bigint,
  ): { pid: number; addr: bigint; at: number; length: number }[] {
    const st = this.live.current;
    const io = st.ioases[ioasName];
    if (io === undefined) return [];
    const last = iova + length - 1n;
    const out: { pid: number; addr: bigint; at: number; length: number }[] = [];
    for (let e = itreeIterFirst(io.areas, iova, last); e; e = itreeIterNext(io.areas, e, iova, last)) {
      const area = st.areas[e.id];
      const pages = area?.pages == null ? undefined : st.pages[area.pages];
      const pid = Number(pages?.sourcePid);
      if (area === undefined || pages === undefined || !Number.isSafeInteger(pid)) continue;
      const from = iova > area.iova ? iova : area.iova;
      const to = last < area.lastIova ? last : area.lastIova;
      const addr = pages.uptr + areaStartByte(area, PAGE_SIZE) + (from - area.iova);
      const bytes = to - from + 1n;
      // The process the pages came from has gone; a live one that maps the same shared object holds them.
      const there = this.modelAlive(pid)
        ? null
        : this.sharedFrames.elsewhere(pid, addr, bytes, (other) => this.modelAlive(other));
      out.push({ pid: there?.pid ?? pid, addr: there?.addr ?? addr, at: Number(from - iova), length: Number(bytes) });
    }
    return out;
  }

  // ---- file lifetime (version 2) -------------------------------------------------------------------------

  /** The follower of the program's descriptors, lent what it needs of this session. */
  private followDescriptors(): FileLifetime {
    return new FileLifetime({
      state: () => this.live.current,
      fileOfInode: (ino) => {
        const ctx = this.contexts.get(ino);
        if (ctx) return `ctx:${ctx.name}`;
        const access = this.accessFiles.get(ino)?.access;
        return access ? `access:${access}` : null;
      },
      fileStillHeld: (file) => {
        for (const [ino, ctx] of this.contexts) if (`ctx:${ctx.name}` === file) return socketHeldAnywhere(ino);
        for (const [ino, f] of this.accessFiles)
          if (f.access !== null && `access:${f.access}` === file) return socketHeldAnywhere(ino);
        return false;
      },
      step: (op) => void this.step(op),
      ensureProcess: (pid) => this.ensureProcess(pid),
      inheritsCredentials: (parent, child) => {
        const model = this.live.current.processes[String(parent)];
        const real = this.credentials(child);
        return model !== undefined && model.uid === real.uid && model.capIpcLock === real.capIpcLock;
      },
      forked: (parent, child) => {
        this.processes.add(child);
        this.sharedFrames.forked(parent, child);
        this.declared.set(
          child,
          (this.declared.get(parent) ?? []).map(([a, b]) => [a, b]),
        );
        const pending = this.pendingDrops.get(child) ?? [];
        this.pendingDrops.delete(child);
        for (const d of pending) this.addressSpaceDropped(child, d.start, d.end - d.start, d.privateOnly);
      },
    });
  }

  /** Bring the model level with the program's descriptors, then forget the files the model released. */
  private syncDescriptors(): void {
    this.lifetime?.sync();
    const open = this.live.current.openFiles;
    for (const [ino, file] of this.accessFiles) {
      if (file.access === null || open[`access:${file.access}`] !== undefined) continue;
      this.accessFiles.delete(ino);
      file.ctx?.objects.delete(file.id);
      if (file.ctx) file.ctx.accessFiles--;
    }
    for (const [ino, ctx] of this.contexts) if (open[`ctx:${ctx.name}`] === undefined) this.contexts.delete(ino);
  }

  // ---- the model -----------------------------------------------------------------------------------------

  private allocId(ctx: Context, obj: IdObject): number {
    return this.allocIdIn(ctx.objects, obj);
  }

  private allocIdIn(objects: Map<number, IdObject>, obj: IdObject): number {
    let id = 1;
    while (objects.has(id)) id++;
    objects.set(id, obj);
    return id;
  }

  /**
   * The exit of every process of the run that has lost its address space since the last call: the
   * model's `exit` (exit_mm, then the process's files) before anything that may follow it, so that pages
   * pinned later from its memory fail as mmget_not_zero fails, and a context its exit releases is torn
   * down with no mm, as the kernel's do_exit orders it (exit_mm before exit_files).
   */
  private reapExited(caller: number | null = null): void {
    // Version 2 follows exits, with the descriptors they close, through /proc (file-lifetime.ts).
    if (this.lifetime) return;
    let exits = 0;
    for (const pid of this.running) {
      // The caller of an ioctl is alive: only the others cost a read of /proc.
      if (pid === caller || hasAddressSpace(pid)) continue;
      this.running.delete(pid);
      this.memory.drop(pid);
      const was = this.current;
      this.current = `exit of process ${pid}`;
      try {
        this.step({ op: 'exit', pid: String(pid) });
      } finally {
        this.current = was;
      }
      exits++;
    }
    // Record mode does not follow descriptors: its contexts live until the end (version 1's meaning).
    if (exits === 0 || this.options.kernelAnswers) return;
    // exit_files: a file the exits left with no descriptor was released before the exit completed. Its
    // end-of-file may not have reached the server yet; it then finds nothing left to release.
    for (const ino of [...this.accessFiles.keys()]) if (!socketHeldAnywhere(ino)) this.releaseAccessFile(ino);
    for (const [ino, ctx] of [...this.contexts]) if (ctx.open && !socketHeldAnywhere(ino)) this.release(ino);
  }

  /** The process's credentials as /proc gives them, with the capabilities the run grants added. */
  private credentials(pid: number): ReturnType<typeof credentialsOf> {
    const cred = credentialsOf(pid);
    const granted = this.options.grantCaps ?? [];
    return {
      ...cred,
      capIpcLock: cred.capIpcLock || granted.includes('CAP_IPC_LOCK'),
      capSysResource: cred.capSysResource || granted.includes('CAP_SYS_RESOURCE'),
    };
  }

  private ensureProcess(pid: number): void {
    if (this.processes.has(pid)) return;
    // A process met fresh (not as a fork) inherits no declarations: nothing its drops could apply to.
    this.pendingDrops.delete(pid);
    const cred = this.credentials(pid);
    this.step({
      op: 'process',
      pid: String(pid),
      uid: cred.uid,
      memlock: cred.memlock ?? 'unlimited',
      cap_ipc_lock: cred.capIpcLock,
    });
    this.processes.add(pid);
    this.running.add(pid);
  }

  /**
   * Declare to the model, with `mmap`, the parts of [uptr, uptr + length) the process has mapped and that
   * were not declared yet; each piece covers whole pages of its VMA's page size.
   */
  private declare(pid: number, uptr: bigint, length: bigint): void {
    const end = uptr + length > U64_MAX ? U64_MAX : uptr + length;
    if (length === 0n) return;
    const done = this.declared.get(pid) ?? [];
    this.declared.set(pid, done);
    for (const vma of vmasIn(pid, alignDown(uptr, PAGE_SIZE), alignUp(end, PAGE_SIZE))) {
      const unit = BigInt(vma.pageSize);
      const huge = HUGE_OF[vma.pageSize];
      // A VMA GUP cannot pin (no access, or an unknown page size) is left out: the model then faults too.
      if (huge === undefined || !vma.readable) continue;
      let start = alignDown(uptr > vma.start ? uptr : vma.start, unit);
      const stop = alignUp(end < vma.end ? end : vma.end, unit);
      for (const [ds, de] of done) {
        if (de <= start || ds >= stop) continue;
        if (ds > start) this.declarePiece(pid, vma, start, ds, huge, done);
        start = de > start ? de : start;
      }
      if (start < stop) this.declarePiece(pid, vma, start, stop, huge, done);
    }
  }

  /**
   * Declare [start, stop) of one VMA. A piece of a shared object maps the frames the model already has for
   * that part of the object (another process declared it, or the same object through another address),
   * and is then declared in every other live process of the run that maps the same part, so that each of
   * them sees what the others write and pins the same frames.
   */
  private declarePiece(
    pid: number,
    vma: Vma,
    start: bigint,
    stop: bigint,
    huge: '4K' | '2M' | '1G',
    done: [bigint, bigint][],
  ): void {
    const shared = vma.shared;
    if (shared === null) {
      this.mmapOp(pid, start, stop - start, huge, vma.writable, done, false, null);
      return;
    }
    const offset = shared.offset + (start - vma.start);
    const live = (pfn: number): boolean => frameAt(this.live.current, pfn) !== undefined;
    for (const piece of this.sharedFrames.pieces(shared.object, offset, stop - start, live)) {
      this.mmapOp(pid, start + piece.at, piece.length, huge, vma.writable, done, true, piece.pfns);
    }
    const mm = this.live.current.processes[String(pid)]?.mm;
    this.sharedFrames.record(pid, { start, end: stop, object: shared.object, offset }, (addr) =>
      mm === undefined ? undefined : vaToPfn(this.live.current, mm, Number(addr / PAGE_SIZE)),
    );
    for (const other of this.processes) {
      if (other === pid || !this.modelAlive(other)) continue;
      for (const v of sharedVmasOf(other, shared.object)) {
        // The same bytes of the object in the other process's address space.
        const theirs = v.shared?.offset ?? 0n;
        const lo = offset > theirs ? offset : theirs;
        const hi = bigMin(offset + (stop - start), theirs + (v.end - v.start));
        if (lo < hi) this.declare(other, v.start + (lo - theirs), hi - lo);
      }
    }
  }

  /** Whether the model still has the process alive (it has not exited there). */
  private modelAlive(pid: number): boolean {
    const proc = this.live.current.processes[String(pid)];
    return proc !== undefined && !proc.exited;
  }

  private mmapOp(
    pid: number,
    addr: bigint,
    length: bigint,
    huge: '4K' | '2M' | '1G',
    writable: boolean,
    done: [bigint, bigint][],
    shared: boolean,
    pfns: [number, number][] | null,
  ): void {
    this.step({ op: 'mmap', pid: String(pid), addr, length, huge, prot: writable ? 'rw' : 'r', pfns, shared });
    done.push([addr, addr + length]);
    done.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  /** The selftest's checks look every user page up: a hole is EFAULT. Declares what is mapped. */
  private requireMapped(pid: number, uptr: bigint, length: bigint): void {
    let at = uptr;
    for (const vma of vmasIn(pid, uptr, uptr + length)) {
      if (vma.start > at) fail(EFAULT);
      at = vma.end;
    }
    if (at < uptr + length) fail(EFAULT);
    this.declare(pid, uptr, length);
  }

  /** Run an iommufd op; its errno becomes the ioctl's. */
  private run(op: TraceOp): OpRecord {
    const rec = this.step(op);
    if (rec.errno !== null) fail(-errnoFromName(rec.errno));
    return rec;
  }

  /**
   * Run one op on the model and write it to the trace. While the caller's fail-nth counter is armed, a
   * `fault` op with its value goes first, and the fault points the op reached are counted off after.
   */
  private step(op: TraceOp): OpRecord {
    const armedWith = MACHINE_OPS.has(op.op) ? 0 : this.failNth.value(this.tid);
    if (armedWith === 0) return this.record(op);
    this.record({ op: 'fault', nth: armedWith, site: null });
    const rec = this.record(op);
    this.failNth.afterOp(this.tid, armedWith, this.live.lastOpFaultPoints);
    return rec;
  }

  /**
   * A write to /proc/PID/task/TID/fail-nth by task `tid` (proc_fail_nth_write): kstrtouint_from_user copies
   * the text in (a fail_usercopy site of the writer's own counter), then the target task's counter is set.
   * The byte count, or a negative errno.
   */
  failNthWrite(pid: number, tid: number, target: number, addr: bigint, count: number): number {
    if (this.failNth.point(tid)) return -EFAULT;
    const text = this.memory.read(pid, addr, Math.min(count, 23));
    if (text === null) return -EFAULT;
    const n = parseFailNth(text);
    if (n < 0) return n;
    this.failNth.set(target, n);
    return count;
  }

  /**
   * A read of fail-nth at `offset` (proc_fail_nth_read): the target's counter as "%u\n", read before the
   * copy to the reader, whose copy_to_user is itself a site of the reader's counter. Bytes read, or a
   * negative errno.
   */
  failNthRead(pid: number, tid: number, target: number, addr: bigint, count: number, offset: bigint): number {
    const text = Buffer.from(`${this.failNth.value(target)}\n`, 'latin1');
    if (offset >= BigInt(text.length) || count === 0) return 0;
    const piece = text.subarray(Number(offset), Number(offset) + Math.min(count, text.length - Number(offset)));
    if (this.failNth.point(tid)) return -EFAULT;
    return this.memory.write(pid, addr, piece) ? piece.length : -EFAULT;
  }

  /**
   * The text of an emulated /proc file for task `tid` of process `pid` (proc-files.ts), written to
   * [addr, addr + size) of the caller: `status` of process `target` (thread `targetTid`, or 0 for the
   * process's own file) or `meminfo`. The reply's ret is the text's length; a length above `size` means the
   * buffer was too small and nothing was written. NOT_OURS: the file is not emulated (a process the model
   * does not know, or one the real /proc cannot show): the library opens the real one.
   */
  procFile(
    pid: number,
    tid: number,
    file: 'status' | 'meminfo',
    target: number,
    targetTid: number,
    addr: bigint,
    size: number,
  ): IoctlReply {
    // What the caller reads must follow everything that happened before its open: exits, releases.
    this.tid = tid;
    if (this.lifetime) this.syncDescriptors();
    else this.reapExited(pid);
    const text = file === 'meminfo' ? this.meminfoText() : this.statusText(target, targetTid);
    if (text === null) return { ret: -1, err: NOT_OURS };
    const bytes = Buffer.from(text, 'latin1');
    if (bytes.length > size) return { ret: bytes.length, err: 0 };
    this.memory.beginRequest(pid, 0n);
    return this.memory.write(pid, addr, bytes) ? { ret: bytes.length, err: 0 } : { ret: -1, err: EFAULT };
  }

  /** /proc/TARGET[/task/TID]/status with the model's charges of the process's mm; null unless the model has it. */
  private statusText(target: number, targetTid: number): string | null {
    const real = realStatusText(target, targetTid);
    if (real === null) return null;
    // /proc/TID/status of a thread shows its process's mm: the thread group is what the model knows.
    const tgid = /^Tgid:\s*(\d+)$/m.exec(real)?.[1];
    const proc = tgid === undefined ? undefined : this.live.current.processes[tgid];
    const mm = proc === undefined || !this.processes.has(Number(tgid)) ? undefined : this.live.current.mms[proc.mm];
    return mm === undefined ? null : statusWithCharges(real, mm, Number(PAGE_SIZE));
  }

  /** /proc/meminfo less the pinned huge pages of the default size that no mapping holds any more. */
  private meminfoText(): string {
    const real = realMeminfoText();
    const pool = poolPageSize(real);
    if (pool === null) return real;
    const hugeVmas = new Map<string, Vma[]>();
    const bytes = pool === '2M' ? 2 * 1024 * 1024 : 1024 * 1024 * 1024;
    const held = pinnedHugePagesUnmapped(this.live.current, pool, (pid, start, end) => {
      let vmas = hugeVmas.get(pid);
      if (vmas === undefined) {
        vmas = vmasIn(Number(pid), 0n, U64_MAX).filter((v) => v.pageSize === bytes);
        hugeVmas.set(pid, vmas);
      }
      return vmas.some((v) => v.start <= start && end <= v.end);
    });
    return meminfoWithHeld(real, held);
  }

  /** Write one op, run, to the trace. */
  private record(op: TraceOp): OpRecord {
    const line = (this.options.preamble ?? Session.PREAMBLE).length + 2 + this.lines.length;
    const rec = this.live.step(op, line);
    const expect: Record<string, unknown> = { errno: rec.errno ?? 'ok' };
    for (const field of ['iova', 'unmapped', 'data'] as const) {
      if (rec.outputs[field] !== undefined) expect[field] = rec.outputs[field];
    }
    const written = { ...op, expect } as TraceOp;
    if (op.op === 'check_map' || op.op === 'check_refs') delete (written as { expect?: unknown }).expect;
    this.lines.push(serializeOp(written));
    this.written.push(written);
    this.reportFindings(rec);
    return rec;
  }

  private reportFindings(rec: OpRecord | null): void {
    const where = rec ? `op ${rec.index} ${rec.op}${this.current ? ` (${this.current})` : ''}` : 'teardown';
    const print = (label: string, f: Finding): void =>
      this.options.onFinding?.(`ioptrace: ${label} in ${f.fn} at ${where}, line ${f.line}: ${f.detail}`);
    const { violations, warns } = this.live;
    for (; this.reported.violations < violations.length; this.reported.violations++) {
      const v = violations[this.reported.violations];
      if (v) print(`VIOLATION ${v.kind}`, v);
    }
    for (; this.reported.warns < warns.length; this.reported.warns++) {
      const w = warns[this.reported.warns];
      if (w) print('WARNING', w);
    }
  }

  private count(map: Map<string, number>, name: string, by = 1): void {
    map.set(name, (map.get(name) ?? 0) + by);
  }
}
