// SPDX-License-Identifier: GPL-2.0-only
/**
 * The caller's memory and what the kernel knows of the caller, read from /proc as the kernel would see it:
 * copy_from_user / copy_to_user through /proc/PID/mem (an address the process has not mapped, or not
 * readable or writable, is EFAULT, as the kernel's user copy faults there), the VMAs from /proc/PID/smaps,
 * the credentials from /proc/PID/status and /proc/PID/limits.
 *
 * The server is the program's ancestor, so the kernel lets it open /proc/PID/mem of every process of the
 * run (ptrace access mode ATTACH).
 */
import { closeSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, writeSync } from 'node:fs';

/** No user address reaches 2^53 (x86-64 user space ends below 2^57), so file offsets stay exact numbers. */
const USER_LIMIT = BigInt(Number.MAX_SAFE_INTEGER);

/** A mapping of /proc/PID/maps: [start, end) and whether user copies may read or write it. */
interface Mapping {
  start: number;
  end: number;
  read: boolean;
  write: boolean;
}

/** The mappings of a process as last read, at which address-space generation, and whether in this request. */
interface KnownMaps {
  mappings: Mapping[];
  /** The library's count (protocol.h, mm_gen) when they were read; 0n: not to be kept past this request. */
  generation: bigint;
  readThisRequest: boolean;
}

/** Bytes a read of /proc/PID/maps takes at once; a longer one takes several. */
const MAPS_CHUNK = 64 * 1024;

export class UserMemory {
  private readonly fds = new Map<number, number>();
  /** Open /proc/PID/maps files: re-read from offset 0, the kernel generates the text anew each time. */
  private readonly mapsFds = new Map<number, number>();
  /** The mappings user copies check: /proc/PID/mem itself ignores protections (FOLL_FORCE). */
  private readonly maps = new Map<number, KnownMaps>();
  private caller = 0;
  private callerGeneration = 0n;
  private mapsText = Buffer.alloc(MAPS_CHUNK);

  /**
   * A new request of `pid`, whose library stamped it with its address-space generation. The caller's
   * mappings read at that same generation are kept: no call that changes mappings went through the library
   * since. Every other process's are read again when needed, as is the caller's at generation 0 (a library
   * that does not count).
   */
  beginRequest(pid: number, generation: bigint): void {
    const kept = this.maps.get(pid);
    this.maps.clear();
    this.caller = pid;
    this.callerGeneration = generation;
    if (kept !== undefined && generation !== 0n && kept.generation === generation) {
      kept.readThisRequest = false;
      this.maps.set(pid, kept);
    }
  }

  /** Bytes at [addr, addr + length) of `pid`, or null where copy_from_user would fault. */
  read(pid: number, addr: bigint, length: number): Buffer | null {
    if (length === 0) return Buffer.alloc(0);
    if (!this.allowed(pid, addr, BigInt(length), 'read')) return null;
    const fd = this.fdOf(pid);
    if (fd === null) return null;
    const out = Buffer.alloc(length);
    try {
      const n = readSync(fd, out, 0, length, Number(addr));
      return n === length ? out : null;
    } catch {
      return null;
    }
  }

  /** Write `data` at `addr` of `pid`; false where copy_to_user would fault. */
  write(pid: number, addr: bigint, data: Uint8Array): boolean {
    if (data.length === 0) return true;
    if (!this.allowed(pid, addr, BigInt(data.length), 'write')) return false;
    const fd = this.fdOf(pid);
    if (fd === null) return false;
    try {
      return writeSync(fd, data, 0, data.length, Number(addr)) === data.length;
    } catch {
      return false;
    }
  }

  /** Forget a process (it exited, or exec'd: its old mem file no longer describes it). */
  drop(pid: number): void {
    for (const files of [this.fds, this.mapsFds]) {
      const fd = files.get(pid);
      if (fd !== undefined) closeSync(fd);
      files.delete(pid);
    }
    this.maps.delete(pid);
  }

  close(): void {
    for (const pid of [...this.fds.keys()]) this.drop(pid);
  }

  /**
   * Whether every byte of [addr, addr + length) lies in mappings with that permission. A refusal is only
   * ever made on mappings read in this request: the ones kept from an earlier request miss what the C
   * library mapped on its own (malloc's mmap, brk), which the library does not count.
   */
  protected allowed(pid: number, addr: bigint, length: bigint, perm: 'read' | 'write'): boolean {
    const end = addr + length;
    if (end > USER_LIMIT) return false;
    let known = this.maps.get(pid);
    if (known === undefined) known = this.readMaps(pid);
    if (covered(known.mappings, Number(addr), Number(end), perm)) return true;
    if (known.readThisRequest) return false;
    return covered(this.readMaps(pid).mappings, Number(addr), Number(end), perm);
  }

  private readMaps(pid: number): KnownMaps {
    const known: KnownMaps = {
      mappings: parseMaps(this.mapsTextOf(pid)),
      generation: pid === this.caller ? this.callerGeneration : 0n,
      readThisRequest: true,
    };
    this.maps.set(pid, known);
    return known;
  }

