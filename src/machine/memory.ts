// SPDX-License-Identifier: GPL-2.0-only
/**
 * User address spaces and physical pages (spec section 6; the trace ops mmap, munmap, write, read): what
 * mm/mmap.c, mm/memory.c (the write fault and its copy-on-write) and the page allocator do for the model.
 *
 * An mm has VMAs (vpn ranges with writable / huge attributes) and a page table (vpn -> PFN). Physical
 * memory is `state.frames`: per PFN its pin count, map count (page-table entries in every mm), huge size and
 * dirty bit. A frame that nobody maps or pins is freed by the reducers; its contents (`state.pageData`, hex)
 * go with it, and absent contents read as zeros.
 *
 * Invariants: every page of a VMA has a PFN (mmap populates, as MAP_POPULATE does, so a fault never has to
 * allocate); a huge VMA starts and ends on its huge-page size and each of its huge pages is one naturally
 * aligned, physically contiguous PFN block. Default layout: blocks are allocated upward from
 * `state.nextPfn`, each naturally aligned and one PFN of gap above the previous allocation, so 4 KiB pages
 * are never physically adjacent and only a huge page gives a long PFN run. A trace that
 * needs another layout (contiguous small pages, adjacent huge pages, shared frames) gives the PFN runs.
 *
 * Copy-on-write: a page of a private VMA mapped more than once (frame.maps > 1: shared PFNs given by a trace
 * stand in for fork) is not exclusive, and a write to it, or a GUP that must unshare it, first moves the VA
 * to a private copy. A shared VMA (MAP_SHARED | MAP_ANONYMOUS, shmem underneath) is never copied: a write,
 * a write pin or a long-term pin goes to the frame every mapping of it sees (a write fault on VM_SHARED
 * reuses the page, and gup_must_unshare only concerns anonymous pages).
 *
 * Deviations: every VMA is anonymous; a shared one keeps its frames only while some VMA maps them (the
 * kernel's shmem object keeps every page until its last VMA goes: the same for anything a process can
 * observe, since no op reaches an unmapped part of it); huge VMAs behave as hugetlb (munmap may not split a huge
 * page: -EINVAL; a COW copies the whole huge page). There is no TASK_SIZE: any range that does not wrap
 * 2^64 is a valid address range. PFN 0 is never a real frame (a failed iova_to_phys reads back as PFN 0).
 */
import type { HugeSize } from '../events/events.js';
import { rangeGet, rangeSegments } from '../structures/range-map.js';
import { xaLoad } from '../structures/xarray.js';
import { InternalError } from '../lib/errors.js';
import { FIRST_PFN } from '../state/state.js';
import type { Frame, Mm, Process, State, Vma } from '../state/state.js';
import { EFAULT, EINVAL, ENOMEM, ESRCH } from './errno.js';
import { RunList } from './sim.js';
import type { Sim } from './sim.js';
import { hex } from '../lib/format.js';

const U64_LIMIT = 1n << 64n;
const HUGE_BYTES: Record<Exclude<HugeSize, '4K'>, bigint> = { '2M': 1n << 21n, '1G': 1n << 30n };

/** Bytes of one page of this size; '4K' means the base page (PAGE_SIZE, a model parameter). */
export function hugeBytes(pageSize: number, huge: HugeSize): bigint {
  return huge === '4K' ? BigInt(pageSize) : HUGE_BYTES[huge];
}

/** PFNs in one page of this size (1 for a base page, 512 for 2 MiB with 4 KiB pages). */
export function hugePfns(pageSize: number, huge: HugeSize): number {
  return Math.max(1, Number(hugeBytes(pageSize, huge) / BigInt(pageSize)));
}

function processOf(sim: Sim, pid: string): Process {
  const proc = sim.state.processes[pid];
  if (proc === undefined) throw new InternalError(`no process ${pid}`);
  return proc;
}

function mmOf(state: State, mm: number): Mm {
  const m = state.mms[mm];
  if (m === undefined) throw new InternalError(`no mm ${mm}`);
  return m;
}

const alignUp = (x: number, a: number): number => Math.ceil(x / a) * a;

/**
 * Allocate one block of the default layout: naturally aligned, one PFN of gap above the highest PFN ever
 * allocated (the first block of a run starts at FIRST_PFN unless a given layout put a frame just below).
 * Returns its first PFN.
 */
