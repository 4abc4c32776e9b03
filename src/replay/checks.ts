// SPDX-License-Identifier: GPL-2.0-only
/**
 * check_map and check_refs: what the selftest's MD_CHECK_MAP and MD_CHECK_REFS ioctls assert, read straight
 * from the state (they are observations, so they emit nothing and never WARN). A failed check is a
 * mismatch of the replay, not an error.
 */
import { mappingAt } from '../structures/mapping-table.js';
import { rangeGet } from '../structures/range-map.js';
import { xaLoad } from '../structures/xarray.js';
import type { State } from '../state/state.js';
import { hex } from '../lib/format.js';

/** The physical address an IO page table translates iova to, or null when nothing maps it. */
export function domainLookup(state: State, domain: string, iova: bigint): bigint | null {
  const d = state.domains[domain];
  if (!d) return null;
  const m = mappingAt(d.mappings, iova);
  if (!m) return null;
  return m.paddr + (iova - m.iova);
}

/** The PFN behind a user virtual address, or null. */
export function userPfn(state: State, mm: number, addr: bigint): number | null {
  const m = state.mms[mm];
  if (!m) return null;
  const pfn = xaLoad(m.pt, Number(addr / BigInt(state.config.pageSize)));
  return pfn ?? null;
}

export interface CheckFailure {
  what: string;
  at: bigint;
  expected: string;
  actual: string;
  /** On the last failure listed: how many more failed that are not listed (the list stops at MAX_FAILURES). */
  more?: number;
}

/** Failures listed per check; the rest are only counted, so a check over a huge range stays readable. */
export const MAX_FAILURES = 8;

/** Keeps the first MAX_FAILURES failures and counts the others. */
class FailureList {
  readonly listed: CheckFailure[] = [];
  private more = 0;
  add(failure: () => CheckFailure): void {
    if (this.listed.length < MAX_FAILURES) this.listed.push(failure());
    else this.more += 1;
  }
  get any(): boolean {
    return this.listed.length > 0;
  }
  done(): CheckFailure[] {
    const last = this.listed[this.listed.length - 1];
    if (last !== undefined && this.more > 0) last.more = this.more;
    return this.listed;
  }
}

/** MD_CHECK_MAP: every domain of the IOAS maps each IO page of [iova, iova+length) to the user page behind uptr. */
export function checkMap(
  state: State,
  ioas: string,
  iova: bigint,
  length: bigint,
  mm: number,
  uptr: bigint,
): CheckFailure[] {
  const failures = new FailureList();
  const io = state.ioases[ioas];
  if (!io) return [{ what: 'ioas', at: iova, expected: `ioas ${ioas}`, actual: 'none' }];
  const page = BigInt(state.config.pageSize);
  for (const name of io.domains) {
    const d = state.domains[name];
    if (!d) continue;
    const step = d.pgsizes.reduce((a, b) => (b < a ? b : a), page);
    for (let off = 0n; off < length; off += step) {
      const uva = uptr + off;
      const pfn = userPfn(state, mm, uva);
      const expected = pfn === null ? null : BigInt(pfn) * page + (uva % page);
      const actual = domainLookup(state, name, iova + off);
      if (expected === null || actual !== expected) {
        failures.add(() => ({
          what: `domain ${name}`,
          at: iova + off,
          expected: expected === null ? 'a mapped user page' : hex(expected),
          actual: actual === null ? 'unmapped' : hex(actual),
        }));
      }
    }
  }
  return failures.done();
}

/** MD_CHECK_REFS: every page behind [uptr, uptr+length) has exactly `refs` pins. */
export function checkRefs(state: State, mm: number, uptr: bigint, length: bigint, refs: number): CheckFailure[] {
  const failures = new FailureList();
  const page = BigInt(state.config.pageSize);
  const first = uptr - (uptr % page);
  for (let va = first; va < uptr + length; va += page) {
    const pfn = userPfn(state, mm, va);
    if (pfn === null) {
      failures.add(() => ({ what: 'user page', at: va, expected: `${refs} pins`, actual: 'unmapped' }));
      continue;
    }
    const pins = rangeGet(state.frames, pfn)?.pins ?? 0;
    if (pins !== refs)
      failures.add(() => ({ what: `pfn ${hex(pfn)}`, at: va, expected: `${refs} pins`, actual: `${pins} pins` }));
  }
  return failures.done();
}
