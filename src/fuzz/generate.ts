// SPDX-License-Identifier: GPL-2.0-only
/**
 * The trace generator of `ioptrace fuzz`: from a seed, a valid trace (docs/trace-format.md) that drives the
 * iopt_pages code through the states where its defects live.
 *
 * What it builds, in this order: processes (memlock limits, CAP_IPC_LOCK now and then) with 1 to 3 mappings
 * each (4 KiB or 2 MiB pages, read-only now and then, physical layouts from explicit `pfns` runs that make
 * pages contiguous, split huge pages into separate blocks, or share frames between processes as fork does);
 * one or two iommufd contexts (accounting per user or per mm, VFIO type1 mode); IOASes. Then a random walk
 * over: maps (fixed IOVAs, often back to back so that accesses cross area boundaries, or allocated; sub-page
 * offsets; read-only), copies, unmaps, mock and generic domains attached and detached at any time, accesses
 * that pin (from a kernel thread or a process, across area boundaries, in the middle of huge pages),
 * unpin, read and write, process exits (later pins are then remote on a dead mm), rlimit changes, armed
 * fault points (`fault` immediately before the op it targets), the selftest's tiny temp memory limits
 * (16 and 32 bytes: one-entry batches, what exposes the carry and xarray bugs), VFIO type1 unmaps that
 * split areas, huge-page toggles, allowed IOVA windows (also at the top of the space), maps of user
 * ranges that wrap 2^64, munmap and CPU writes.
 *
 * Validity: the generator keeps its own picture of the world and only names objects that exist in it
 * (fresh names for every creation, nothing used after its destroy, no process issues a call after its
 * exit), so the parser accepts every trace. The picture is a guess: the kernel may refuse an op (an overlap,
 * an alignment, an injected fault) and the trace carries no `expect`, so any result is accepted and later
 * ops on the guessed object simply fail with an errno. IOVAs that the kernel allocates are not tracked.
 *
 * Determinism: everything comes from one Rng seeded with the seed; same seed and op budget, same ops.
 */
import type { FaultSite, TraceHeader, TraceOp } from '../events/trace.js';
import { DEFAULT_TRACE_HEADER, FAULT_SITES, KTHREAD, U64_MAX } from '../events/trace.js';

/**
 * The sites a generated `fault` op picks from: the contract's sites as they were when seeds were first
 * saved. A site added later (iommu_pages, the iommupt mock's table levels) would change what every old seed
 * draws, so it is not here: a seed must keep regenerating the trace it gave.
 */
const GENERATED_FAULT_SITES: readonly FaultSite[] = FAULT_SITES.filter((site) => site !== 'iommu_pages');
import { Rng } from './rng.js';

const PAGE = 4096n;
const HALF_PAGE = 2048n;
const HUGE = 1n << 21n;
const HUGE_PFNS = 512;
/** Fixed IOVAs start at the bottom of the mock domain's aperture [2^24, 2^31 - 1]. */
const IOVA_BASE = 1n << 24n;
/** Each process's mappings start at its own 1 TiB slot above this. */
const VA_BASE = 0x7f00_0000_0000n;
const VA_SLOT = 1n << 40n;
/**
 * The exportable subset's slots are 64 GiB: with 1 TiB slots the second process would map at 2^47, above
 * x86-64's user address space (47 bits without 5-level paging), where the kernel's mmap says ENOMEM.
 */
const EXPORTABLE_VA_SLOT = 1n << 36n;
/** Explicit physical layouts live far above the default allocator's PFNs (which start at 0x40000). */
const EXPLICIT_PFN_BASE = 0x10_0000;

const alignUp = (x: bigint, a: bigint): bigint => ((x + a - 1n) / a) * a;

export interface GenerateOptions {
  seed: number;
  /**
   * The most ops a trace may have; each trace aims at a length in [ceil(maxOps / 3), maxOps]. The setup
   * (processes, mappings, contexts, IOASes: 4 to 15 ops) is generated whatever the budget.
   */
  maxOps: number;
  /**
   * Only what a user-space program can perform on a real kernel (`ioptrace export-c`, `fuzz --against-kernel`):
   * no explicit physical layouts, no kernel-thread callers, no named fault sites, mock domains only. The draws
   * of the other choices stay the same, so the rest of the walk keeps its weights.
   */
  exportable?: boolean;
}

export interface GeneratedTrace {
  seed: number;
  header: TraceHeader;
  ops: TraceOp[];
}

interface Region {
  addr: bigint;
  pages: number;
  huge: '4K' | '2M';
  writable: boolean;
  pfns: [number, number][] | null;
  mapped: boolean;
}

interface ProcW {
  name: string;
  alive: boolean;
  regions: Region[];
  nextVa: bigint;
}

