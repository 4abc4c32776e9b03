// SPDX-License-Identifier: GPL-2.0-only
/**
 * Invariant 5 for the incremental checker (incremental.ts): the findings of checkAccessCounts, from what
 * it kept of the last op and what this op's events named.
 *
 * Kept: the areas each held range of each access goes through (a range is walked again only when an event
 * named its item or access, or the IOASes' area layout changed), the pins per area that adds up to, each
 * area's findings, and per pages the users of its access records and the num_accesses of its areas (sums
 * moved by the records and areas the events named), with a mirror of every access_itree's nodes.
 *
 * Per pages, a pages that was sound after the last op is sound now unless one of the nodes or records the
 * op named is wrong or its two sums differ: every other node and record is as it was. Otherwise (and for a
 * pages an event allocated, released or that had a finding) the full per-pages check runs, so the text is
 * the full checker's word for word.
 */
import type { Event } from '../../events/events.js';
import type { AccessItem, Pages, State } from '../../state/state.js';
import { itreeEntries } from '../../structures/interval-tree.js';
import type { InvariantFinding } from './finding.js';
import {
  checkAreaCounts,
  checkPagesAccesses,
  heldRanges,
  itemUnmapped,
  recordProblem,
  treeNodeProblem,
  walkItem,
} from './access-counts.js';

interface ItemKept {
  item: AccessItem;
  areas: number[];
  done: boolean;
}

interface AccessKept {
  ioas: string;
  internal: boolean;
  items: Map<number, ItemKept>;
}

const add = (m: Map<number, number>, k: number, n: number): void => {
  const v = (m.get(k) ?? 0) + n;
  if (v === 0) m.delete(k);
  else m.set(k, v);
};

/** Item ids in the order heldRanges gives them: the driver's items ascending, the HW queue's range (-1) last. */
const itemOrder = (a: number, b: number): number => (a === -1 ? 1 : b === -1 ? -1 : a - b);

export class AccessCountsKept {
  /** Nothing kept (or the run was reconfigured): the next check rebuilds everything. */
  private fresh = true;
  private readonly accesses = new Map<string, AccessKept>();
  /** Pins through each area, and internal ones (num_locks). */
  private readonly taken = new Map<number, number>();
  private readonly locked = new Map<number, number>();
  /** Held ranges no area fully maps. */
  private notDone = 0;
  /** The findings of each area with any, and the pages a num_accesses finding flags. */
  private readonly areaFound = new Map<number, { findings: InvariantFinding[]; flags: number | null }>();
  /** Every access_itree's nodes by pages, as the events inserted and removed them. */
  private readonly treeNodes = new Map<number, Map<number, [number, number]>>();
  /** Every iopt_pages_access record's pages and users, as of the last check. */
  private readonly records = new Map<number, { pages: number; users: number }>();
  /** Per pages: its records' users, and its areas' num_accesses. */
  private readonly users = new Map<number, number>();
  private readonly counted = new Map<number, number>();
  private readonly areaSeen = new Map<number, { pages: number | null; numAccesses: number }>();
  /** Pages with an access finding after the last check. */
  private reported = new Set<number>();
  /** The sets a check fills, kept from check to check and emptied (a Set per op each was most of its garbage). */
  private reportedNext = new Set<number>();
  private readonly dirtyAreas = new Set<number>();
  private readonly flaggedPages = new Set<number>();

  // What the current op touched.
  private layout = false;
  private readonly accessesTouched = new Set<string>();
  private readonly itemsTouched: [string, number][] = [];
  // Lists, not sets (an id may repeat: handling one twice gives the same), emptied without allocating.
  private readonly areasTouched: number[] = [];
  private readonly recordsTouched: number[] = [];
  /** Nodes and records a pages must look at again: pages, id. */
  private readonly pagesNodes: [number, number][] = [];
  private readonly pagesWhole = new Set<number>();

  observe(e: Event): void {
    switch (e.type) {
      case 'RunConfigured':
        this.fresh = true;
        break;
      case 'ItreeInserted':
      case 'ItreeRemoved': {
        const t = e.tree;
        if (t.kind === 'area') this.layout = true;
        if (t.kind !== 'access') break;
        let nodes = this.treeNodes.get(t.pages);
        if (nodes === undefined) this.treeNodes.set(t.pages, (nodes = new Map<number, [number, number]>()));
        if (e.type === 'ItreeInserted') nodes.set(e.node, [Number(e.start), Number(e.last)]);
        else nodes.delete(e.node);
        this.touchNode(t.pages, e.node);
        break;
      }
      case 'AreaAllocated':
      case 'AreaFreed':
      case 'AreaPagesSet':
        this.layout = true;
        this.areasTouched.push(e.area);
        break;
      case 'AreaAccessesChanged':
      case 'AreaLocksChanged':
        this.areasTouched.push(e.area);
        break;
      case 'IoasAllocated':
        this.layout = true;
        break;
      case 'AccessCreated':
      case 'AccessDestroyed':
      case 'AccessIoasReplaced':
        this.accessesTouched.add(e.access);
        break;
      case 'HwQueueAllocated':
      case 'HwQueueDestroyed':
        this.accessesTouched.add(e.queue);
        break;
      case 'AccessItemAdded':
      case 'AccessItemRemoved':
        this.itemsTouched.push([e.access, e.item]);
        break;
      case 'PagesAccessAllocated':
      case 'PagesAccessUsersChanged':
      case 'PagesAccessFreed':
        this.recordsTouched.push(e.node);
        break;
      case 'PagesAllocated':
      case 'PagesReleased':
        this.treeNodes.delete(e.pages);
        this.pagesWhole.add(e.pages);
        break;
      default:
        break;
    }
  }

