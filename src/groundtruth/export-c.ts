// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace export-c`: a trace as a standalone C program for a real kernel with CONFIG_IOMMUFD_TEST. The
 * program is native/export-c/runtime.c (the supervisor, the forked trace processes, fd passing, the
 * uAPI layouts) followed by this trace's op table; it prints one JSON line per op (kernel-run.ts reads them).
 *
 * Who issues each op is decided as the model decides it (src/replay/dispatch.ts implicitCaller): an op with
 * a caller runs in that process; the others run in the process that opened the context of the object they
 * name. What user space cannot do is reported per op as not exportable and the op is not performed: an
 * explicit physical layout, a kernel-thread caller, a named fault site, a generic (non-mock) domain; and so
 * is an ioctl the ground-truth kernel (6.12.118) does not have (map_file and its memfd, change_process, the HW
 * queue ops).
 */
import { readFileSync } from 'node:fs';
import { KTHREAD, U64_MAX } from '../events/trace.js';
import type { TraceOp } from '../events/trace.js';
import type { ParsedTrace } from '../replay/parse.js';
import { nativeFile } from './paths.js';

export interface NotExportable {
  /** Op index, 1-based as in replay reports. */
  op: number;
  line: number;
  name: string;
  reason: string;
}

export interface ExportedProgram {
  /** The whole C source. */
  source: string;
  ops: number;
  notExportable: NotExportable[];
}

/** The most trace processes one program runs (the runtime's MAX_PROCS). */
export const MAX_PROCESSES = 64;

export const REASONS = {
  kthread: 'kernel-thread caller: a user-space program cannot issue a call from a kernel thread',
  pfns: 'explicit physical layout (pfns): user space cannot choose the PFNs behind its memory',
  huge1g: '1G huge pages: the VM has no 1G hugetlb pool',
  site: 'a named fault site: fail-nth counts every fault point of the kernel and cannot pick one site',
  generic: 'a generic domain (kind, page sizes or aperture): the selftest driver has only the mock domain',
  rwKthread: 'the kthread flag of access_rw: the selftest refuses IOMMUFD_ACCESS_RW_KTHREAD from user space',
  unpin: 'unpins a range that no single earlier access_pin of this access pinned: the selftest unpins by pin id',
  hugeRefs: 'check_refs on huge pages: MD_CHECK_REFS skips compound pages, so the kernel cannot check it that way',
  noCtx: 'no context is open yet: the selftest command needs an iommufd fd',
  crossCtx:
    'copies between IOASes of two contexts: IOMMU_IOAS_COPY looks both ids up in the one iommufd it is issued on',
  tooMany: `more than ${MAX_PROCESSES} processes`,
  fileLifetime:
    'a file lifetime op of trace version 2 (fork, close, dup, send_fd): export-c does not follow descriptors',
  changeProcess:
    'IOMMU_IOAS_CHANGE_PROCESS is not in the ground-truth kernel (6.12.118): the ioctl came in v6.13 (829ed626499c), a 6.12 kernel answers ENOTTY',
  mapFile:
    'IOMMU_IOAS_MAP_FILE is not in the ground-truth kernel (6.12.118): the ioctl came in v6.13 (f4986a72d6e4); export-c makes no memfds for it',
  hwQueue:
    'IOMMUFD_CMD_HW_QUEUE_ALLOC is not in the ground-truth kernel (6.12.118): HW queues and locked areas came in v6.17 (27b77ea5feaa), and the mock vIOMMU they need is not exported',
  noCForm: 'export-c has no C form of this op yet (ADD_RESERVED, ...)',
} as const;

interface Proc {
  slot: number;
  alive: boolean;
  maps: { addr: bigint; length: bigint; huge: boolean }[];
}

interface Pin {
  slot: number;
  access: string;
  iova: bigint;
  length: bigint;
  open: boolean;
}

/** One op record of runtime.c's `struct op` (fields in its order), as the C table and the compact form carry it. */
export interface COp {
  kind: OpKind;
  caller: number;
  a: number;
  b: number;
  x: bigint;
  y: bigint;
  z: bigint;
  flags: number;
  text: string | null;
  /** The ranges of ioas_allow_iovas ([start, last] pairs; `n` is their count). */
  ranges: readonly (readonly [bigint, bigint])[] | null;
  n: number;
  /** The domain slots check_map checks (`n` is their count). */
  domains: readonly number[] | null;
}

/** One row of a trace's op table: the op's index (1-based), trace line, name and record. */
export interface OpRow {
  index: number;
  line: number;
  name: string;
  op: COp;
}