interface CtxW {
  name: string;
  pid: string;
  vfio: boolean;
}

/** A mapping the generator believes exists at a fixed IOVA; `offset` is the first byte's offset in its page. */
interface AreaW {
  iova: bigint;
  length: bigint;
  offset: bigint;
  writable: boolean;
}

interface IoasW {
  name: string;
  ctx: string;
  /** Large pages disabled (VFIO type1): vfio_unmap splits areas. */
  noLarge: boolean;
  areas: AreaW[];
  cursor: bigint;
  domains: number;
}

interface ItemW {
  iova: bigint;
  length: bigint;
}

interface AccessW {
  name: string;
  ioas: string;
  items: ItemW[];
}

type Action = () => boolean;

/** A run of contiguous areas, in IOVA order, starting at `areas[i]`. */
function contiguousRun(areas: readonly AreaW[], i: number): AreaW[] {
  const out: AreaW[] = [];
  let at = areas[i];
  while (at !== undefined) {
    out.push(at);
    const end = at.iova + at.length;
    at = areas.find((a) => a.iova === end);
  }
  return out;
}

class Generator {
  readonly ops: TraceOp[] = [];
  private readonly procs: ProcW[] = [];
  private readonly ctxs: CtxW[] = [];
  private readonly ioases: IoasW[] = [];
  private readonly domains: { name: string; ioas: string }[] = [];
  private readonly accesses: AccessW[] = [];
  private readonly counters = { proc: 0, ctx: 0, ioas: 0, domain: 0, access: 0 };
  private explicitPfn = EXPLICIT_PFN_BASE;
  /** Explicit layouts of 4 KiB mappings, for sharing frames between processes. */
  private readonly sharedLayouts: [number, number][][] = [];

  constructor(
    private readonly rng: Rng,
    private readonly exportable = false,
  ) {}

  // ---- world helpers ---------------------------------------------------------------------------------

  private alive(): ProcW[] {
    return this.procs.filter((p) => p.alive);
  }

  private ioasNamed(name: string): IoasW {
    const io = this.ioases.find((i) => i.name === name);
    if (io === undefined) throw new RangeError(`generator: no IOAS ${name}`);
    return io;
  }

  private withAreas(): IoasW[] {
    return this.ioases.filter((i) => i.areas.length > 0);
  }

  private itemsExist(): boolean {
    return this.accesses.some((a) => a.items.length > 0);
  }

  /** A caller for an access op: a kernel thread (no mm: every user access is remote) or a live process. */
  private caller(kthreadChance: number): string {
    const alive = this.alive();
    if (this.exportable) {
      // A live process always; with none alive, KTHREAD tells the action it has no caller to use.
      if (alive.length === 0) return KTHREAD;
      this.rng.chance(kthreadChance);
      return this.rng.pick(alive).name;
    }
    if (alive.length === 0 || this.rng.chance(kthreadChance)) return KTHREAD;
    return this.rng.pick(alive).name;
  }

  private allocPfns(count: number, align: number): number {
    const base = Math.ceil(this.explicitPfn / align) * align;
    // A gap of 1..3 PFNs keeps separately allocated blocks from being physically adjacent.
    this.explicitPfn = base + count + 1 + this.rng.int(3);
    return base;
  }

  private forgetItems(ioas: string, first: bigint, end: bigint): void {
    for (const a of this.accesses) {
      if (a.ioas !== ioas) continue;
      a.items = a.items.filter((it) => it.iova + it.length <= first || it.iova >= end);
    }
  }

  // ---- op constructors (every field the parser would fill in) --------------------------------------

  private push(op: TraceOp): void {
    this.ops.push(op);
  }

  addProcess(): ProcW {
    const name = `p${++this.counters.proc}`;
    const memlock = this.rng.weighted<bigint | 'unlimited'>([
      [45, 'unlimited'],
      [25, 65536n],
      [15, PAGE * BigInt(this.rng.between(1, 8))],
      [15, BigInt(this.rng.between(1, 16)) << 20n],
    ]);
    this.push({ op: 'process', pid: name, uid: 1000, memlock, cap_ipc_lock: this.rng.chance(0.1) });
    const proc: ProcW = {
      name,
      alive: true,
      regions: [],
      nextVa: VA_BASE + BigInt(this.procs.length) * (this.exportable ? EXPORTABLE_VA_SLOT : VA_SLOT),
    };
    this.procs.push(proc);
    return proc;
  }

