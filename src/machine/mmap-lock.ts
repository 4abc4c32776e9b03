// SPDX-License-Identifier: GPL-2.0-only
/**
 * The mmap lock of each mm (mm->mmap_lock, an rw_semaphore), as far as iommufd's paths take it.
 *
 * The model runs one task at a time and every operation releases what it took, so between operations
 * every lock is free; the table lives on the Sim and is not State. What it records is the rwsem's count as
 * the kernel keeps it: readers go up and down, and an mmap_read_unlock by a task that holds nothing drives
 * the count below zero, where the kernel's rwsem is corrupt (lockdep reports a bad unlock balance; without
 * lockdep nothing is said). A later mmap_write_lock of that mm, or a read lock taken while a writer holds
 * it, can never be granted: the task sleeps in D state for good. That ends the task's operation: the lock
 * call throws TaskHung and the replayer records the op as hung (OpHung) and runs nothing after it.
 */
import type { MmapLockState, Sim } from './sim.js';

export type { MmapLockState };

export interface HungTask {
  /** The task that waits: a pid, or 'kthread'. */
  task: string;
  lock: 'mmap_lock';
  mm: number;
  mode: 'read' | 'write';
  fn: string;
  readers: number;
  writer: string | null;
}

/** Thrown by a lock call that can never return; only the replayer catches it. */
export class TaskHung extends Error {
  constructor(readonly hung: HungTask) {
    super(
      `task ${hung.task} hung in ${hung.fn}: mmap_${hung.mode}_lock of mm ${hung.mm} ` +
        `(rwsem readers ${hung.readers}, writer ${hung.writer ?? 'none'})`,
    );
    this.name = 'TaskHung';
  }
}

function lockOf(sim: Sim, mm: number): MmapLockState {
  let l = sim.mmapLocks.get(mm);
  if (l === undefined) {
    l = { readers: 0, writer: null };
    sim.mmapLocks.set(mm, l);
  }
  return l;
}

function taskName(sim: Sim): string {
  return sim.current.pid ?? 'kthread';
}

function hang(sim: Sim, mm: number, mode: 'read' | 'write', fn: string, l: MmapLockState): never {
  throw new TaskHung({ task: taskName(sim), lock: 'mmap_lock', mm, mode, fn, readers: l.readers, writer: l.writer });
}

/** mmap_read_lock: granted unless a writer holds the lock (then the single-threaded model can never proceed). */
export function mmapReadLock(sim: Sim, mm: number, fn: string): void {
  const l = lockOf(sim, mm);
  if (l.writer !== null) hang(sim, mm, 'read', fn, l);
  l.readers += 1;
}

/**
 * mmap_read_unlock: the caller says it holds a read lock. Returns false when nobody held one: the count is
 * still decremented (the kernel's up_read does not check), so the rwsem is now corrupt.
 */
export function mmapReadUnlock(sim: Sim, mm: number): boolean {
  const l = lockOf(sim, mm);
  const held = l.readers > 0;
  l.readers -= 1;
  return held;
}

/** mmap_write_lock: granted only when the count is exactly free; anything else never returns. */
export function mmapWriteLock(sim: Sim, mm: number, fn: string): void {
  const l = lockOf(sim, mm);
  if (l.readers !== 0 || l.writer !== null) hang(sim, mm, 'write', fn, l);
  l.writer = taskName(sim);
}

export function mmapWriteUnlock(sim: Sim, mm: number): void {
  lockOf(sim, mm).writer = null;
}

/** The lock as it stands, for tests and reports. */
export function mmapLockState(sim: Sim, mm: number): MmapLockState {
  const l = sim.mmapLocks.get(mm);
  return l ? { ...l } : { readers: 0, writer: null };
}
