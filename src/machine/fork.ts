// SPDX-License-Identifier: GPL-2.0-only
/**
 * fork (kernel/fork.c copy_process) for version 2 traces: the child gets the parent's credentials and
 * limits, a copy of its file table (copy_files, before copy_mm as copy_process orders them) and a
 * copy-on-write copy of its address space (dup_mmap).
 *
 * Copy-on-write for DMA: a page the parent has pinned cannot be shared write-protected with the child (a
 * later write by the parent would move the parent to a new page while the device keeps the old one), so
 * copy_present_page gives the child its own copy at once when page_needs_cow_for_dma says the page may be
 * pinned (folio_maybe_dma_pinned); copy_hugetlb_page_range does the same for a huge page. The child's copy
 * holds no pin. Every other page is shared (mapped twice), so the first write by either side breaks COW.
 *
 * A shared VMA (MAP_SHARED) is no COW mapping: the child maps the very same frames, pinned or not (the
 * COW-for-DMA copy only concerns private anonymous pages: copy_present_page is reached only for a COW
 * mapping's anonymous page), and a write by either process is seen by the other.
 *
 * Deviations: folio_maybe_dma_pinned is exact here (a frame with a pin), and the mm's MMF_HAS_PINNED flag
 * is taken as set: a frame pinned through another address space is copied too. A copied huge page is
 * copied whole, as hugetlb does.
 */
import { rangeForEachAll, rangeSegments } from '../structures/range-map.js';
import { xaRuns } from '../structures/xarray.js';
import type { XaRun } from '../structures/xarray.js';
import { InternalError } from '../lib/errors.js';
import type { Process, Vma } from '../state/state.js';
import { ESRCH } from './errno.js';
import { dupFdTable } from './files.js';
import { allocBlocks, allocFrames, emitVmaMapped, hugePfns } from './memory.js';
import type { Sim } from './sim.js';

function processOf(sim: Sim, pid: string): Process {
  const proc = sim.state.processes[pid];
  if (proc === undefined) throw new InternalError(`no process ${pid}`);
  return proc;
}

/** fork by `parent`, the new process named `child`: 0, or -ESRCH when the parent has exited. */
export function forkProcess(sim: Sim, parent: string, child: string): number {
  const proc = processOf(sim, parent);
  if (proc.exited) return -ESRCH;
  if (sim.state.processes[child] !== undefined) throw new InternalError(`process ${child} already exists`);
  const mm = sim.newId();
  sim.emit({
    type: 'ProcessCreated',
    v: 1,
    pid: child,
    mm,
    uid: proc.uid,
    memlock: proc.memlock,
    capIpcLock: proc.capIpcLock,
  });
  dupFdTable(sim, parent, child);
  dupMmap(sim, proc.mm, mm);
  return 0;
}

/**
 * dup_mmap: every VMA of `from` into `to`. A private VMA shares each page except the pinned ones, which
 * are copied; a shared VMA shares every page.
 */
function dupMmap(sim: Sim, from: number, to: number): void {
  const src = sim.state.mms[from];
  if (src === undefined) throw new InternalError(`no mm ${from}`);
  // Read the whole layout first: the copies below allocate frames and change the state being read.
  const vmas: { vpn: number; npages: number; vma: Vma; pieces: XaRun[] }[] = [];
  rangeForEachAll(src.vmas, (vpn, npages, vma) => {
    vmas.push({ vpn, npages, vma, pieces: [...xaRuns(src.pt, vpn, vpn + npages - 1)] });
  });
  for (const { vpn, npages, vma, pieces } of vmas) {
    const block = hugePfns(sim.pageSize, vma.huge);
    const copied = vma.shared === true ? new Set<number>() : pinnedBlocks(sim, pieces, block);
    const runs: [number, number][] = [];
    const push = (pfn: number, count: number): void => {
      const last = runs[runs.length - 1];
      if (last !== undefined && last[0] + last[1] === pfn) last[1] += count;
      else runs.push([pfn, count]);
    };
    const starts = [...copied].sort((x, y) => x - y);
    // Version 4: the copies' frames are allocated up front, in bounded run lists; earlier versions
    // allocate each copy where it is made.
    const fresh = new Map<number, number>();
    if (sim.runsPerEvent !== null) {
      const blocks = allocBlocks(sim, vma.huge, starts.length);
      starts.forEach((vpnStart, i) => fresh.set(vpnStart, blocks[i] ?? 0));
    }
    for (const piece of pieces) {
      let at = piece.index;
      const end = piece.index + piece.count;
      while (at < end) {
        const blockStart = at - (at % block);
        if (copied.has(blockStart)) {
          const blockEnd = Math.min(blockStart + block, end);
          const from = piece.pfn + (blockStart - piece.index);
          const to = copyBlock(sim, vma.huge, from, block, fresh.get(blockStart));
          push(to + (at - blockStart), blockEnd - at);
          at = blockEnd;
        } else {
          // Shared up to the next copied block: one run, however many pages.
          const stop = Math.min(end, firstAbove(starts, at));
          push(piece.pfn + (at - piece.index), stop - at);
          at = stop;
        }
      }
    }
    emitVmaMapped(sim, to, vpn, npages, vma, runs);
  }
}

/** The smallest value of the sorted `values` above `at`, or Infinity. */
function firstAbove(values: readonly number[], at: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((values[mid] ?? Infinity) > at) hi = mid;
    else lo = mid + 1;
  }
  return values[lo] ?? Infinity;
}

/** The first page (vpn) of every block of `block` pages that holds a pinned frame. */
function pinnedBlocks(
  sim: Sim,
  pieces: readonly { index: number; pfn: number; count: number }[],
  block: number,
): Set<number> {
  const out = new Set<number>();
  for (const piece of pieces) {
    for (const seg of rangeSegments(sim.state.frames, piece.pfn, piece.count)) {
      if (seg.value.pins <= 0) continue;
      const first = piece.index + (seg.start - piece.pfn);
      for (let b = first - (first % block); b < first + seg.count; b += block) out.add(b);
    }
  }
  return out;
}

/**
 * copy_present_page: a fresh block with the contents of the block at `pfn`; its first PFN. `allocated` is
 * the block already allocated for it (version 4), else one is allocated here.
 */
function copyBlock(
  sim: Sim,
  huge: Parameters<typeof allocFrames>[1],
  pfn: number,
  count: number,
  allocated: number | undefined,
): number {
  const fresh = allocated ?? allocFrames(sim, huge);
  for (let i = 0; i < count; i++) {
    const data = sim.state.pageData[pfn + i];
    if (data !== undefined) sim.emit({ type: 'MemoryWritten', v: 1, pfn: fresh + i, offset: 0, data });
  }
  return fresh;
}