/** runtime.c's enum op_kind, in its order (the compact form names kinds by these names). */
export const OP_KINDS = [
  'K_SKIP',
  'K_PROCESS',
  'K_MMAP',
  'K_MUNMAP',
  'K_WRITE',
  'K_READ',
  'K_EXIT',
  'K_RLIMIT',
  'K_FAULT',
  'K_TEMP_LIMIT',
  'K_OPEN',
  'K_IOAS_ALLOC',
  'K_IOAS_MAP',
  'K_IOAS_UNMAP',
  'K_IOAS_COPY',
  'K_ALLOW_IOVAS',
  'K_HUGE_PAGES',
  'K_DOMAIN_ATTACH',
  'K_DOMAIN_DETACH',
  'K_ACCESS_CREATE',
  'K_ACCESS_DESTROY',
  'K_ACCESS_PIN',
  'K_ACCESS_UNPIN',
  'K_ACCESS_RW',
  'K_ACCESS_REPLACE',
  'K_VFIO_UNMAP',
  'K_CHECK_MAP',
  'K_CHECK_REFS',
] as const;
export type OpKind = (typeof OP_KINDS)[number];

const u64 = (v: bigint): string => `0x${(v & U64_MAX).toString(16)}ULL`;
const cString = (s: string): string => JSON.stringify(s);

class Exporter {
  readonly procs = new Map<string, Proc>();
  readonly ctxs = new Map<string, { slot: number; pid: string }>();
  readonly ioases = new Map<string, { slot: number; ctx: string }>();
  readonly domains = new Map<string, { slot: number; ioas: string; attached: boolean }>();
  readonly accesses = new Map<string, { slot: number; ioas: string }>();
  readonly pins: Pin[] = [];
  readonly rows: OpRow[] = [];
  readonly notExportable: NotExportable[] = [];
  private procSlots = 0;

  private ctxOfIoas(ioas: string): string | undefined {
    return this.ioases.get(ioas)?.ctx;
  }

  private ctxSlot(ctx: string | undefined): number {
    return ctx === undefined ? 0 : (this.ctxs.get(ctx)?.slot ?? 0);
  }

  /** The process slot of a named caller, or a reason it cannot be one. */
  private callerSlot(pid: string | undefined): number | string {
    if (pid === undefined) return -1;
    if (pid === KTHREAD) return REASONS.kthread;
    const p = this.procs.get(pid);
    if (p === undefined) return -1;
    // A dead process issues nothing; in the kernel the call comes from another holder of the fd (the
    // supervisor), which is what the model's dead caller amounts to: a task whose mm is not the pages' mm.
    return p.alive ? p.slot : -1;
  }

  /** The caller of an op that names none: the process that opened the context (dispatch.ts implicitCaller). */
  private implicitPid(op: TraceOp): string | undefined {
    const ofIoas = (ioas: string): string | undefined => this.ctxs.get(this.ctxOfIoas(ioas) ?? '')?.pid;
    // A caller the trace names wins (pid is accepted on every op), as in dispatch.
    if (op.op !== 'process' && 'pid' in op && typeof op.pid === 'string') return op.pid;
    switch (op.op) {
      case 'ioas_alloc':
        return this.ctxs.get(op.ctx)?.pid;
      case 'ioas_unmap':
      case 'ioas_allow_iovas':
      case 'ioas_huge_pages':
      case 'vfio_unmap':
      case 'domain_attach':
      case 'access_create':
        return ofIoas(op.ioas);
      case 'ioas_copy':
        return ofIoas(op.dst);
      case 'access_destroy':
      case 'access_unpin':
      case 'access_replace': {
        const a = this.accesses.get(op.access);
        return a ? ofIoas(a.ioas) : undefined;
      }
      case 'domain_detach': {
        const d = this.domains.get(op.domain);
        return d ? ofIoas(d.ioas) : undefined;
      }
      default:
        return 'pid' in op && typeof op.pid === 'string' ? op.pid : undefined;
    }
  }

  private row(index: number, line: number, name: string, c: COp): void {
    this.rows.push({ index, line, name, op: c });
  }

  private skip(index: number, line: number, name: string, reason: string): void {
    this.notExportable.push({ op: index, line, name, reason });
    this.row(index, line, name, { ...EMPTY, kind: 'K_SKIP', text: reason });
  }

  private slotOf<T extends { slot: number }>(map: Map<string, T>, name: string, make: (slot: number) => T): T {
    const found = map.get(name);
    if (found) return found;
    const made = make(map.size);
    map.set(name, made);
    return made;
  }

