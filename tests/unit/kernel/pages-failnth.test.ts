// SPDX-License-Identifier: GPL-2.0-only
/**
 * The selftest's fail_nth sweep on the model: for N = 1, 2, ... fail the N-th fault point of one kernel
 * call until a run completes without the injection firing. On merged and upstream, no run may WARN or
 * report a violation, and tearing down must leave nothing pinned, charged or allocated.
 */
import { describe, expect, it } from 'vitest';
import type { PageSlots } from '../../../src/machine/gup.js';
import { kfree } from '../../../src/machine/heap.js';
import {
  ioptAllocPages,
  ioptAreaAddAccess,
  ioptAreaFillDomain,
  ioptAreaFillDomains,
  ioptAreaRemoveAccess,
  ioptAreaUnfillDomain,
  ioptAreaUnfillDomains,
  ioptPagesPut,
  ioptPagesRwAccess,
} from '../../../src/kernel/pages.js';
import { rangeSegments } from '../../../src/structures/range-map.js';
import {
  type World,
  area,
  as,
  callerArray,
  eventsOf,
  ioas,
  mapRuns,
  mockDomain,
  proc,
  setAreaPages,
  warns,
  violations,
  world,
} from '../../support/world.js';

const UPTR = 0x7f0000000000n;
const VPN = Number(UPTR / 4096n);
const IOVA = 1n << 24n;
const P = 0x40000;
const Q = 0x80000;

interface Ctx {
  w: World;
  pages: number;
  a: number;
}

/** p1 with 2 runs of 8 pages, a pages over them, IOAS A with `domains`, an unfilled area over all 16 pages. */
function base(variant: 'merged' | 'upstream', domains: string[], tempMemoryLimit = 65536): Ctx {
  const w = world(variant, { tempMemoryLimit });
  const mm = proc(w, 'p1');
  mapRuns(w, mm, VPN, [
    [P, 8],
    [Q, 8],
  ]);
  const pages = ioptAllocPages(w.sim, UPTR, 16n * 4096n, true);
  for (const d of domains) mockDomain(w, d);
  ioas(w, 'A', domains);
  const a = area(w, 'A', IOVA, 0, 15);
  return { w, pages, a };
}

/** Run `op` with the N-th fault point armed; true if the injection fired. */
function withFault(w: World, nth: number, op: () => void): boolean {
  w.sim.emit({ type: 'FaultArmed', v: 1, nth, site: null });
  w.sim.faultPointsReached = 0;
  const before = eventsOf(w, 'FaultInjected').length;
  op();
  w.sim.emit({ type: 'FaultDisarmed', v: 1, fired: eventsOf(w, 'FaultInjected').length > before });
  return eventsOf(w, 'FaultInjected').length > before;
}

function pinnedFrames(w: World): number {
  let n = 0;
  for (const seg of rangeSegments(w.sim.state.frames, 0, Number.MAX_SAFE_INTEGER))
    if (seg.value.pins > 0) n += seg.count;
  return n;
}

function iommufdAllocations(w: World): string[] {
  return Object.values(w.sim.state.heap)
    .filter((h) => h.owner === 'iommufd')
    .map((h) => h.tag);
}

/** Sweep N until the op runs clean; `teardown` must return the world to nothing pinned. */
function sweep(
  name: string,
  make: (variant: 'merged' | 'upstream') => Ctx,
  op: (c: Ctx) => void,
  teardown: (c: Ctx) => void,
): void {
  for (const variant of ['merged', 'upstream'] as const) {
    it(`${name} (${variant}): every injected failure unwinds cleanly`, () => {
      let fired = true;
      let n = 0;
      while (fired) {
        n += 1;
        const c = make(variant);
        fired = withFault(c.w, n, () => op(c));
        teardown(c);
        ioptPagesPut(c.w.sim, c.pages, 'test');
        expect({ n, warns: warns(c.w), violations: violations(c.w) }).toEqual({ n, warns: [], violations: [] });
        expect({ n, pinned: pinnedFrames(c.w) }).toEqual({ n, pinned: 0 });
        expect({ n, heap: iommufdAllocations(c.w) }).toEqual({ n, heap: [] });
        const s = c.w.sim.state;
        expect({ n, user: s.users[1000]?.lockedVm, pinned: s.mms[s.processes.p1?.mm ?? -1]?.pinnedVm }).toEqual({
          n,
          user: 0,
          pinned: 0,
        });
      }
      expect(n).toBeGreaterThan(1);
    });
  }
}