  /** /proc/PID/maps now, as latin1 text; empty when the process is gone (every copy then faults). */
  private mapsTextOf(pid: number): string {
    let fd = this.mapsFds.get(pid);
    try {
      if (fd === undefined) {
        fd = openSync(`/proc/${pid}/maps`, 'r');
        this.mapsFds.set(pid, fd);
      }
      let length = 0;
      for (;;) {
        if (length === this.mapsText.length) {
          const larger = Buffer.alloc(this.mapsText.length * 2);
          this.mapsText.copy(larger);
          this.mapsText = larger;
        }
        const n = readSync(fd, this.mapsText, length, this.mapsText.length - length, length);
        if (n === 0) break;
        length += n;
      }
      return this.mapsText.toString('latin1', 0, length);
    } catch {
      return '';
    }
  }

  private fdOf(pid: number): number | null {
    let fd = this.fds.get(pid);
    if (fd === undefined) {
      try {
        fd = openSync(`/proc/${pid}/mem`, 'r+');
      } catch {
        return null;
      }
      this.fds.set(pid, fd);
    }
    return fd;
  }
}

const MAPS_LINE = /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])/;

/** Whether [at, end) lies in `mappings` (sorted, as the kernel lists them), every byte with `perm`. */
function covered(mappings: readonly Mapping[], at: number, end: number, perm: 'read' | 'write'): boolean {
  for (const m of mappings) {
    if (m.end <= at) continue;
    if (m.start > at || !m[perm]) return false;
    at = m.end;
    if (at >= end) return true;
  }
  return false;
}

/**
 * The mappings of a /proc/PID/maps text. Addresses become numbers: exact for every user address (below
 * USER_LIMIT); the vsyscall page above it only needs to sort after them.
 */
function parseMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  for (let at = 0; at < text.length;) {
    const eol = text.indexOf('\n', at);
    const line = eol < 0 ? text.slice(at) : text.slice(at, eol);
    at = eol < 0 ? text.length : eol + 1;
    const m = MAPS_LINE.exec(line);
    if (m)
      out.push({
        start: parseInt(m[1] ?? '', 16),
        end: parseInt(m[2] ?? '', 16),
        read: m[3] === 'r',
        write: m[4] === 'w',
      });
  }
  return out;
}

/** One VMA of /proc/PID/smaps: [start, end), writable, the kernel page size backing it. */
export interface Vma {
  start: bigint;
  end: bigint;
  readable: boolean;
  writable: boolean;
  pageSize: number;
  /**
   * A shared mapping (perms `s`: MAP_SHARED, anonymous ones included, which shmem backs): the object
   * every mapping of it shares, as `DEV:INODE`, and the byte offset of the VMA's start in that object.
   * Null for a private mapping.
   */
  shared: { object: string; offset: bigint } | null;
}

/** start-end perms offset dev inode: the fields of a maps (and smaps header) line. */
const VMA_LINE = /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])[x-]([ps]) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)/;

function vmaOf(head: RegExpExecArray): Vma {
  return {
    start: BigInt(`0x${head[1]}`),
    end: BigInt(`0x${head[2]}`),
    readable: head[3] === 'r',
    writable: head[4] === 'w',
    pageSize: 4096,
    shared: head[5] === 's' ? { object: `${head[7]}:${head[8]}`, offset: BigInt(`0x${head[6]}`) } : null,
  };
}

/** The VMAs of `pid` that intersect [start, end), in address order. */
export function vmasIn(pid: number, start: bigint, end: bigint): Vma[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return [];
  }
  const out: Vma[] = [];
  let current: Vma | null = null;
  for (const line of text.split('\n')) {
    const head = VMA_LINE.exec(line);
    if (head) {
      const vma = vmaOf(head);
      current = vma.end > start && vma.start < end ? vma : null;
      if (current) out.push(current);
    } else if (current && line.startsWith('KernelPageSize:')) {
      current.pageSize = Number(/(\d+)/.exec(line)?.[1] ?? '4') * 1024;
    }
  }
  return out;
}