  add(index: number, line: number, op: TraceOp): void {
    const name = op.op;
    const reason = this.reasonFor(op);
    if (reason !== null) {
      this.skip(index, line, name, reason);
      return;
    }
    const callerOrReason = this.callerSlot(this.implicitPid(op));
    if (typeof callerOrReason === 'string') {
      this.skip(index, line, name, callerOrReason);
      return;
    }
    const caller = callerOrReason;
    const c: COp = { ...EMPTY, caller };
    switch (op.op) {
      case 'process': {
        if (this.procSlots >= MAX_PROCESSES) {
          this.skip(index, line, name, REASONS.tooMany);
          return;
        }
        const p: Proc = { slot: this.procSlots++, alive: true, maps: [] };
        this.procs.set(op.pid, p);
        const memlock = op.memlock === 'unlimited' ? U64_MAX : op.memlock;
        Object.assign(c, { kind: 'K_PROCESS', caller: -1, b: p.slot, x: BigInt(op.uid), y: memlock });
        c.flags = op.cap_ipc_lock ? 1 : 0;
        break;
      }
      case 'mmap':
        this.procs.get(op.pid)?.maps.push({ addr: op.addr, length: op.length, huge: op.huge !== '4K' });
        Object.assign(c, { kind: 'K_MMAP', x: op.addr, y: op.length });
        c.flags = (op.prot === 'r' ? 1 : 0) | (op.huge === '2M' ? 2 : 0) | (op.shared ? 4 : 0);
        break;
      case 'munmap':
        Object.assign(c, { kind: 'K_MUNMAP', x: op.addr, y: op.length });
        break;
      case 'write':
        Object.assign(c, { kind: 'K_WRITE', x: op.addr, text: op.data });
        break;
      case 'read':
        Object.assign(c, { kind: 'K_READ', x: op.addr, y: op.length });
        break;
      case 'exit': {
        const p = this.procs.get(op.pid);
        if (p) p.alive = false;
        Object.assign(c, { kind: 'K_EXIT', caller: -1, b: p?.slot ?? 0 });
        break;
      }
      case 'rlimit':
        Object.assign(c, { kind: 'K_RLIMIT', x: op.memlock === 'unlimited' ? U64_MAX : op.memlock });
        break;
      case 'fault':
        Object.assign(c, { kind: 'K_FAULT', caller: -1, x: BigInt(op.nth) });
        break;
      case 'temp_memory_limit':
        Object.assign(c, { kind: 'K_TEMP_LIMIT', caller: -1, x: op.bytes });
        break;
      case 'open': {
        const ctx = this.slotOf(this.ctxs, op.ctx, (slot) => ({ slot, pid: op.pid }));
        Object.assign(c, { kind: 'K_OPEN', caller: -1, a: ctx.slot });
        c.flags = (op.account === 'mm' ? 1 : 0) | (op.vfio_type1 ? 2 : 0);
        break;
      }
      case 'ioas_alloc': {
        const io = this.slotOf(this.ioases, op.ioas, (slot) => ({ slot, ctx: op.ctx }));
        Object.assign(c, { kind: 'K_IOAS_ALLOC', a: this.ctxSlot(op.ctx), b: io.slot });
        break;
      }
      case 'ioas_map':
        Object.assign(c, { kind: 'K_IOAS_MAP', ...this.ioasFields(op.ioas), x: op.uptr, y: op.length });
        c.z = op.iova ?? 0n;
        c.flags = (op.iova !== null ? 1 : 0) | (op.write ? 2 : 0) | (op.read ? 4 : 0);
        break;
      case 'ioas_unmap':
        Object.assign(c, { kind: 'K_IOAS_UNMAP', ...this.ioasFields(op.ioas), x: op.iova, y: op.length });
        break;
      case 'ioas_copy':
        if (this.ctxOfIoas(op.src) !== this.ctxOfIoas(op.dst)) {
          this.skip(index, line, name, REASONS.crossCtx);
          return;
        }
        Object.assign(c, { kind: 'K_IOAS_COPY', ...this.ioasFields(op.dst), x: op.src_iova, y: op.length });
        c.n = this.ioases.get(op.src)?.slot ?? 0;
        c.z = op.dst_iova ?? 0n;
        c.flags = (op.dst_iova !== null ? 1 : 0) | (op.write ? 2 : 0) | (op.read ? 4 : 0);
        break;
      case 'ioas_allow_iovas':
        Object.assign(c, { kind: 'K_ALLOW_IOVAS', ...this.ioasFields(op.ioas), ranges: op.ranges });
        c.n = op.ranges.length;
        break;
      case 'ioas_huge_pages':
        Object.assign(c, { kind: 'K_HUGE_PAGES', ...this.ioasFields(op.ioas), x: op.enable ? 1n : 0n });
        break;
      case 'domain_attach': {
        const d = this.slotOf(this.domains, op.domain, (slot) => ({ slot, ioas: op.ioas, attached: true }));
        d.attached = true;
        d.ioas = op.ioas;
        Object.assign(c, { kind: 'K_DOMAIN_ATTACH', ...this.ioasFields(op.ioas), n: d.slot });
        break;
      }
      case 'domain_detach': {
        const d = this.domains.get(op.domain);
        if (d) d.attached = false;
        Object.assign(c, { kind: 'K_DOMAIN_DETACH', a: this.ctxSlot(this.ctxOfIoas(d?.ioas ?? '')), n: d?.slot ?? 0 });
        break;
      }
      case 'access_create': {
        const a = this.slotOf(this.accesses, op.access, (slot) => ({ slot, ioas: op.ioas }));
        a.ioas = op.ioas;
        Object.assign(c, { kind: 'K_ACCESS_CREATE', caller: -1, ...this.ioasFields(op.ioas) });
        Object.assign(c, { n: c.b, b: a.slot, flags: op.needs_pin_pages ? 1 : 0 });
        break;
      }
      case 'access_destroy':
        Object.assign(c, { kind: 'K_ACCESS_DESTROY', ...this.accessFields(op.access) });
        for (const p of this.pins) if (p.access === op.access) p.open = false;
        break;
      case 'access_pin': {
        const pin: Pin = { slot: this.pins.length, access: op.access, iova: op.iova, length: op.length, open: true };
        this.pins.push(pin);
        Object.assign(c, { kind: 'K_ACCESS_PIN', ...this.accessFields(op.access), x: op.iova, y: op.length });
        Object.assign(c, { n: pin.slot, flags: op.write ? 1 : 0 });
        break;
      }
      case 'access_unpin': {
        // The selftest unpins by pin id, the model the oldest pin of exactly this range that is still held
        // (selftest-access.ts accessUnpin). Which earlier pins succeeded and which were already undone is
        // known only when the program runs, so the program gets every candidate, oldest first, and takes
        // the first one that holds its pin (runtime.c K_ACCESS_UNPIN).
        const candidates = this.pins.filter(
          (p) => p.open && p.access === op.access && p.iova === op.iova && p.length === op.length,
        );
        if (candidates.length === 0) {
          this.skip(index, line, name, REASONS.unpin);
          return;
        }
        Object.assign(c, { kind: 'K_ACCESS_UNPIN', ...this.accessFields(op.access) });
        Object.assign(c, { domains: candidates.map((p) => p.slot), n: candidates.length });
        break;
      }
      case 'access_rw':
        Object.assign(c, { kind: 'K_ACCESS_RW', ...this.accessFields(op.access), x: op.iova, y: op.length });
        Object.assign(c, { flags: op.write ? 1 : 0, text: op.data });
        break;
      case 'access_replace': {
        Object.assign(c, { kind: 'K_ACCESS_REPLACE', ...this.accessFields(op.access) });
        c.n = this.ioases.get(op.ioas)?.slot ?? 0;
        const a = this.accesses.get(op.access);
        if (a && this.ioases.has(op.ioas)) a.ioas = op.ioas;
        break;
      }
      case 'vfio_unmap':
        Object.assign(c, { kind: 'K_VFIO_UNMAP', ...this.ioasFields(op.ioas), x: op.iova, y: op.length });
        break;
      case 'check_map': {
        const attached = [...this.domains.values()].filter((d) => d.attached && d.ioas === op.ioas);
        Object.assign(c, { kind: 'K_CHECK_MAP', ...this.ioasFields(op.ioas), x: op.iova, y: op.length });
        Object.assign(c, { z: op.uptr, domains: attached.map((d) => d.slot), n: attached.length });
        break;
      }
      case 'check_refs': {
        if (this.ctxs.size === 0) {
          this.skip(index, line, name, REASONS.noCtx);
          return;
        }
        const maps = this.procs.get(op.pid)?.maps ?? [];
        const end = op.uptr + op.length;
        if (maps.some((m) => m.huge && m.addr < end && op.uptr < m.addr + m.length)) {
          this.skip(index, line, name, REASONS.hugeRefs);
          return;
        }
        Object.assign(c, { kind: 'K_CHECK_REFS', x: op.uptr, y: op.length, z: BigInt(op.refs) });
        break;
      }
      default:
        // Said, never run as something else: before this, such an op became an empty row and the program
        // died on it.
        this.skip(index, line, name, REASONS.noCForm);
        return;
    }
    this.row(index, line, name, c);
  }