describe('fail_nth sweeps over the pages.c entry points', () => {
  sweep(
    'iopt_area_fill_domains into two domains with one-run batches',
    (v) => base(v, ['D0', 'D1'], 16),
    (c) => {
      if (ioptAreaFillDomains(c.w.sim, c.a, c.pages) === 0) setAreaPages(c.w, c.a, c.pages);
    },
    (c) => {
      if (c.w.sim.state.areas[c.a]?.pages !== null) ioptAreaUnfillDomains(c.w.sim, c.a, c.pages);
    },
  );

  sweep(
    'iopt_area_add_access without domains, as a kthread',
    (v) => {
      const c = base(v, []);
      setAreaPages(c.w, c.a, c.pages);
      return Object.assign(c, { buf: callerArray(c.w, 12) });
    },
    (c) => {
      const out: PageSlots = { slots: [] };
      const buf = (c as Ctx & { buf: ReturnType<typeof callerArray> }).buf;
      const rc = as(c.w, null, () => ioptAreaAddAccess(c.w.sim, c.a, 2, 13, out, buf, true));
      kfree(c.w.sim, buf, 'test', 'caller');
      (c as Ctx & { added?: boolean }).added = rc === 0;
    },
    (c) => {
      if ((c as Ctx & { added?: boolean }).added === true) ioptAreaRemoveAccess(c.w.sim, c.a, 2, 13);
    },
  );

  sweep(
    'iopt_area_fill_domain with an access in the middle',
    (v) => {
      const c = base(v, []);
      setAreaPages(c.w, c.a, c.pages);
      expect(ioptAreaAddAccess(c.w.sim, c.a, 6, 9, { slots: [] }, callerArray(c.w, 4), true)).toBe(0);
      mockDomain(c.w, 'D');
      return c;
    },
    (c) => {
      (c as Ctx & { filled?: boolean }).filled = ioptAreaFillDomain(c.w.sim, c.a, 'D') === 0;
    },
    (c) => {
      if ((c as Ctx & { filled?: boolean }).filled === true) ioptAreaUnfillDomain(c.w.sim, c.a, c.pages, 'D');
      ioptAreaRemoveAccess(c.w.sim, c.a, 6, 9);
      for (const h of Object.values(c.w.sim.state.heap))
        if (h.owner === 'caller') kfree(c.w.sim, { space: 'heap', alloc: h.id, offset: 0 }, 'test', 'caller');
    },
  );

  sweep(
    'iopt_pages_rw_access slow path from another process',
    (v) => {
      const c = base(v, []);
      proc(c.w, 'p2');
      return c;
    },
    (c) => {
      as(c.w, 'p2', () =>
        ioptPagesRwAccess(c.w.sim, c.pages, 4000, new Uint8Array(9000), { write: false, kthread: false }),
      );
    },
    () => {},
  );

  sweep(
    'iopt_pages_rw_access one page from another process (rw_page)',
    (v) => {
      const c = base(v, []);
      proc(c.w, 'p2');
      return c;
    },
    (c) => {
      as(c.w, 'p2', () =>
        ioptPagesRwAccess(c.w.sim, c.pages, 4100, Uint8Array.of(1, 2, 3), { write: true, kthread: false }),
      );
    },
    () => {},
  );
});