export function allocFrames(sim: Sim, huge: HugeSize): number {
  const count = hugePfns(sim.pageSize, huge);
  let start = sim.state.nextPfn;
  if (start > FIRST_PFN || rangeGet(sim.state.frames, start - 1) !== undefined) start += 1;
  start = alignUp(start, count);
  sim.emit({ type: 'FramesAllocated', v: 1, pfn: start, count, huge });
  return start;
}

/**
 * Allocate `nblocks` blocks of the default layout, as that many allocFrames calls would place them; their
 * first PFNs in order. Version 4 traces say so in FrameRunsAllocated events of at most `sim.runsPerEvent`
 * blocks each; earlier versions in one FramesAllocated per block.
 */
export function allocBlocks(sim: Sim, huge: HugeSize, nblocks: number): number[] {
  const starts: number[] = [];
  const perEvent = sim.runsPerEvent;
  if (perEvent === null) {
    for (let i = 0; i < nblocks; i++) starts.push(allocFrames(sim, huge));
    return starts;
  }
  const count = hugePfns(sim.pageSize, huge);
  let start = sim.state.nextPfn;
  if (start > FIRST_PFN || rangeGet(sim.state.frames, start - 1) !== undefined) start += 1;
  for (let i = 0; i < nblocks; i++) {
    start = alignUp(start, count);
    starts.push(start);
    // The next block leaves one PFN of gap above this one, as allocFrames does above the highest PFN.
    start += count + 1;
  }
  // The runs of one event at a time: a guest of 4 KiB pages has a block per page.
  for (let at = 0; at < starts.length; at += perEvent) {
    const runs = starts.slice(at, at + perEvent).map((pfn): [number, number] => [pfn, count]);
    sim.emit({ type: 'FrameRunsAllocated', v: 1, huge, runs });
  }
  return starts;
}

/**
 * The VmaMapped of a mapping of `npages` at `vpn` whose page table is `runs` (in VA order, `npages` in all).
 * Version 4 traces split it into consecutive mappings of at most `sim.runsPerEvent` runs each: the same VMA
 * (equal neighbours coalesce) and page table as the one event that earlier versions emit.
 */
export function emitVmaMapped(
  sim: Sim,
  mm: number,
  vpn: number,
  npages: number,
  vma: Vma,
  runs: [number, number][],
): void {
  emitVmaMappedOf(sim, mm, vpn, npages, vma, runs.length, (from, to) => runs.slice(from, to));
}

/**
 * emitVmaMapped of `nruns` runs that `runsOf(from, to)` makes as they are needed: a mapping of scattered
 * 4 KiB pages has a run per page, and only one event's worth of them is built at a time.
 */
function emitVmaMappedOf(
  sim: Sim,
  mm: number,
  vpn: number,
  npages: number,
  vma: Vma,
  nruns: number,
  runsOf: (from: number, to: number) => [number, number][],
): void {
  const shared = vma.shared === true ? { shared: true as const } : {};
  const perEvent = sim.runsPerEvent;
  if (perEvent === null || nruns <= perEvent) {
    const runs = runsOf(0, nruns);
    sim.emit({ type: 'VmaMapped', v: 1, mm, vpn, npages, writable: vma.writable, huge: vma.huge, runs, ...shared });
    return;
  }
  let at = vpn;
  for (let i = 0; i < nruns; i += perEvent) {
    const part = runsOf(i, Math.min(i + perEvent, nruns));
    const pages = part.reduce((n, [, c]) => n + c, 0);
    sim.emit({
      type: 'VmaMapped',
      v: 1,
      mm,
      vpn: at,
      npages: pages,
      writable: vma.writable,
      huge: vma.huge,
      runs: part,
      ...shared,
    });
    at += pages;
  }
}

/** Merge PFN runs that continue each other; -EINVAL for an empty run or PFN 0. */
function normaliseRuns(runs: readonly [number, number][]): [number, number][] | null {
  const out: [number, number][] = [];
  for (const [pfn, count] of runs) {
    if (!Number.isSafeInteger(pfn) || !Number.isSafeInteger(pfn + count) || pfn < 1 || count < 1) return null;
    const last = out[out.length - 1];
    if (last !== undefined && last[0] + last[1] === pfn) last[1] += count;
    else out.push([pfn, count]);
  }
  return out;
}