  private ioasFields(ioas: string): { a: number; b: number } {
    return { a: this.ctxSlot(this.ctxOfIoas(ioas)), b: this.ioases.get(ioas)?.slot ?? 0 };
  }

  private accessFields(access: string): { a: number; b: number } {
    const a = this.accesses.get(access);
    return { a: this.ctxSlot(this.ctxOfIoas(a?.ioas ?? '')), b: a?.slot ?? 0 };
  }

  /** Why an op cannot run from user space, whoever issues it; null when it can. */
  private reasonFor(op: TraceOp): string | null {
    if (op.op === 'fork' || op.op === 'close' || op.op === 'dup' || op.op === 'send_fd') return REASONS.fileLifetime;
    if (op.op === 'change_process') return REASONS.changeProcess;
    if (op.op === 'memfd' || op.op === 'map_file') return REASONS.mapFile;
    if (op.op === 'hw_queue_alloc' || op.op === 'hw_queue_destroy') return REASONS.hwQueue;
    if (op.op === 'mmap' && op.pfns !== null) return REASONS.pfns;
    if (op.op === 'mmap' && op.huge === '1G') return REASONS.huge1g;
    if (op.op === 'fault' && op.site !== null) return REASONS.site;
    if (op.op === 'domain_attach' && (op.kind !== 'mock' || op.pgsizes !== null || op.aperture !== null))
      return REASONS.generic;
    if (op.op === 'access_rw' && op.kthread) return op.pid === KTHREAD ? REASONS.kthread : REASONS.rwKthread;
    return null;
  }
}