  /** A 4 KiB layout: one contiguous run, several runs with gaps, or frames shared with an earlier mapping. */
  private smallLayout(pages: number): [number, number][] | null {
    const r = this.rng.int(100);
    if (r < 45) return null;
    if (r < 75) return [[this.allocPfns(pages, 1), pages]];
    if (r < 90 || this.sharedLayouts.length === 0) {
      const runs: [number, number][] = [];
      let left = pages;
      while (left > 0) {
        const n = this.rng.between(1, left);
        runs.push([this.allocPfns(n, 1), n]);
        left -= n;
      }
      return runs;
    }
    // Frames already mapped by another mapping (fork-like sharing: copy-on-write on a write or a pin).
    const shared = this.sharedLayouts.find((l) => l.reduce((n, [, c]) => n + c, 0) >= pages);
    if (shared === undefined) return [[this.allocPfns(pages, 1), pages]];
    const out: [number, number][] = [];
    let left = pages;
    for (const [pfn, count] of shared) {
      if (left === 0) break;
      const n = Math.min(count, left);
      out.push([pfn, n]);
      left -= n;
    }
    return out;
  }

  private hugeLayout(nhuge: number): [number, number][] | null {
    const r = this.rng.int(100);
    if (r < 45) return null;
    // Adjacent huge pages: one PFN run longer than a huge page (what the batch carry crosses).
    if (r < 75 || nhuge === 1) return [[this.allocPfns(nhuge * HUGE_PFNS, HUGE_PFNS), nhuge * HUGE_PFNS]];
    const runs: [number, number][] = [];
    for (let i = 0; i < nhuge; i++) runs.push([this.allocPfns(HUGE_PFNS, HUGE_PFNS), HUGE_PFNS]);
    return runs;
  }

  addRegion(proc: ProcW): void {
    // No 1 GiB pages: a run longer than a u16 run length (65535 pages) would reach the npfns-u32 defect, but
    // pinning that many pages costs the model seconds per trace (GUP hands back one handle per page).
    const huge = this.rng.chance(0.35) ? '2M' : '4K';
    let pages: number;
    let pfns: [number, number][] | null;
    if (huge === '2M') {
      const nhuge = this.rng.weighted([
        [6, 1],
        [3, 2],
        [1, 3],
      ]);
      pages = nhuge * HUGE_PFNS;
      pfns = this.exportable ? null : this.hugeLayout(nhuge);
      proc.nextVa = alignUp(proc.nextVa, HUGE);
    } else {
      pages = this.rng.weighted([
        [3, 1],
        [3, 2],
        [3, this.rng.between(3, 5)],
        [2, this.rng.between(6, 10)],
        [1, 16],
      ]);
      pfns = this.exportable ? null : this.smallLayout(pages);
      if (pfns !== null && !this.sharedLayouts.includes(pfns)) this.sharedLayouts.push(pfns);
    }
    const writable = !this.rng.chance(0.1);
    const addr = proc.nextVa;
    const bytes = BigInt(pages) * PAGE;
    // Back to back in VA now and then, so a map can span two mappings of different layouts.
    proc.nextVa = addr + bytes + (this.rng.chance(0.4) ? 0n : HUGE);
    proc.regions.push({ addr, pages, huge, writable, pfns, mapped: true });
    this.push({
      op: 'mmap',
      pid: proc.name,
      addr,
      length: bytes,
      huge,
      prot: writable ? 'rw' : 'r',
      pfns,
      shared: false,
    });
  }

  addContext(owner: ProcW): CtxW {
    const name = `c${++this.counters.ctx}`;
    const vfio = this.rng.chance(0.25);
    this.push({
      op: 'open',
      ctx: name,
      pid: owner.name,
      account: this.rng.chance(0.2) ? 'mm' : 'user',
      vfio_type1: vfio,
    });
    const ctx = { name, pid: owner.name, vfio };
    this.ctxs.push(ctx);
    return ctx;
  }

  addIoas(ctx: CtxW): void {
    const name = `io${++this.counters.ioas}`;
    this.push({ op: 'ioas_alloc', ioas: name, ctx: ctx.name });
    this.ioases.push({ name, ctx: ctx.name, noLarge: ctx.vfio, areas: [], cursor: IOVA_BASE, domains: 0 });
  }

  private tempMemoryLimit(): void {
    const bytes = this.rng.weighted([
      [4, 16n],
      [3, 32n],
      [3, 65536n],
    ]);
    this.push({ op: 'temp_memory_limit', bytes });
  }

  // ---- IOVA placement --------------------------------------------------------------------------------