/** A layout that gives every huge page one naturally aligned contiguous block. */
function hugeLayoutOk(runs: readonly [number, number][], blockPfns: number): boolean {
  return runs.every(([pfn, count]) => pfn % blockPfns === 0 && count % blockPfns === 0);
}

/**
 * The unmap half of munmap and MAP_FIXED: drop [vpn, vpn + npages) from the mm. Cutting a huge page in two
 * is -EINVAL and changes nothing.
 */
function unmapRange(sim: Sim, mm: number, vpn: number, npages: number): number {
  const m = mmOf(sim.state, mm);
  const end = vpn + npages;
  const head = rangeGet(m.vmas, vpn);
  if (head !== undefined && vpn % hugePfns(sim.pageSize, head.huge) !== 0) return -EINVAL;
  const tail = rangeGet(m.vmas, end - 1);
  if (tail !== undefined && end % hugePfns(sim.pageSize, tail.huge) !== 0) return -EINVAL;
  const spans: [number, number][] = [];
  for (const piece of rangeSegments(m.vmas, vpn, npages)) {
    const last = spans[spans.length - 1];
    if (last !== undefined && last[0] + last[1] === piece.start) last[1] += piece.count;
    else spans.push([piece.start, piece.count]);
  }
  for (const [at, count] of spans) sim.emit({ type: 'VmaUnmapped', v: 1, mm, vpn: at, npages: count });
  return 0;
}

/**
 * mmap(addr, length, MAP_FIXED | MAP_PRIVATE or MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE [| MAP_HUGETLB]) by a
 * process.
 * The length is rounded up to the page size (of the huge size for huge pages), as the kernel does; `addr`
 * must be aligned to it. An existing mapping in the range is replaced (MAP_FIXED unmaps it first).
 * `pfns` gives the physical layout: runs whose total is the page count; PFNs that are already live frames
 * are shared with their other users. Returns 0 or -errno (-EINVAL bad alignment, zero length or layout;
 * -ENOMEM a range that wraps; -ESRCH an exited process); on failure nothing changed.
 */
export function mmap(
  sim: Sim,
  pid: string,
  addr: bigint,
  length: bigint,
  opts: { huge: HugeSize; writable: boolean; shared?: boolean; pfns?: [number, number][] },
): number {
  const proc = processOf(sim, pid);
  if (proc.exited) return -ESRCH;
  const unit = hugeBytes(sim.pageSize, opts.huge);
  if (length <= 0n || addr % unit !== 0n) return -EINVAL;
  const len = ((length + unit - 1n) / unit) * unit;
  if (addr + len > U64_LIMIT) return -ENOMEM;
  const page = BigInt(sim.pageSize);
  const vpn = Number(addr / page);
  const npages = Number(len / page);
  const blockPfns = hugePfns(sim.pageSize, opts.huge);

  let given: [number, number][] | null = null;
  if (opts.pfns !== undefined) {
    given = normaliseRuns(opts.pfns);
    if (given === null) return -EINVAL;
    if (given.reduce((n, [, c]) => n + c, 0) !== npages) return -EINVAL;
    if (!hugeLayoutOk(given, blockPfns)) return -EINVAL;
  }

  const rc = unmapRange(sim, proc.mm, vpn, npages);
  if (rc) return rc;

  const vma: Vma = { writable: opts.writable, huge: opts.huge, ...(opts.shared === true ? { shared: true } : {}) };
  if (given !== null) {
    allocHoles(sim, opts.huge, given);
    emitVmaMapped(sim, proc.mm, vpn, npages, vma, given);
  } else {
    const starts = allocBlocks(sim, opts.huge, npages / blockPfns);
    emitVmaMappedOf(sim, proc.mm, vpn, npages, vma, starts.length, (from, to) =>
      starts.slice(from, to).map((pfn): [number, number] => [pfn, blockPfns]),
    );
  }
  return 0;
}

/**
 * Allocate the frames of a given layout that are not live yet (its holes); a live frame is shared. Versions
 * 1 to 3 emit one FramesAllocated per hole, version 4 gathers the holes into FrameRunsAllocated events.
 * A PFN that appears twice in one layout is allocated once: each run is compared with the state and with
 * the holes not yet emitted (those are emitted first when the run overlaps their span).
 */