  /** The findings of checkAccessCounts(state, pages), appended to `out`. */
  check(state: State, pages: readonly Pages[], out: InvariantFinding[]): void {
    const dirtyAreas = this.dirtyAreas;
    if (dirtyAreas.size > 0) dirtyAreas.clear();
    for (const id of this.areasTouched) dirtyAreas.add(id);
    if (this.fresh) this.rebuild(state, dirtyAreas);
    else this.update(state, dirtyAreas);

    if (this.notDone > 0) {
      for (const name of [...this.accesses.keys()].sort()) {
        const kept = this.accesses.get(name) as AccessKept;
        for (const id of [...kept.items.keys()].sort(itemOrder)) {
          const k = kept.items.get(id) as ItemKept;
          if (!k.done) out.push(itemUnmapped(name, kept.ioas, k.item));
        }
      }
    }

    for (const id of dirtyAreas) {
      const a = state.areas[id];
      const found: InvariantFinding[] = [];
      const flagged = a !== undefined && checkAreaCounts(a, this.locked.get(id) ?? 0, this.taken.get(id) ?? 0, found);
      if (found.length === 0 || a === undefined) this.areaFound.delete(id);
      else this.areaFound.set(id, { findings: found, flags: flagged ? a.pages : null });
    }
    const flaggedPages = this.flaggedPages;
    if (flaggedPages.size > 0) flaggedPages.clear();
    if (this.areaFound.size > 0) {
      for (const id of [...this.areaFound.keys()].sort((x, y) => x - y)) {
        const f = this.areaFound.get(id) as { findings: InvariantFinding[]; flags: number | null };
        for (const x of f.findings) out.push(x);
        if (f.flags !== null) flaggedPages.add(f.flags);
      }
    }

    const reported = this.reportedNext;
    if (reported.size > 0) reported.clear();
    for (const p of pages) {
      const u = this.users.get(p.id) ?? 0;
      const c = this.counted.get(p.id) ?? 0;
      const flagged = flaggedPages.has(p.id);
      if (
        this.fresh ||
        this.reported.has(p.id) ||
        this.pagesWhole.has(p.id) ||
        !this.soundNow(state, p, u, c, flagged)
      ) {
        if (checkPagesAccesses(state, p, this.recordsOf(p.id), u, c, flagged, out)) reported.add(p.id);
      }
    }
    this.reportedNext = this.reported;
    this.reported = reported;
    this.fresh = false;
    this.clearTouched();
  }

  private touchNode(pages: number, node: number): void {
    this.pagesNodes.push([pages, node]);
  }

  /** A pages sound after the last op: still sound when the nodes and records the op named are, and its sums agree. */
  private soundNow(state: State, p: Pages, u: number, c: number, flagged: boolean): boolean {
    if (u !== c && !flagged) return false;
    const tree = this.treeNodes.get(p.id);
    for (const [pages, id] of this.pagesNodes) {
      if (pages !== p.id) continue;
      const node = tree?.get(id);
      if (node !== undefined && treeNodeProblem(state, p, id, node[0], node[1]) !== null) return false;
      if (state.pagesAccesses[id]?.pages === p.id && recordProblem(state, p, id) !== null) return false;
    }
    return true;
  }

  /** The ids of the records of `pages`, ascending. */
  private recordsOf(pages: number): number[] {
    const ids: number[] = [];
    for (const [id, r] of this.records) if (r.pages === pages) ids.push(id);
    return ids.sort((x, y) => x - y);
  }