  /**
   * A fixed IOVA for `length` bytes whose first byte has page offset `offset`: right after the last area
   * (back to back, so accesses cross area boundaries) or at the next 2 MiB boundary plus the same offset
   * inside 2 MiB as the user pointer (so huge IOPTEs are possible).
   */
  private placeIova(io: IoasW, uptrLow: bigint, length: bigint): bigint {
    const last = io.areas.reduce<AreaW | null>((m, a) => (m === null || a.iova > m.iova ? a : m), null);
    if (last !== null) {
      const end = last.iova + last.length;
      if (end % PAGE === uptrLow % PAGE && end >= io.cursor && this.rng.chance(0.5)) {
        io.cursor = end + length;
        return end;
      }
    }
    const base = alignUp(io.cursor, HUGE) + (this.rng.chance(0.3) ? HUGE : 0n);
    const iova = base + (uptrLow % HUGE);
    io.cursor = iova + length;
    return iova;
  }

  private recordArea(io: IoasW, area: AreaW): void {
    io.areas.push(area);
    io.areas.sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
  }

  // ---- actions: each pushes its op(s) and returns true, or returns false when it does not apply --------

  private map: Action = () => {
    const alive = this.alive().filter((p) => p.regions.some((r) => r.mapped));
    if (alive.length === 0 || this.ioases.length === 0) return false;
    const io = this.rng.pick(this.ioases);
    const ctxOwner = this.ctxs.find((c) => c.name === io.ctx)?.pid;
    const owner = alive.find((p) => p.name === ctxOwner);
    const proc = owner !== undefined && this.rng.chance(0.7) ? owner : this.rng.pick(alive);
    const regions = proc.regions.filter((r) => r.mapped);
    const ri = this.rng.int(regions.length);
    const region = regions[ri] as Region;
    let startPage: number;
    if (region.huge !== '4K') {
      startPage = this.rng.weighted([
        [5, 0],
        [3, this.rng.int(region.pages)],
        [1, HUGE_PFNS - 1],
      ]);
    } else {
      startPage = this.rng.int(region.pages);
    }
    const maxPages = region.pages - startPage;
    let npages = this.rng.chance(0.45) ? maxPages : this.rng.between(1, Math.min(maxPages, 8));
    // Span into the next mapping when it follows in VA.
    const next = regions[ri + 1];
    if (npages === maxPages && next !== undefined && next.addr === region.addr + BigInt(region.pages) * PAGE) {
      if (this.rng.chance(0.3)) npages += this.rng.between(1, next.pages);
    }
    const head = this.rng.chance(0.12) ? HALF_PAGE : 0n;
    const tail = this.rng.chance(0.1) ? HALF_PAGE : 0n;
    let length = BigInt(npages) * PAGE - head - tail;
    if (length <= 0n) length = HALF_PAGE;
    const uptr = region.addr + BigInt(startPage) * PAGE + head;
    const fixed = !this.rng.chance(0.2);
    const iova = fixed ? this.placeIova(io, uptr, length) : null;
    let write = region.writable ? !this.rng.chance(0.08) : this.rng.chance(0.1);
    let read = true;
    if (this.rng.chance(0.02)) {
      read = false;
      write = false;
    }
    this.push({ op: 'ioas_map', ioas: io.name, pid: proc.name, uptr, length, iova, read, write });
    if (iova !== null) this.recordArea(io, { iova, length, offset: uptr % PAGE, writable: write });
    return true;
  };

  /** A page-aligned sub-range of an area (start on a page of the area's pages, 1 or more pages). */
  private pageRange(area: AreaW, io: IoasW, allowBeyond: boolean): ItemW | null {
    const pageBase = area.iova - area.offset;
    const areaPages = Number((area.offset + area.length + PAGE - 1n) / PAGE);
    const firstK = area.offset === 0n ? 0 : 1;
    if (firstK >= areaPages) return null;
    let k: number;
    if (areaPages >= HUGE_PFNS) {
      // Huge-page areas: the middle of a huge page and the edges of one are where the carry matters.
      k = this.rng.weighted([
        [3, this.rng.between(firstK, areaPages - 1)],
        [2, 1],
        [2, HUGE_PFNS - 1],
        [1, HUGE_PFNS],
        [1, firstK],
      ]);
      k = Math.min(Math.max(k, firstK), areaPages - 1);
    } else {
      k = this.rng.between(firstK, areaPages - 1);
    }
    const toEnd = areaPages - k;
    let npages = this.rng.weighted([
      [4, 1],
      [3, this.rng.between(1, Math.min(4, toEnd))],
      [2, toEnd],
      [1, this.rng.between(1, Math.min(toEnd, 600))],
    ]);
    npages = Math.min(npages, toEnd);
    const iova = pageBase + BigInt(k) * PAGE;
    let length = BigInt(npages) * PAGE;
    // Clip to the area's last byte when the range reaches its end (a last piece may end inside a page).
    const areaEnd = area.iova + area.length;
    if (iova + length > areaEnd) length = areaEnd - iova;
    if (allowBeyond && iova + length === areaEnd && this.rng.chance(0.4)) {
      const run = contiguousRun(io.areas, io.areas.indexOf(area));
      const runEnd = run.reduce((e, a) => a.iova + a.length, areaEnd);
      if (runEnd > areaEnd) {
        const extra = BigInt(this.rng.between(1, 4)) * PAGE;
        length += extra < runEnd - areaEnd ? extra : runEnd - areaEnd;
      } else if (this.rng.chance(0.2)) {
        length += PAGE; // past the last area: -ENOENT after partial work
      }
    }
    return length > 0n ? { iova, length } : null;
  }