/** The shared VMAs of `pid` over `object` (DEV:INODE), from /proc/PID/maps; none once it is gone. */
export function sharedVmasOf(pid: number, object: string): Vma[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/maps`, 'utf8');
  } catch {
    return [];
  }
  const out: Vma[] = [];
  for (const line of text.split('\n')) {
    const head = VMA_LINE.exec(line);
    if (head && head[5] === 's' && `${head[7]}:${head[8]}` === object) out.push(vmaOf(head));
  }
  return out;
}

/**
 * Whether the process still has its address space. False once exit_mm has run (do_exit drops the mm
 * before it closes the files, so a context the exit releases is seen after this turns false: /proc/PID/stat
 * then shows a virtual size of 0), when it is a zombie, or when it has been reaped.
 */
export function hasAddressSpace(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // The fields after the command name, which may itself hold spaces and parentheses: state is field 3,
  // vsize field 23.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  return state !== 'Z' && state !== 'X' && fields[20] !== '0';
}

/** What iommufd reads of the caller's credentials. */
export interface Credentials {
  uid: number;
  capIpcLock: boolean;
  /** CAP_SYS_RESOURCE, which IOMMU_OPTION needs to change the accounting mode. */
  capSysResource: boolean;
  /** RLIMIT_MEMLOCK soft limit in bytes; null is unlimited. */
  memlock: bigint | null;
}

const CAP_IPC_LOCK = 14n;
const CAP_SYS_RESOURCE = 24n;

/**
 * Whether the socket with inode `ino` still exists, i.e. some descriptor (or a message in flight) still
 * holds its file: a Unix socket leaves /proc/net/unix when its last file reference is released, which a
 * close() has done before it returns. One read, where scanning every /proc/PID/fd costs a readlink per
 * descriptor of the machine; that scan remains for a machine without /proc/net/unix.
 */
export function socketHeldAnywhere(ino: bigint): boolean {
  let table: string | null = null;
  try {
    table = readFileSync('/proc/net/unix', 'latin1');
  } catch {
    // no /proc/net/unix: scan the descriptors
  }
  if (table !== null) {
    const wanted = String(ino);
    // Columns: Num RefCount Protocol Flags Type St Inode [Path]
    return table.split('\n').some((line) => line.trim().split(/\s+/)[6] === wanted);
  }
  const target = `socket:[${ino}]`;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === target) return true;
      } catch {
        // closed meanwhile
      }
    }
  }
  return false;
}

/** The inode of the socket behind descriptor `fd` of `pid` (null when it is not a socket, or not open). */
export function socketInodeOf(pid: number, fd: number): bigint | null {
  try {
    const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
    return m?.[1] === undefined ? null : BigInt(m[1]);
  } catch {
    return null;
  }
}

export function credentialsOf(pid: number): Credentials {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? '0');
  const capEff = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)/m.exec(status)?.[1] ?? '0'}`);
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
  const soft = /^Max locked memory\s+(\S+)/m.exec(limits)?.[1] ?? 'unlimited';
  return {
    uid,
    capIpcLock: ((capEff >> CAP_IPC_LOCK) & 1n) === 1n,
    capSysResource: ((capEff >> CAP_SYS_RESOURCE) & 1n) === 1n,
    memlock: soft === 'unlimited' ? null : BigInt(soft),
  };
}

/** The real /proc/PID/status (of thread TID when not 0), or null when /proc cannot show it. */
export function realStatusText(pid: number, tid: number): string | null {
  try {
    return readFileSync(tid === 0 ? `/proc/${pid}/status` : `/proc/${pid}/task/${tid}/status`, 'latin1');
  } catch {
    return null;
  }
}

/** The real /proc/meminfo. */
export function realMeminfoText(): string {
  return readFileSync('/proc/meminfo', 'latin1');
}

/** A copy to user memory the model would have made: where, and the bytes. */
export interface CapturedWrite {
  pid: number;
  addr: bigint;
  data: Buffer;
}

/**
 * The program's memory as `ioptrace record` lets the model see it: readable as the kernel reads it, but
 * the kernel writes the outputs, not the model. A write is kept (what the model would have answered, to
 * compare with what the kernel wrote) and succeeds where copy_to_user would.
 */
export class CapturingMemory extends UserMemory {
  readonly captured: CapturedWrite[] = [];

  override write(pid: number, addr: bigint, data: Uint8Array): boolean {
    if (data.length === 0) return true;
    if (!this.allowed(pid, addr, BigInt(data.length), 'write')) return false;
    this.captured.push({ pid, addr, data: Buffer.from(data) });
    return true;
  }
}

const PAGEMAP_PRESENT = 1n << 63n;
const PAGEMAP_EXCLUSIVE = 1n << 56n;
const PAGEMAP_PFN = (1n << 55n) - 1n;

/**
 * The physical layout of [addr, addr + length) of `pid` (page-aligned) as /proc/PID/pagemap gives it, as
 * `[first_pfn, count]` runs of 4 KiB frames; null unless every page is present, mapped by this process
 * alone and shows its PFN (the kernel hides PFNs from readers without CAP_SYS_ADMIN: they read as 0).
 */
export function physicalRuns(pid: number, addr: bigint, length: bigint, pageSize = 4096n): [number, number][] | null {
  const pages = Number(length / pageSize);
  if (pages === 0) return null;
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/pagemap`, 'r');
  } catch {
    return null;
  }
  try {
    const entries = Buffer.alloc(pages * 8);
    if (readSync(fd, entries, 0, entries.length, Number((addr / pageSize) * 8n)) !== entries.length) return null;
    const runs: [number, number][] = [];
    for (let i = 0; i < pages; i++) {
      const entry = entries.readBigUInt64LE(i * 8);
      const pfn = Number(entry & PAGEMAP_PFN);
      if (!(entry & PAGEMAP_PRESENT) || !(entry & PAGEMAP_EXCLUSIVE) || pfn === 0) return null;
      const last = runs[runs.length - 1];
      if (last !== undefined && last[0] + last[1] === pfn) last[1]++;
      else runs.push([pfn, 1]);
    }
    return runs;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}
