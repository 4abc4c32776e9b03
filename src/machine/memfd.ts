// SPDX-License-Identifier: GPL-2.0-only
/**
 * memfds (mm/memfd.c, mm/shmem.c) and the folio side of mm/gup.c that IOMMU_IOAS_MAP_FILE uses:
 * memfd_create + ftruncate, get_file / fput, memfd_pin_folios, folio_add_pins and unpin_folios.
 *
 * A memfd is `npages` pages in folios of one size (4K, or 2M as with MFD_HUGETLB / a huge shmem mount);
 * each folio is one naturally aligned PFN block of the default layout. The page cache holds every frame
 * (counted as one map), so a frame outlives the file only while it is pinned.
 *
 * Pins: the kernel counts FOLL_PIN on a large folio in the folio (_pincount), the model counts them per
 * PFN. A folio's pin count is the sum over its PFNs, and every pin is put on a definite PFN:
 * memfd_pin_folios puts the folio's one pin on the first page of the folio the caller asked for (its
 * offset page), folio_add_pins(folio, n) puts one pin on each of the n pages after it, so a caller that
 * uses nr pages of a folio holds exactly one pin per page it uses (what unpin_user_page_range_dirty_lock
 * later drops page by page), and unpin_folios drops the folio's one pin where memfd_pin_folios put it.
 *
 * Deviations: ftruncate populates the file at once (as mmap populates: a pin never allocates); a file is
 * never shrunk or mapped into a process; the fd is closed when its process exits.
 */
import type { HugeSize } from '../events/events.js';
import { InternalError } from '../lib/errors.js';
import type { MemFile } from '../state/state.js';
import { xaLoad } from '../structures/xarray.js';
import { EINVAL, ESRCH } from './errno.js';
import { unpinUserPages } from './gup.js';
import { allocBlocks, frameAt, hugePfns } from './memory.js';
import type { Sim } from './sim.js';

/** A pinned folio as the kernel's `struct folio *`: its PFN block and the PFN that holds its one pin. */
export interface FolioHandle {
  /** First PFN of the folio. */
  pfn: number;
  /** Pages in the folio. */
  npfns: number;
  /** Where memfd_pin_folios put the folio's pin. */
  pinPfn: number;
}

export function fileOf(sim: Sim, file: string): MemFile {
  const f = sim.state.files[file];
  if (f === undefined) throw new InternalError(`no memfd ${file}`);
  return f;
}

/** Pages per folio of a file. */
export function folioPages(sim: Sim, f: MemFile): number {
  return hugePfns(sim.pageSize, f.folio);
}

/**
 * memfd_create(name, MFD_CLOEXEC [| MFD_HUGETLB]) + ftruncate(fd, length) by a process: the length is
 * rounded up to the folio size. 0, or -EINVAL (length 0, a 1G folio), -ESRCH (the process exited).
 */
export function memfdCreate(sim: Sim, pid: string, file: string, length: bigint, folio: HugeSize): number {
  const proc = sim.state.processes[pid];
  if (proc === undefined) throw new InternalError(`no process ${pid}`);
  if (proc.exited) return -ESRCH;
  if (sim.state.files[file] !== undefined) throw new InternalError(`memfd ${file} already exists`);
  if (length <= 0n || folio === '1G') return -EINVAL;
  const per = hugePfns(sim.pageSize, folio);
  const unit = BigInt(per * sim.pageSize);
  const npages = Number(((length + unit - 1n) / unit) * BigInt(per));
  const runs = allocBlocks(sim, folio, npages / per).map((pfn): [number, number] => [pfn, per]);
  sim.emit({ type: 'MemfdCreated', v: 1, file, pid, npages, folio, runs });
  return 0;
}

/** get_file: one more reference to an open file. */
export function getFile(sim: Sim, file: string, fn: string): void {
  fileOf(sim, file);
  sim.emit({ type: 'FileRefChanged', v: 1, file, delta: 1, fn });
}

/** fput: the last reference releases the file and its page cache (pinned frames stay until unpinned). */
export function fput(sim: Sim, file: string, fn: string): void {
  const f = fileOf(sim, file);
  const refs = f.refs;
  if (refs <= 0) {
    sim.violation('use_after_free', fn, `fput of memfd ${file} with ${refs} references`, { file, refs });
    return;
  }
  sim.emit({ type: 'FileRefChanged', v: 1, file, delta: -1, fn });
  if (refs === 1) sim.emit({ type: 'FileReleased', v: 1, file, fn });
}