  private copy: Action = () => {
    const sources = this.withAreas();
    if (sources.length === 0) return false;
    const src = this.rng.pick(sources);
    const area = this.rng.pick(src.areas);
    let range: ItemW | null = { iova: area.iova, length: area.length };
    let offset = area.offset;
    if (this.rng.chance(0.4)) {
      range = this.pageRange(area, src, true);
      offset = 0n;
    } else if (this.rng.chance(0.2)) {
      const run = contiguousRun(src.areas, src.areas.indexOf(area));
      const last = run[run.length - 1] as AreaW;
      range = { iova: area.iova, length: last.iova + last.length - area.iova };
    }
    if (range === null) return false;
    // IOMMU_IOAS_COPY names both IOASes by id in the one iommufd it is issued on: a user-space copy stays in
    // its context (the model's trace may cross them; the exportable subset does not).
    const dst = this.exportable
      ? this.rng.pick(this.ioases.filter((io) => io.ctx === src.ctx))
      : this.rng.pick(this.ioases);
    const fixed = this.rng.chance(0.7);
    const dstIova = fixed ? this.placeIova(dst, offset, range.length) : null;
    this.push({
      op: 'ioas_copy',
      src: src.name,
      dst: dst.name,
      src_iova: range.iova,
      length: range.length,
      dst_iova: dstIova,
      read: true,
      write: area.writable && !this.rng.chance(0.1),
    });
    if (dstIova !== null)
      this.recordArea(dst, { iova: dstIova, length: range.length, offset, writable: area.writable });
    return true;
  };

  private unmap: Action = () => {
    const targets = this.withAreas();
    if (this.ioases.length === 0) return false;
    const r = this.rng.int(100);
    if (targets.length === 0 || r < 10) {
      const io = this.rng.pick(this.ioases);
      this.push({ op: 'ioas_unmap', ioas: io.name, all: true, iova: 0n, length: U64_MAX });
      this.forgetItems(io.name, 0n, U64_MAX + 1n);
      io.areas = [];
      return true;
    }
    const io = this.rng.pick(targets);
    const i = this.rng.int(io.areas.length);
    const area = io.areas[i] as AreaW;
    const iova = area.iova;
    let length = area.length;
    if (r < 25) {
      const run = contiguousRun(io.areas, i);
      const last = run[this.rng.int(run.length)] as AreaW;
      length = last.iova + last.length - iova;
    } else if (r < 35 && area.length > PAGE) {
      length = area.length / 2n; // a partial unmap: -ENOENT, nothing changes
      this.push({ op: 'ioas_unmap', ioas: io.name, all: false, iova, length });
      return true;
    }
    this.push({ op: 'ioas_unmap', ioas: io.name, all: false, iova, length });
    const end = iova + length;
    io.areas = io.areas.filter((a) => a.iova + a.length <= iova || a.iova >= end);
    this.forgetItems(io.name, iova, end);
    return true;
  };

  private attach: Action = () => {
    if (this.ioases.length === 0 || this.domains.length >= 6) return false;
    const populated = this.withAreas();
    const io = populated.length > 0 && this.rng.chance(0.7) ? this.rng.pick(populated) : this.rng.pick(this.ioases);
    if (io.domains >= 3) return false;
    const name = `d${++this.counters.domain}`;
    const generic = this.rng.chance(0.3) && !this.exportable;
    const pgsizes = generic && this.rng.chance(0.25) ? [4096] : null;
    this.push({
      op: 'domain_attach',
      domain: name,
      ioas: io.name,
      kind: generic ? 'generic' : 'mock',
      pgsizes,
      aperture: null,
    });
    this.domains.push({ name, ioas: io.name });
    io.domains += 1;
    return true;
  };

  private detach: Action = () => {
    if (this.domains.length === 0) return false;
    const i = this.rng.int(this.domains.length);
    const d = this.domains[i] as { name: string; ioas: string };
    this.domains.splice(i, 1);
    this.ioasNamed(d.ioas).domains -= 1;
    this.push({ op: 'domain_detach', domain: d.name });
    return true;
  };