function allocHoles(sim: Sim, huge: HugeSize, given: readonly [number, number][]): void {
  const perEvent = sim.runsPerEvent;
  const holes = new RunList<[number, number]>(
    sim,
    perEvent ?? 1,
    perEvent === null
      ? (runs) => {
          for (const [pfn, count] of runs) sim.emit({ type: 'FramesAllocated', v: 1, pfn, count, huge });
        }
      : (runs) => sim.emit({ type: 'FrameRunsAllocated', v: 1, huge, runs }),
    { span: { start: ([pfn]) => pfn, end: ([pfn, count]) => pfn + count } },
  );
  for (const [pfn, count] of given) {
    if (holes.overlaps(pfn, pfn + count)) holes.flush();
    let pos = pfn;
    const found: [number, number][] = [];
    for (const seg of rangeSegments(sim.state.frames, pfn, count)) {
      if (seg.start > pos) found.push([pos, seg.start - pos]);
      pos = seg.start + seg.count;
    }
    if (pos < pfn + count) found.push([pos, pfn + count - pos]);
    for (const hole of found) holes.add(hole);
  }
  holes.flush();
}

/**
 * munmap(addr, length): drop the VA range; the length is rounded up to pages. Frames that stay pinned stay
 * alive. 0, or -EINVAL (unaligned addr, zero length, a wrapping range, or a cut through a huge page).
 */
export function munmap(sim: Sim, pid: string, addr: bigint, length: bigint): number {
  const proc = processOf(sim, pid);
  if (proc.exited) return -ESRCH;
  const page = BigInt(sim.pageSize);
  if (length <= 0n || addr % page !== 0n) return -EINVAL;
  const len = ((length + page - 1n) / page) * page;
  if (addr + len > U64_LIMIT) return -EINVAL;
  return unmapRange(sim, proc.mm, Number(addr / page), Number(len / page));
}

/** The VMA and PFN behind a user page, or null when the page is not mapped. */
function pageAt(state: State, m: Mm, vpn: number): { vma: Vma; pfn: number } | null {
  const vma = rangeGet(m.vmas, vpn);
  if (vma === undefined) return null;
  const pfn = xaLoad(m.pt, vpn);
  if (pfn === undefined) throw new InternalError(`mm ${m.id}: VMA page ${hex(vpn)} has no PFN`);
  return { vma, pfn };
}

/** The frame behind a PFN (live frames only). */
export function frameAt(state: State, pfn: number): Frame | undefined {
  return rangeGet(state.frames, pfn);
}

/**
 * True when a write through `vma` must copy the page first: a private mapping of a frame mapped more than
 * once. A shared mapping writes its frame in place however many map it.
 */
export function mustCopyOnWrite(state: State, vma: Vma, pfn: number): boolean {
  return vma.shared !== true && (frameAt(state, pfn)?.maps ?? 0) > 1;
}

/**
 * Break copy-on-write of the page at `vpn`: the whole (huge) page moves to a freshly allocated block with
 * the same contents. Returns the new PFN of `vpn`.
 */
export function breakCow(sim: Sim, mm: number, vpn: number, fn: string): number {
  const m = mmOf(sim.state, mm);
  const at = pageAt(sim.state, m, vpn);
  if (at === null) throw new InternalError(`mm ${mm}: COW of unmapped page ${hex(vpn)}`);
  const block = hugePfns(sim.pageSize, at.vma.huge);
  const base = vpn - (vpn % block);
  const olds: number[] = [];
  for (let i = 0; i < block; i++) olds.push(xaLoad(m.pt, base + i) ?? 0);
  const fresh = allocFrames(sim, at.vma.huge);
  const first = olds[0] ?? 0;
  if (sim.runsPerEvent !== null && block > 1 && olds.every((pfn, i) => pfn === first + i)) {
    // Version 4: a huge page (one PFN run, as every huge page is) in one event.
    sim.emit({ type: 'CowBroken', v: 1, mm, vpn: base, oldPfn: first, newPfn: fresh, fn, npages: block });
  } else {
    olds.forEach((oldPfn, i) =>
      sim.emit({ type: 'CowBroken', v: 1, mm, vpn: base + i, oldPfn, newPfn: fresh + i, fn }),
    );
  }
  return fresh + (vpn - base);
}

/**
 * The kernel storing `data` at `addr` of an mm (a CPU store by its process, or copy_to_user): page by page,
 * each page must be mapped and writable (-EFAULT at the first that is not; the pages before it are
 * written), and a page that is not exclusive is copied first (COW, named `fn`).
 */
