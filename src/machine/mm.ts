// SPDX-License-Identifier: GPL-2.0-only
/**
 * Processes and the lifetime of their address spaces (spec section 7): the parts of kernel/fork.c,
 * kernel/exit.c and include/linux/sched/mm.h that iommufd leans on.
 *
 * An mm has two counters. `users` (mm_users) counts address-space users: mmget / mmget_not_zero / mmput.
 * `count` (mm_count) counts references to the struct itself: mmgrab / mmdrop; all users together hold one.
 * A new process starts at users 1, count 1.
 *
 * Invariants: the address space is torn down exactly when `users` goes from 1 to 0 (every VMA unmapped;
 * frames that nobody pins or maps are freed by the reducer, pinned ones stay), and that transition then
 * drops the users' mm_count reference. Once `users` is 0, mmgetNotZero fails for good.
 *
 * Deviations: the kernel's refcounts are plain atomics, so an mmput or mmdrop without a matching get drives
 * the counter negative silently; the model does the same and reports a violation ('mmput_underflow',
 * 'mmdrop_underflow'). A reference taken on, or dropped from, an mm whose struct is already freed
 * (mm_count 0) is reported as 'use_after_free', which KASAN would catch. The struct is never removed from
 * the State (no event frees it): `count <= 0` is what "freed" means here. There is no task struct: a
 * process's RLIMIT_MEMLOCK and CAP_IPC_LOCK live on its Process record and survive its exit, as the kernel's
 * task_struct does while iommufd holds a reference to it.
 */
import { rangeForEachAll } from '../structures/range-map.js';
import { InternalError } from '../lib/errors.js';
import type { Mm, Process } from '../state/state.js';
import { closeProcessFiles } from './memfd.js';
import type { Sim } from './sim.js';

function processOf(sim: Sim, pid: string): Process {
  const proc = sim.state.processes[pid];
  if (proc === undefined) throw new InternalError(`no process ${pid}`);
  return proc;
}

function mmOf(sim: Sim, mm: number): Mm {
  const m = sim.state.mms[mm];
  if (m === undefined) throw new InternalError(`no mm ${mm}`);
  return m;
}

/** Touching the struct of an mm that mmdrop already freed. */
function checkLive(sim: Sim, m: Mm, fn: string, what: string): void {
  if (m.count <= 0) {
    sim.violation('use_after_free', fn, `${what} on mm ${m.id} after its mm_count reached ${m.count}`, {
      mm: m.id,
      count: m.count,
    });
  }
}

/** fork + exec of a process with a fresh address space: mm_users 1, mm_count 1. */
export function createProcess(
  sim: Sim,
  pid: string,
  opts: { uid: number; memlock: bigint | null; capIpcLock: boolean },
): void {
  if (sim.state.processes[pid] !== undefined) throw new InternalError(`process ${pid} already exists`);
  sim.emit({
    type: 'ProcessCreated',
    v: 1,
    pid,
    mm: sim.newId(),
    uid: opts.uid,
    memlock: opts.memlock,
    capIpcLock: opts.capIpcLock,
  });
}

/** setrlimit(RLIMIT_MEMLOCK) of a process, in bytes; null = RLIM_INFINITY. */
export function setRlimit(sim: Sim, pid: string, memlock: bigint | null): void {
  processOf(sim, pid);
  sim.emit({ type: 'RlimitSet', v: 1, pid, memlock });
}

/**
 * do_exit: the process is gone, then exit_mm drops the task's mm_users reference. Unless someone else holds
 * an mmget, that tears the address space down. Exiting twice is a no-op (there is no task left to exit).
 */
export function exitProcess(sim: Sim, pid: string): void {
  const proc = processOf(sim, pid);
  if (proc.exited) return;
  sim.emit({ type: 'ProcessExited', v: 1, pid });
  mmput(sim, proc.mm, 'exit_mm');
  closeProcessFiles(sim, pid);
}

/** mmget_not_zero: take an address-space reference unless the address space is already gone. */
export function mmgetNotZero(sim: Sim, mm: number, fn: string): boolean {
  const m = mmOf(sim, mm);
  checkLive(sim, m, fn, 'mmget_not_zero');
  if (m.users <= 0) return false;
  sim.emit({ type: 'MmGot', v: 1, mm, fn });
  return true;
}

/** mmget: take an address-space reference; the caller must know the mm still has users. */
export function mmget(sim: Sim, mm: number, fn: string): void {
  checkLive(sim, mmOf(sim, mm), fn, 'mmget');
  sim.emit({ type: 'MmGot', v: 1, mm, fn });
}

/**
 * mmput: drop an address-space reference. The last one (1 -> 0) tears the address space down (exit_mmap)
 * and drops the mm_count reference the users held. Below zero is an underflow: reported, then applied.
 */
export function mmput(sim: Sim, mm: number, fn: string): void {
  const m = mmOf(sim, mm);
  checkLive(sim, m, fn, 'mmput');
  const before = m.users;
  if (before <= 0) {
    sim.violation('mmput_underflow', fn, `mmput of mm ${mm} with mm_users ${before}`, { mm, users: before });
  }
  sim.emit({ type: 'MmPut', v: 1, mm, fn });
  if (before === 1) {
    exitMmap(sim, mm);
    mmdrop(sim, mm, 'mmput');
  }
}

/** exit_mmap: unmap every VMA. The reducer frees each frame that ends with no map and no pin. */
function exitMmap(sim: Sim, mm: number): void {
  // Collect first: each VmaUnmapped rewrites the tree being walked.
  const spans: [number, number][] = [];
  rangeForEachAll(mmOf(sim, mm).vmas, (start, count) => {
    const last = spans[spans.length - 1];
    if (last !== undefined && last[0] + last[1] === start) last[1] += count;
    else spans.push([start, count]);
  });
  for (const [vpn, npages] of spans) sim.emit({ type: 'VmaUnmapped', v: 1, mm, vpn, npages });
}

/** mmgrab: keep the mm struct alive (iopt_alloc_pages does this on the creator's mm). */
export function mmgrab(sim: Sim, mm: number, fn: string): void {
  checkLive(sim, mmOf(sim, mm), fn, 'mmgrab');
  sim.emit({ type: 'MmGrabbed', v: 1, mm, fn });
}

/** mmdrop: release the struct reference; below zero is an underflow, reported and then applied. */
export function mmdrop(sim: Sim, mm: number, fn: string): void {
  const before = mmOf(sim, mm).count;
  if (before <= 0) {
    sim.violation('mmdrop_underflow', fn, `mmdrop of mm ${mm} with mm_count ${before}`, { mm, count: before });
  }
  sim.emit({ type: 'MmDropped', v: 1, mm, fn });
}

/** current->mm: null for a kernel thread. */
export function currentMm(sim: Sim): number | null {
  return sim.current.mm;
}

/** rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT of a process; Infinity when unlimited. */
export function rlimitMemlockPages(sim: Sim, pid: string): number {
  const memlock = processOf(sim, pid).memlock;
  if (memlock === null) return Infinity;
  return Number(memlock / BigInt(sim.pageSize));
}