  private accessCreate: Action = () => {
    if (this.ioases.length === 0 || this.accesses.length >= 4) return false;
    const populated = this.withAreas();
    const io = populated.length > 0 && this.rng.chance(0.8) ? this.rng.pick(populated) : this.rng.pick(this.ioases);
    const name = `a${++this.counters.access}`;
    this.push({ op: 'access_create', access: name, ioas: io.name, needs_pin_pages: !this.rng.chance(0.08) });
    this.accesses.push({ name, ioas: io.name, items: [] });
    return true;
  };

  private accessPin: Action = () => {
    if (this.accesses.length === 0) return false;
    const access = this.rng.pick(this.accesses);
    const io = this.ioasNamed(access.ioas);
    let range: ItemW | null;
    if (io.areas.length === 0) {
      if (!this.rng.chance(0.2)) return false;
      range = { iova: alignUp(io.cursor, PAGE), length: PAGE };
    } else {
      const area = this.rng.pick(io.areas);
      range = this.pageRange(area, io, true);
    }
    if (range === null) return false;
    const pid = this.caller(0.45);
    if (this.exportable && pid === KTHREAD) return false;
    this.push({
      op: 'access_pin',
      access: access.name,
      pid,
      iova: range.iova,
      length: range.length,
      write: !this.rng.chance(0.15),
    });
    access.items.push(range);
    return true;
  };

  private accessUnpin: Action = () => {
    const holders = this.accesses.filter((a) => a.items.length > 0);
    if (holders.length === 0) return false;
    const access = this.rng.pick(holders);
    const i = this.rng.int(access.items.length);
    const item = access.items[i] as ItemW;
    access.items.splice(i, 1);
    this.push({ op: 'access_unpin', access: access.name, iova: item.iova, length: item.length });
    return true;
  };

  private accessRw: Action = () => {
    if (this.accesses.length === 0) return false;
    const access = this.rng.pick(this.accesses);
    const io = this.ioasNamed(access.ioas);
    if (io.areas.length === 0) return false;
    const area = this.rng.pick(io.areas);
    const write = this.rng.chance(0.35);
    const length = write
      ? this.rng.between(1, 48)
      : this.rng.weighted([
          [5, this.rng.between(1, 64)],
          [2, this.rng.between(4096 - 64, 8192 + 64)],
        ]);
    const pageBase = area.iova - area.offset;
    const areaPages = Number((area.offset + area.length + PAGE - 1n) / PAGE);
    let iova: bigint;
    const r = this.rng.int(100);
    if (r < 30 && areaPages > 1) {
      // Across a page boundary inside the area.
      iova = pageBase + BigInt(this.rng.between(1, areaPages - 1)) * PAGE - BigInt(this.rng.between(1, 16));
    } else if (r < 50) {
      // Across the end of the area (into the next one, or past the last: -ENOENT).
      iova = area.iova + area.length - BigInt(this.rng.between(1, 16));
    } else {
      iova = area.iova + BigInt(this.rng.int(Math.min(Number(area.length), 0x1_0000_0000)));
    }
    if (iova < area.iova) iova = area.iova;
    const pid = this.caller(0.5);
    if (this.exportable && pid === KTHREAD) return false;
    // IOMMUFD_ACCESS_RW_KTHREAD is the caller declaring it has no mm (vfio_dma_rw sets it only then): a kernel
    // thread may leave it out (the slow path), a process never sets it (kthread_use_mm would WARN, rightly).
    const kthread = pid === KTHREAD && !this.rng.chance(0.2);
    this.push({
      op: 'access_rw',
      access: access.name,
      pid,
      iova,
      length: BigInt(length),
      write,
      data: write ? this.rng.hexBytes(length) : null,
      kthread,
    });
    return true;
  };

  private accessDestroy: Action = () => {
    if (this.accesses.length === 0) return false;
    const i = this.rng.int(this.accesses.length);
    const access = this.accesses[i] as AccessW;
    this.accesses.splice(i, 1);
    this.push({ op: 'access_destroy', access: access.name });
    return true;
  };

  private exit: Action = () => {
    const alive = this.alive();
    if (alive.length === 0) return false;
    const proc = this.rng.pick(alive);
    proc.alive = false;
    this.push({ op: 'exit', pid: proc.name });
    return true;
  };

  private rlimit: Action = () => {
    const alive = this.alive();
    if (alive.length === 0) return false;
    const proc = this.rng.pick(alive);
    const memlock = this.rng.weighted<bigint | 'unlimited'>([
      [3, 0n],
      [3, PAGE * BigInt(this.rng.between(1, 8))],
      [2, 65536n],
      [2, 'unlimited'],
    ]);
    this.push({ op: 'rlimit', pid: proc.name, memlock });
    return true;
  };

