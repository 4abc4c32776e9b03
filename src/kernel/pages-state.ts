// SPDX-License-Identifier: GPL-2.0-only
/**
 * How the pages.c model reads the State (drivers/iommu/iommufd/pages.c has these as plain pointer
 * dereferences): the live iopt_pages and iopt_area records, the double-span walks over a pages' two index
 * trees (re-reading the trees at every step), the remote-mm test and the [merged, test] switch; and the
 * pfn_reader_user record, which the accounting and the reader both use (so neither imports the other).
 *
 * Records returned here are live: a reducer changes them in place, so copy a field before emitting an event
 * that changes it. Nothing here writes.
 */
import type { GupFlags, PageSlots } from '../machine/gup.js';
import type { FolioHandle } from '../machine/memfd.js';
import type { Ptr } from '../machine/heap.js';
import type { Sim } from '../machine/sim.js';
import { InternalError } from '../lib/errors.js';
import type { Area, Pages } from '../state/state.js';
import type { DoubleSpan } from '../structures/span.js';
import { doubleSpans } from '../structures/span.js';

/** sizeof(struct page *): upages_len counts bytes of these. */
export const PAGE_PTR_BYTES = 8;

/** A page handle array: `ptr` is the C pointer (owned kmalloc, or into a caller's array); slot i is slots[base + i]. */
export interface Upages {
  ptr: Ptr;
  slots: PageSlots;
  base: number;
}

export interface PfnReaderUser {
  upages: Upages | null;
  /** Capacity of upages in bytes (the kernel's size_t upages_len). */
  upagesLen: number;
  upagesStart: number;
  upagesEnd: number;
  gupFlags: GupFlags;
  /** -1: no mm reference; 0: mm reference (or the local mm); 1: reference plus the mmap read lock. */
  locked: number;
  /** IOPT_ADDRESS_FILE only (null otherwise): the memfd and the folio handle array of pin_memfd_pages. */
  file: string | null;
  ufolios: Ufolios | null;
  /** Capacity of ufolios in bytes. */
  ufoliosLen: number;
  /** Page offset into the folio at ufoliosNext. */
  ufoliosOffset: number;
  /** The first folio not yet moved into a batch (an index into ufolios.slots). */
  ufoliosNext: number;
}

/** The `struct folio **` array of a file reader: a temp_kmalloc buffer; slots persist across pins. */
export interface Ufolios {
  ptr: Ptr;
  slots: (FolioHandle | undefined)[];
}

/** The live iopt_pages record; a missing one means the model itself lost track (a bug, not a kernel event). */
export function pagesOf(sim: Sim, pages: number): Pages {
  const p = sim.state.pages[pages];
  if (p === undefined) throw new InternalError(`iopt_pages ${pages} does not exist`);
  return p;
}

export function areaOf(sim: Sim, area: number): Area {
  const a = sim.state.areas[area];
  if (a === undefined) throw new InternalError(`iopt_area ${area} does not exist`);
  return a;
}

/** The double spans of (access_itree, domains_itree) of a pages, re-reading the trees at every step. */
export function accessDomainSpans(sim: Sim, pages: number, first: number, last: number): Generator<DoubleSpan<number>> {
  return doubleSpans(
    () => pagesOf(sim, pages).accessTree,
    () => pagesOf(sim, pages).domainsTree,
    first,
    last,
  );
}

/** The double spans of (domains_itree, access_itree): the order domain unfill uses. */
export function domainAccessSpans(sim: Sim, pages: number, first: number, last: number): Generator<DoubleSpan<number>> {
  return doubleSpans(
    () => pagesOf(sim, pages).domainsTree,
    () => pagesOf(sim, pages).accessTree,
    first,
    last,
  );
}

/** source_mm != current->mm: another process's mm, or any mm seen from a kernel thread. */
export function isRemote(sim: Sim, p: Pick<Pages, 'sourceMm'>): boolean {
  return p.sourceMm !== sim.current.mm;
}

/** A [merged, test] check or fault point exists: merged variants built with the selftest option. */
export function mergedTest(sim: Sim): boolean {
  return sim.merged && sim.testBuild;
}