  private rebuild(state: State, dirtyAreas: Set<number>): void {
    this.accesses.clear();
    this.taken.clear();
    this.locked.clear();
    this.notDone = 0;
    this.areaFound.clear();
    this.treeNodes.clear();
    this.records.clear();
    this.users.clear();
    this.counted.clear();
    this.areaSeen.clear();
    for (const p of Object.values(state.pages)) {
      const nodes = new Map<number, [number, number]>();
      for (const n of itreeEntries(p.accessTree)) nodes.set(n.id, [n.start, n.last]);
      this.treeNodes.set(p.id, nodes);
    }
    for (const n of Object.values(state.pagesAccesses)) {
      this.records.set(n.id, { pages: n.pages, users: n.users });
      add(this.users, n.pages, n.users);
    }
    for (const a of Object.values(state.areas)) {
      this.areaSeen.set(a.id, { pages: a.pages, numAccesses: a.numAccesses });
      if (a.pages !== null) add(this.counted, a.pages, a.numAccesses);
      dirtyAreas.add(a.id);
    }
    for (const name of Object.keys(state.accesses)) this.keepAccess(state, name, dirtyAreas);
  }

  private update(state: State, dirtyAreas: Set<number>): void {
    if (this.layout) {
      for (const name of [...this.accesses.keys()]) this.dropAccess(name, dirtyAreas);
      for (const name of Object.keys(state.accesses)) this.keepAccess(state, name, dirtyAreas);
    } else {
      for (const name of this.accessesTouched) {
        this.dropAccess(name, dirtyAreas);
        this.keepAccess(state, name, dirtyAreas);
      }
      for (const [name, id] of this.itemsTouched) {
        if (this.accessesTouched.has(name)) continue;
        const kept = this.accesses.get(name);
        if (kept === undefined) {
          this.keepAccess(state, name, dirtyAreas);
          continue;
        }
        this.dropItem(kept, id, dirtyAreas);
        const item = state.accesses[name]?.items[id];
        if (item !== undefined) this.keepItem(state, kept, item, dirtyAreas);
      }
    }
    for (const id of this.recordsTouched) {
      const before = this.records.get(id);
      const now = state.pagesAccesses[id];
      if (before !== undefined) {
        add(this.users, before.pages, -before.users);
        this.touchNode(before.pages, id);
      }
      if (now === undefined) {
        this.records.delete(id);
      } else {
        this.records.set(id, { pages: now.pages, users: now.users });
        add(this.users, now.pages, now.users);
        this.touchNode(now.pages, id);
      }
    }
    for (const id of this.areasTouched) {
      const before = this.areaSeen.get(id);
      const now = state.areas[id];
      if (before !== undefined && before.pages !== null) add(this.counted, before.pages, -before.numAccesses);
      if (now === undefined) {
        this.areaSeen.delete(id);
      } else {
        this.areaSeen.set(id, { pages: now.pages, numAccesses: now.numAccesses });
        if (now.pages !== null) add(this.counted, now.pages, now.numAccesses);
      }
    }
  }

  /** Walk every held range of an access that checkAccessCounts walks. */
  private keepAccess(state: State, name: string, dirtyAreas: Set<number>): void {
    const acc = state.accesses[name];
    if (acc === undefined || acc.ioas === null || state.ioases[acc.ioas] === undefined) return;
    const kept: AccessKept = { ioas: acc.ioas, internal: acc.internal === true, items: new Map() };
    this.accesses.set(name, kept);
    for (const item of heldRanges(state, acc)) this.keepItem(state, kept, item, dirtyAreas);
  }

  private dropAccess(name: string, dirtyAreas: Set<number>): void {
    const kept = this.accesses.get(name);
    if (kept === undefined) return;
    for (const id of [...kept.items.keys()]) this.dropItem(kept, id, dirtyAreas);
    this.accesses.delete(name);
  }

  private keepItem(state: State, kept: AccessKept, item: AccessItem, dirtyAreas: Set<number>): void {
    const walk = walkItem(state, kept.ioas, item);
    kept.items.set(item.id, { item, areas: walk.areas, done: walk.done });
    this.count(kept, walk.areas, 1, dirtyAreas);
    if (!walk.done) this.notDone += 1;
  }

  private dropItem(kept: AccessKept, id: number, dirtyAreas: Set<number>): void {
    const k = kept.items.get(id);
    if (k === undefined) return;
    this.count(kept, k.areas, -1, dirtyAreas);
    if (!k.done) this.notDone -= 1;
    kept.items.delete(id);
  }

  private count(kept: AccessKept, areas: readonly number[], sign: 1 | -1, dirtyAreas: Set<number>): void {
    for (const id of areas) {
      add(this.taken, id, sign);
      if (kept.internal) add(this.locked, id, sign);
      dirtyAreas.add(id);
    }
  }

  private clearTouched(): void {
    this.layout = false;
    if (this.accessesTouched.size > 0) this.accessesTouched.clear();
    this.itemsTouched.length = 0;
    this.areasTouched.length = 0;
    this.recordsTouched.length = 0;
    this.pagesNodes.length = 0;
    if (this.pagesWhole.size > 0) this.pagesWhole.clear();
  }
}