  /** `fault` right before the op it is meant for; dropped again when no target op applies. */
  private fault: Action = () => {
    const nth = this.rng.weighted([
      [4, 1],
      [3, 2],
      [2, 3],
      [1, this.rng.between(4, 12)],
    ]);
    const site: FaultSite | null =
      this.rng.chance(0.4) || this.exportable ? null : this.rng.pick(GENERATED_FAULT_SITES);
    const at = this.ops.length;
    this.push({ op: 'fault', nth, site });
    // Weighted toward the ops whose failure paths unwind pins: pin, attach, map, copy.
    const targets: [number, Action][] = [
      [4, this.accessPin],
      [3, this.attach],
      [3, this.map],
      [2, this.copy],
      [2, this.accessRw],
      [2, this.unmap],
      [2, this.detach],
      [1, this.vfioUnmap],
      [1, this.accessCreate],
      [1, this.accessUnpin],
    ];
    for (let tries = 0; tries < 6; tries++) {
      if (this.rng.weighted(targets)()) return true;
    }
    this.ops.splice(at, 1);
    return false;
  };

  private tempLimit: Action = () => {
    this.tempMemoryLimit();
    return true;
  };

  private vfioUnmap: Action = () => {
    const targets = this.withAreas();
    if (targets.length === 0) return false;
    const split = targets.filter((i) => i.noLarge);
    const io = split.length > 0 && this.rng.chance(0.9) ? this.rng.pick(split) : this.rng.pick(targets);
    const area = this.rng.pick(io.areas);
    let iova = area.iova;
    let length = area.length;
    const areaPages = area.length / PAGE;
    if (area.offset === 0n && area.iova % PAGE === 0n && areaPages > 1n && this.rng.chance(0.75)) {
      const k = BigInt(this.rng.int(Number(areaPages)));
      const m = BigInt(this.rng.between(1, Number(areaPages - k)));
      iova = area.iova + k * PAGE;
      length = m * PAGE;
    }
    this.push({ op: 'vfio_unmap', ioas: io.name, iova, length });
    if (io.noLarge || (iova === area.iova && length === area.length)) {
      const end = iova + length;
      const rest: AreaW[] = [];
      if (iova > area.iova) rest.push({ ...area, length: iova - area.iova });
      if (end < area.iova + area.length)
        rest.push({ iova: end, length: area.iova + area.length - end, offset: 0n, writable: area.writable });
      io.areas = io.areas.filter((a) => a !== area);
      for (const a of rest) this.recordArea(io, a);
      this.forgetItems(io.name, iova, end);
    }
    return true;
  };

  private hugePages: Action = () => {
    if (this.ioases.length === 0) return false;
    const io = this.rng.pick(this.ioases);
    const enable = this.rng.chance(0.4);
    this.push({ op: 'ioas_huge_pages', ioas: io.name, enable });
    if (!enable && (io.domains === 0 || io.areas.length === 0)) io.noLarge = true;
    if (enable) io.noLarge = false;
    return true;
  };

  private munmap: Action = () => {
    const alive = this.alive().filter((p) => p.regions.some((r) => r.mapped));
    if (alive.length === 0) return false;
    const proc = this.rng.pick(alive);
    const region = this.rng.pick(proc.regions.filter((r) => r.mapped));
    let addr = region.addr;
    let length = BigInt(region.pages) * PAGE;
    if (region.huge === '4K' && region.pages > 1 && this.rng.chance(0.5)) {
      const k = this.rng.int(region.pages);
      addr += BigInt(k) * PAGE;
      length = BigInt(this.rng.between(1, region.pages - k)) * PAGE;
    } else {
      region.mapped = false;
    }
    this.push({ op: 'munmap', pid: proc.name, addr, length });
    return true;
  };

  private cpuWrite: Action = () => {
    const alive = this.alive().filter((p) => p.regions.some((r) => r.mapped));
    if (alive.length === 0) return false;
    const proc = this.rng.pick(alive);
    const region = this.rng.pick(proc.regions.filter((r) => r.mapped));
    const n = this.rng.between(1, 16);
    const addr = region.addr + BigInt(this.rng.int(region.pages * 4096 - n + 1));
    this.push({ op: 'write', pid: proc.name, addr, data: this.rng.hexBytes(n) });
    return true;
  };

  private lateProcess: Action = () => {
    if (this.procs.length >= 4) return false;
    const proc = this.addProcess();
    this.addRegion(proc);
    return true;
  };

  private lateRegion: Action = () => {
    const alive = this.alive().filter((p) => p.regions.length < 4);
    if (alive.length === 0) return false;
    this.addRegion(this.rng.pick(alive));
    return true;
  };

  private lateIoas: Action = () => {
    if (this.ioases.length >= 4 || this.ctxs.length === 0) return false;
    this.addIoas(this.rng.pick(this.ctxs));
    return true;
  };