export function copyToMm(sim: Sim, mm: number, addr: bigint, data: Uint8Array, fn: string): number {
  const page = BigInt(sim.pageSize);
  let off = 0;
  while (off < data.length) {
    const va = addr + BigInt(off);
    if (va >= U64_LIMIT) return -EFAULT;
    const vpn = Number(va / page);
    const inPage = Number(va % page);
    const n = Math.min(sim.pageSize - inPage, data.length - off);
    const at = pageAt(sim.state, mmOf(sim.state, mm), vpn);
    if (at === null || !at.vma.writable) return -EFAULT;
    const pfn = mustCopyOnWrite(sim.state, at.vma, at.pfn) ? breakCow(sim, mm, vpn, fn) : at.pfn;
    writePhys(sim, pfn, inPage, data.subarray(off, off + n));
    off += n;
  }
  return 0;
}

/** The kernel loading `out.length` bytes from `addr` of an mm: -EFAULT at the first unmapped page. */
export function copyFromMm(state: State, mm: number, addr: bigint, out: Uint8Array): number {
  const pageSize = state.config.pageSize;
  const page = BigInt(pageSize);
  const m = mmOf(state, mm);
  let off = 0;
  while (off < out.length) {
    const va = addr + BigInt(off);
    if (va >= U64_LIMIT) return -EFAULT;
    const vpn = Number(va / page);
    const inPage = Number(va % page);
    const n = Math.min(pageSize - inPage, out.length - off);
    const at = pageAt(state, m, vpn);
    if (at === null) return -EFAULT;
    out.set(readPhys(state, at.pfn, inPage, n), off);
    off += n;
  }
  return 0;
}

/** A CPU store by a process into its own memory (trace op `write`): 0 or -EFAULT (-ESRCH once exited). */
export function cpuWrite(sim: Sim, pid: string, addr: bigint, data: Uint8Array): number {
  const proc = processOf(sim, pid);
  if (proc.exited) return -ESRCH;
  return copyToMm(sim, proc.mm, addr, data, 'do_wp_page');
}

/** A CPU load by a process (trace op `read`): the bytes, or rc -EFAULT (-ESRCH once exited) and no data. */
export function cpuRead(sim: Sim, pid: string, addr: bigint, length: bigint): { rc: number; data: Uint8Array } {
  const proc = processOf(sim, pid);
  if (proc.exited) return { rc: -ESRCH, data: new Uint8Array(0) };
  const data = new Uint8Array(Number(length));
  const rc = copyFromMm(sim.state, proc.mm, addr, data);
  return rc ? { rc, data: new Uint8Array(0) } : { rc: 0, data };
}

function checkSpan(pageSize: number, offset: number, length: number): void {
  if (offset < 0 || length < 0 || offset + length > pageSize) {
    throw new InternalError(`physical access of ${length} bytes at offset ${offset} crosses a ${pageSize}-byte page`);
  }
}

/** The contents of part of one physical page; never-written pages read as zeros. */
export function readPhys(state: State, pfn: number, offset: number, length: number): Uint8Array {
  checkSpan(state.config.pageSize, offset, length);
  const out = new Uint8Array(length);
  const hex = state.pageData[pfn];
  if (hex !== undefined) out.set(Buffer.from(hex.slice(offset * 2, (offset + length) * 2), 'hex'));
  return out;
}

/**
 * Store bytes into part of one physical page (MemoryWritten). Writing a frame that is not live (freed, or
 * never allocated) is memory corruption: reported as 'use_after_free', then done, as the hardware would.
 */
export function writePhys(sim: Sim, pfn: number, offset: number, data: Uint8Array): void {
  checkSpan(sim.pageSize, offset, data.length);
  if (data.length === 0) return;
  if (frameAt(sim.state, pfn) === undefined) {
    sim.violation(
      'use_after_free',
      'write_phys',
      `write of ${data.length} bytes to pfn ${sim.pfnText(pfn)}, which is not allocated`,
      { pfn, offset, length: data.length },
    );
  }
  sim.emit({ type: 'MemoryWritten', v: 1, pfn, offset, data: Buffer.from(data).toString('hex') });
}

/** The PFN a user page maps in an mm, if any. */
export function vaToPfn(state: State, mm: number, vpn: number): number | undefined {
  const m = state.mms[mm];
  return m === undefined ? undefined : xaLoad(m.pt, vpn);
}