const EMPTY: COp = {
  kind: 'K_SKIP',
  caller: -1,
  a: 0,
  b: 0,
  x: 0n,
  y: 0n,
  z: 0n,
  flags: 0,
  text: null,
  ranges: null,
  n: 0,
  domains: null,
};

/** The op table of a trace: one row per op, and the ops user space cannot perform (rows of kind K_SKIP). */
export function exportOps(trace: ParsedTrace): { rows: OpRow[]; notExportable: NotExportable[] } {
  const ex = new Exporter();
  trace.entries.forEach((entry, i) => ex.add(i + 1, entry.line, entry.op));
  return { rows: ex.rows, notExportable: ex.notExportable };
}

/** The C initializers of the table: helper arrays (ranges, domain lists) first, then the rows. */
function cTable(rows: readonly OpRow[]): { arrays: string[]; rows: string[] } {
  const arrays: string[] = [];
  const lines = rows.map(({ index, line, name, op: c }) => {
    let ranges = 'NULL';
    let domains = 'NULL';
    if (c.ranges !== null) {
      ranges = `R${index}`;
      const body = c.ranges.map(([s, l]) => `{ ${u64(s)}, ${u64(l)} }`).join(', ');
      arrays.push(`static const struct x_range ${ranges}[] = { ${body || '{ 0, 0 }'} };`);
    }
    if (c.domains !== null) {
      domains = `D${index}`;
      arrays.push(`static const int ${domains}[] = { ${c.domains.join(', ') || '0'} };`);
    }
    const text = c.text === null ? 'NULL' : cString(c.text);
    return `\t{ ${c.kind}, ${line}, ${cString(name)}, ${c.caller}, ${c.a}, ${c.b}, ${u64(c.x)}, ${u64(c.y)}, ${u64(c.z)}, ${c.flags}u, ${text}, ${ranges}, ${c.n}, ${domains} }, /* op ${index} */`;
  });
  return { arrays, rows: lines };
}

/** The C program of a trace; `name` is printed in its begin/end lines. */
export function exportC(trace: ParsedTrace, name: string): ExportedProgram {
  const { rows, notExportable } = exportOps(trace);
  const table = cTable(rows);
  const head = [
    `/* Generated by ioptrace export-c from ${name.replace(/\*\//g, '* /')}: ${trace.entries.length} ops. */`,
    `#define TRACE_NAME ${cString(name)}`,
    `#define N_OPS ${trace.entries.length}`,
    '',
  ];
  const runtime = readFileSync(nativeFile('export-c', 'runtime.c'), 'utf8');
  const tail = [
    '',
    '/* ---- the trace ---- */',
    ...table.arrays,
    'static const struct op TRACE_OPS[] = {',
    ...table.rows,
    '\t{ 0 }',
    '};',
    '',
    'int main(void)',
    '{',
    '\treturn run_trace(TRACE_NAME, TRACE_OPS, N_OPS);',
    '}',
    '',
  ];
  return {
    source: [...head, runtime, ...tail].join('\n'),
    ops: trace.entries.length,
    notExportable,
  };
}