  /** Allowed IOVA ranges: the usual low window, or a window at the very top of the 64-bit space. */
  private allowIovas: Action = () => {
    if (this.ioases.length === 0) return false;
    const io = this.rng.pick(this.ioases);
    const top = this.rng.chance(0.5);
    const ranges: [bigint, bigint][] = top
      ? [[U64_MAX - (1n << BigInt(this.rng.between(24, 40))) + 1n, U64_MAX]]
      : [[IOVA_BASE, (1n << 31n) - 1n]];
    this.push({ op: 'ioas_allow_iovas', ioas: io.name, ranges });
    return true;
  };

  /** A map whose user range wraps the top of the address space (uptr + length > 2^64). */
  private wildMap: Action = () => {
    const alive = this.alive();
    if (alive.length === 0 || this.ioases.length === 0) return false;
    const io = this.rng.pick(this.ioases);
    const proc = this.rng.pick(alive);
    const below = BigInt(this.rng.between(1, 4)) * PAGE;
    const uptr = ((1n << 64n) - below) & U64_MAX;
    const length = below + BigInt(this.rng.between(1, 4)) * PAGE;
    const iova = this.rng.chance(0.5) ? this.placeIova(io, uptr, length) : null;
    this.push({ op: 'ioas_map', ioas: io.name, pid: proc.name, uptr, length, iova, read: true, write: true });
    return true;
  };

  // ---- the walk ----------------------------------------------------------------------------------------

  private weights(): [number, Action][] {
    const hasAccessWork = this.accesses.length > 0;
    return [
      [12, this.map],
      [3, this.copy],
      [this.withAreas().length > 0 ? 4 : 0.5, this.unmap],
      [6, this.attach],
      [5, this.detach],
      [3, this.accessCreate],
      [hasAccessWork ? 18 : 0, this.accessPin],
      [this.itemsExist() ? 7 : 0, this.accessUnpin],
      [hasAccessWork ? 4 : 0, this.accessRw],
      [2, this.accessDestroy],
      [hasAccessWork ? 4 : 2, this.exit],
      [2, this.rlimit],
      // The kernel's fail-nth counts every fault point of the calling task (slab, page allocator and every
      // user copy, the ioctl's own argument copy first), the model only its named sites: an armed `nth`
      // fails different calls in the two, so the exportable subset arms no fault.
      [this.exportable ? 0 : 6, this.fault],
      [3, this.tempLimit],
      [this.ioases.some((i) => i.noLarge && i.areas.length > 0) ? 6 : 1, this.vfioUnmap],
      [1, this.hugePages],
      [2, this.munmap],
      [2, this.cpuWrite],
      [1, this.lateProcess],
      [2, this.lateRegion],
      [1, this.lateIoas],
      [0.5, this.allowIovas],
      [0.5, this.wildMap],
    ];
  }

  run(maxOps: number): void {
    const target = this.rng.between(Math.ceil(maxOps / 3), maxOps);
    const nproc = this.rng.weighted([
      [6, 1],
      [3, 2],
      [1, 3],
    ]);
    for (let i = 0; i < nproc; i++) {
      const proc = this.addProcess();
      const nregions = this.rng.weighted([
        [5, 1],
        [4, 2],
        [1, 3],
      ]);
      for (let j = 0; j < nregions; j++) this.addRegion(proc);
    }
    const nctx = this.rng.chance(0.2) ? 2 : 1;
    for (let i = 0; i < nctx; i++) {
      const owner = i === 0 || this.rng.chance(0.5) ? (this.procs[0] as ProcW) : this.rng.pick(this.procs);
      const ctx = this.addContext(owner);
      this.addIoas(ctx);
      if (i === 0 && this.rng.chance(0.3)) this.addIoas(ctx);
    }
    if (this.rng.chance(0.25)) this.tempMemoryLimit();
    let idle = 0;
    // An action pushes at most two ops (a fault and its target, a process and its first mapping).
    while (this.ops.length + 2 <= target && idle < 100) {
      const action = this.rng.weighted(this.weights());
      idle = action() ? 0 : idle + 1;
    }
  }
}

/** The trace of a seed: same seed and maxOps, same ops. */
export function generateTrace(options: GenerateOptions): GeneratedTrace {
  if (!Number.isSafeInteger(options.maxOps) || options.maxOps < 1) {
    throw new RangeError(`maxOps must be a positive integer, got ${options.maxOps}`);
  }
  const gen = new Generator(new Rng(options.seed), options.exportable === true);
  gen.run(options.maxOps);
  return { seed: options.seed, header: { ...DEFAULT_TRACE_HEADER }, ops: gen.ops };
}