/** exit_files: a process's fds close when it exits, dropping its reference to each memfd it created. */
export function closeProcessFiles(sim: Sim, pid: string): void {
  const mine = Object.values(sim.state.files)
    .filter((f) => f.pid === pid)
    .map((f) => f.name)
    .sort();
  for (const file of mine) fput(sim, file, 'exit_files');
}

/**
 * memfd_pin_folios(file, start, end, folios, max_folios, &offset): pin each folio that holds a byte of
 * [start, end] (byte offsets), at most maxFolios of them, writing their handles to folios[0..]. Returns the
 * number of folios pinned and the byte offset of `start` in the first folio; -EINVAL for start > end or
 * max_folios 0, or when the range reaches past the end of the file (shmem refuses a read beyond i_size):
 * then nothing stays pinned.
 */
export function memfdPinFolios(
  sim: Sim,
  file: string,
  start: bigint,
  end: bigint,
  folios: (FolioHandle | undefined)[],
  maxFolios: number,
): { rc: number; offset: number } {
  const fn = 'memfd_pin_folios';
  const f = fileOf(sim, file);
  if (start > end || maxFolios <= 0) return { rc: -EINVAL, offset: 0 };
  const page = BigInt(sim.pageSize);
  const per = folioPages(sim, f);
  const firstIndex = Number(start / page);
  const lastIndex = Number(end / page);
  const firstFolio = Math.floor(firstIndex / per);
  const lastFolio = Math.floor(lastIndex / per);
  if (lastIndex >= f.npages) return { rc: -EINVAL, offset: 0 };
  const offset = Number(start % (page * BigInt(per)));
  let n = 0;
  for (let folio = firstFolio; folio <= lastFolio && n < maxFolios; folio++, n++) {
    const head = xaLoad(f.pt, folio * per);
    if (head === undefined) throw new InternalError(`memfd ${file}: folio ${folio} has no PFN`);
    const pinPfn = n === 0 ? head + (firstIndex - folio * per) : head;
    sim.emit({ type: 'PagesPinned', v: 1, pfn: pinPfn, count: 1, fn, mm: null });
    folios[n] = { pfn: head, npfns: per, pinPfn };
  }
  return { rc: n, offset };
}

/** Pins the model holds on a folio: the sum over its PFNs (folio_maybe_dma_pinned when > 0). */
export function folioPins(sim: Sim, folio: FolioHandle): number {
  let pins = 0;
  for (let pfn = folio.pfn; pfn < folio.pfn + folio.npfns; pfn++) pins += frameAt(sim.state, pfn)?.pins ?? 0;
  return pins;
}

/**
 * folio_add_pins(folio, pins): `pins` more FOLL_PIN references on a folio the caller already pinned, one
 * on each page from `fromPfn`. -EINVAL with a WARN when the folio holds no pin (the only way it fails).
 */
export function folioAddPins(sim: Sim, folio: FolioHandle, fromPfn: number, pins: number): number {
  const fn = 'folio_add_pins';
  if (folioPins(sim, folio) === 0) {
    sim.warn(fn, '!folio_maybe_dma_pinned(folio)', { pfn: folio.pfn });
    return -EINVAL;
  }
  if (pins <= 0) return 0;
  if (fromPfn < folio.pfn || fromPfn + pins > folio.pfn + folio.npfns)
    throw new InternalError(`folio_add_pins: ${pins} pins from ${fromPfn} leave folio ${folio.pfn}`);
  sim.emit({ type: 'PagesPinned', v: 1, pfn: fromPfn, count: pins, fn, mm: null });
  return 0;
}

/**
 * unpin_folios(folios, n): drop one pin from each folio handle, where memfd_pin_folios put it. A slot the
 * caller never wrote holds whatever the allocator left there (kmalloc does not zero): the kernel would
 * follow that garbage pointer; the model reports it ('uninitialized_read') and skips the slot.
 */
export function unpinFolios(sim: Sim, folios: readonly (FolioHandle | undefined)[], from: number, n: number): void {
  const fn = 'unpin_folios';
  const pfns: number[] = [];
  let garbage = 0;
  for (let i = from; i < from + n; i++) {
    const folio = folios[i];
    if (folio === undefined) garbage++;
    else pfns.push(folio.pinPfn);
  }
  if (pfns.length > 0) unpinUserPages(sim, pfns, fn);
  if (garbage > 0) {
    sim.violation(
      'uninitialized_read',
      fn,
      `${garbage} of ${n} folio pointers from slot ${from} were never written (kmalloc memory, not zeroed)`,
      { from, count: n, garbage },
    );
  }
}
