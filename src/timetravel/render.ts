// SPDX-License-Identifier: GPL-2.0-only
/**
 * renderState: a state as readable lines, the layout of `at RUN SEQ`. Processes and their mms (VMAs and page
 * tables as runs), users, frames as runs, heap, each IOAS with its areas and trees, each iopt_pages with its
 * counters, xarray runs and trees, accesses, domains with their mappings, page data, counters.
 *
 * Output is deterministic: tables are listed by key (numbers numerically, names by code point), runs by
 * position. `maxItems` caps every list (runs, nodes, mappings, records) and says how many were left out.
 */
import { mappingsCount, mappingsForEachFrom } from '../structures/mapping-table.js';
import { itreeEntries } from '../structures/interval-tree.js';
import type { IntervalTree, Key as TreeKey } from '../structures/interval-tree.js';
import type { RangeMap } from '../structures/range-map.js';
import { rangeElementCount, rangeForEachAll } from '../structures/range-map.js';
import { xaForEachRun } from '../structures/xarray.js';
import type { Xarray } from '../structures/xarray.js';
import { digestHex } from '../lib/digest.js';
import { formatValue, hex } from '../state/diff.js';
import type { Area, Frame, State, Vma } from '../state/state.js';

export interface RenderOptions {
  /** Most lines per list before "... N more" (unlimited unless given). */
  maxItems?: number;
}

const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

function span(first: number, count: number, show: (n: number) => string = hex): string {
  return count === 1 ? show(first) : `${show(first)}..${show(first + count - 1)}`;
}

function bigSpan(first: bigint, last: bigint): string {
  return first === last ? hex(first) : `${hex(first)}..${hex(last)}`;
}

function keysOf(table: object): string[] {
  const keys = Object.keys(table);
  return keys.every((k) => /^\d+$/.test(k)) ? keys.sort((a, b) => Number(a) - Number(b)) : keys.sort();
}

/** Collects lines, capping each list. */
class Lines {
  readonly out: string[] = [];
  constructor(private readonly max: number) {}

  line(text: string): void {
    this.out.push(text);
  }

  /** One line per item from `each` (which calls `emit`), capped at max with a closing count. */
  list(indent: string, each: (emit: (text: string) => boolean) => void): void {
    let shown = 0;
    let left = 0;
    each((text) => {
      if (shown < this.max) {
        this.out.push(indent + text);
        shown++;
      } else left++;
      return true;
    });
    if (left > 0) this.out.push(`${indent}... ${left} more`);
  }
}

function xaLines(
  out: Lines,
  indent: string,
  label: string,
  unit: string,
  xa: Xarray,
  showIndex: (n: number) => string,
): void {
  if (xa.count === 0) return;
  out.list(indent, (emit) =>
    xaForEachRun(xa, 0, Number.MAX_SAFE_INTEGER, (index, pfn, count) => {
      emit(`${label} ${unit} ${span(index, count, showIndex)} -> pfn ${span(pfn, count)}`);
    }),
  );
}

function vmaLines(out: Lines, indent: string, vmas: RangeMap<Vma>): void {
  out.list(indent, (emit) =>
    rangeForEachAll(vmas, (start, count, vma) => {
      const shared = vma.shared ? ' shared' : '';
      emit(`vma vpn ${span(start, count)} ${vma.writable ? 'rw' : 'ro'} ${vma.huge}${shared}`);
    }),
  );
}

function frameText(f: Frame): string {
  return `pins ${f.pins}, maps ${f.maps}, ${f.huge}, ${f.dirty ? 'dirty' : 'clean'}`;
}

function treeLines<K extends TreeKey>(
  out: Lines,
  indent: string,
  label: string,
  tree: IntervalTree<K>,
  extra: (id: number) => string = () => '',
): void {
  out.list(indent, (emit) => {
    for (const e of itreeEntries(tree)) {
      const bounds =
        typeof e.start === 'bigint' ? `iova ${bigSpan(e.start, e.last as bigint)}` : `index ${e.start}..${e.last}`;
      emit(`${label} node ${e.id}: ${bounds}${extra(e.id)}`);
    }
  });
}

function areaText(a: Area): string {
  const prot = `${a.read ? 'r' : '-'}${a.write ? 'w' : '-'}`;
  const pages = a.pages === null ? 'no pages' : `pages ${a.pages} index ${a.firstIndex}..${a.lastIndex}`;
  return (
    `area ${a.id}: iova ${bigSpan(a.iova, a.lastIova)}, ${pages}, offset ${a.pageOffset}, ${prot}, ` +
    `storage ${a.storageDomain ?? 'none'}, accesses ${a.numAccesses}${a.preventAccess ? ', prevent access' : ''}`
  );
}

/**
 * The state as lines.
 *
 * @example renderState(stateAt(source, 120)).join('\n')
 */
export function renderState(state: State, options: RenderOptions = {}): string[] {
  const out = new Lines(options.maxItems ?? Infinity);
  const c = state.config;
  out.line(
    `digest ${digestHex(state.digest)}  ops done ${state.opsDone}  next id ${state.nextId}  next pfn ${hex(state.nextPfn)}`,
  );
  out.line(
    `config: variant ${state.run.variant}, fixes ${formatValue(state.run.fixes)}, page size ${c.pageSize}, test build ${yesNo(c.testBuild)}, ` +
      `temp memory limit ${c.tempMemoryLimit}, gup zero on overflow ${yesNo(c.gupZeroOnOverflow)}`,
  );
  out.line(`counters: warns ${state.counts.warns}, violations ${state.counts.violations}`);
  out.line(
    `fault: ${state.fault === null ? 'none' : `nth ${state.fault.nth}${state.fault.site === null ? '' : ` at ${state.fault.site}`}`}`,
  );

  const procs = keysOf(state.processes);
  out.line(`processes (${procs.length})`);
  out.list('  ', (emit) => {
    for (const pid of procs) {
      const p = state.processes[pid];
      if (p === undefined) continue;
      emit(
        `${pid}: mm ${p.mm}, uid ${p.uid}, memlock ${p.memlock === null ? 'unlimited' : p.memlock.toString()}, ` +
          `cap_ipc_lock ${yesNo(p.capIpcLock)}${p.exited ? ', exited' : ''}`,
      );
    }
  });

  const mms = keysOf(state.mms);
  out.line(`mms (${mms.length})`);
  for (const id of mms) {
    const m = state.mms[Number(id)];
    if (m === undefined) continue;
    out.line(
      `  mm ${id}: pid ${m.pid}, users ${m.users}, count ${m.count}, locked_vm ${m.lockedVm}, pinned_vm ${m.pinnedVm}`,
    );
    vmaLines(out, '    ', m.vmas);
    xaLines(out, '    ', 'pt', 'vpn', m.pt, (n) => hex(n));
  }

  const users = keysOf(state.users);
  out.line(`users (${users.length})`);
  out.list('  ', (emit) => {
    for (const uid of users) emit(`uid ${uid}: locked_vm ${state.users[Number(uid)]?.lockedVm ?? 0}`);
  });

  out.line(`frames (${rangeElementCount(state.frames)} runs, ${state.frames.count} pages)`);
  out.list('  ', (emit) =>
    rangeForEachAll(state.frames, (start, count, frame) => {
      emit(`pfn ${span(start, count)}: ${frameText(frame)}`);
    }),
  );

  const heap = keysOf(state.heap);
  let bytes = 0;
  for (const id of heap) bytes += state.heap[Number(id)]?.size ?? 0;
  out.line(`heap (${heap.length} allocations, ${bytes} bytes)`);
  out.list('  ', (emit) => {
    for (const id of heap) {
      const h = state.heap[Number(id)];
      if (h !== undefined) emit(`#${id}: ${h.size} bytes, ${h.owner}, ${h.tag}, by ${h.fn}`);
    }
  });

  const ctxs = keysOf(state.ctxs);
  out.line(`ctxs (${ctxs.length})`);
  out.list('  ', (emit) => {
    for (const name of ctxs) {
      const x = state.ctxs[name];
      if (x !== undefined) emit(`${name}: pid ${x.pid}, account ${x.account}${x.vfioType1 ? ', vfio type1' : ''}`);
    }
  });

  // Areas by IOAS, in IOVA order.
  const areasByIoas = new Map<string, Area[]>();
  for (const id of keysOf(state.areas)) {
    const a = state.areas[Number(id)];
    if (a === undefined) continue;
    const list = areasByIoas.get(a.ioas) ?? [];
    list.push(a);
    areasByIoas.set(a.ioas, list);
  }
  const ioases = keysOf(state.ioases);
  out.line(`ioases (${ioases.length})`);
  for (const name of ioases) {
    const io = state.ioases[name];
    if (io === undefined) continue;
    out.line(
      `  ${name}: ctx ${io.ctx}, iova alignment ${hex(io.iovaAlignment)}, large pages ${yesNo(!io.disableLargePages)}, ` +
        `domains ${formatValue(io.domains)}, accesses ${formatValue(io.accesses)}`,
    );
    const inTree = new Set(itreeEntries(io.areas).map((e) => e.id));
    const areas = (areasByIoas.get(name) ?? []).sort((x, y) =>
      x.iova < y.iova ? -1 : x.iova > y.iova ? 1 : x.id - y.id,
    );
    out.list('    ', (emit) => {
      for (const a of areas) emit(`${areaText(a)}${inTree.has(a.id) ? '' : ' (not in the area tree)'}`);
      for (const e of itreeEntries(io.areas)) {
        if (state.areas[e.id] === undefined)
          emit(`area node ${e.id}: iova ${bigSpan(e.start, e.last)} (no area record)`);
      }
    });
    treeLines(out, '    ', 'allowed', io.allowed);
    treeLines(out, '    ', 'reserved', io.reserved, (id) => {
      const owner = io.reservedOwners[id];
      return owner === undefined ? '' : `, owner ${owner}`;
    });
  }
  for (const [ioas, areas] of areasByIoas) {
    if (state.ioases[ioas] !== undefined) continue;
    out.line(`  ${ioas} (no IOAS record)`);
    out.list('    ', (emit) => {
      for (const a of areas) emit(areaText(a));
    });
  }

  const pages = keysOf(state.pages);
  const inAccessTree = new Set<number>();
  out.line(`pages (${pages.length})`);
  for (const id of pages) {
    const p = state.pages[Number(id)];
    if (p === undefined) continue;
    for (const e of itreeEntries(p.accessTree)) if (state.pagesAccesses[e.id]?.pages === p.id) inAccessTree.add(e.id);
    out.line(
      `  pages ${id}: npages ${p.npages}, npinned ${p.npinned}, last_npinned ${p.lastNpinned}, refs ${p.refs}, ` +
        `uptr ${hex(p.uptr)}, ${p.writable ? 'rw' : 'ro'}, account ${p.accountMode}, source ${p.sourcePid} mm ${p.sourceMm} uid ${p.sourceUid}`,
    );
    xaLines(out, '    ', 'xa', 'index', p.xa, String);
    treeLines(out, '    ', 'access_itree', p.accessTree, (node) => {
      const acc = state.pagesAccesses[node];
      return acc === undefined ? ' (no access record)' : `, users ${acc.users}`;
    });
    treeLines(out, '    ', 'domains_itree', p.domainsTree);
  }
  const orphans = keysOf(state.pagesAccesses).filter((id) => !inAccessTree.has(Number(id)));
  if (orphans.length > 0) {
    out.line(`pages accesses outside an access_itree (${orphans.length})`);
    out.list('  ', (emit) => {
      for (const id of orphans) {
        const acc = state.pagesAccesses[Number(id)];
        if (acc !== undefined)
          emit(`node ${id}: pages ${acc.pages} index ${acc.index}..${acc.last}, users ${acc.users}`);
      }
    });
  }

  const accesses = keysOf(state.accesses);
  out.line(`accesses (${accesses.length})`);
  for (const name of accesses) {
    const acc = state.accesses[name];
    if (acc === undefined) continue;
    out.line(`  ${name}: ioas ${acc.ioas ?? 'none'}, needs pin pages ${yesNo(acc.needsPinPages)}`);
    out.list('    ', (emit) => {
      for (const item of keysOf(acc.items)) {
        const it = acc.items[Number(item)];
        if (it !== undefined) emit(`item ${item}: iova ${hex(it.iova)}, length ${hex(it.length)}`);
      }
    });
  }

  const domains = keysOf(state.domains);
  out.line(`domains (${domains.length})`);
  for (const name of domains) {
    const d = state.domains[name];
    if (d === undefined) continue;
    out.line(
      `  ${name}: ${d.kind}, pgsizes ${formatValue(d.pgsizes)}, aperture ${bigSpan(d.aperture[0], d.aperture[1])}, ` +
        `mapped ${hex(d.mappedBytes)} bytes in ${mappingsCount(d.mappings)} pieces`,
    );
    out.list('    ', (emit) =>
      mappingsForEachFrom(d.mappings, undefined, (m) => {
        const iova = m.iova;
        const flags = `${m.headFlag ? ' head' : ''}${m.tailFlag ? ' tail' : ''}`;
        emit(
          `iova ${bigSpan(iova, iova + m.size - 1n)} -> paddr ${hex(m.paddr)}, pgsize ${hex(m.pgsize)}, ` +
            `${m.read ? 'r' : '-'}${m.write ? 'w' : '-'}, extent ${m.extent}${flags}`,
        );
      }),
    );
  }

  const data = keysOf(state.pageData);
  out.line(`page data (${data.length} pages written)`);
  out.list('  ', (emit) => {
    for (const pfn of data) {
      const hexText = state.pageData[Number(pfn)] ?? '';
      const nonZero = hexText.replace(/0/g, '').length;
      emit(`pfn ${hex(Number(pfn))}: ${hexText.length / 2} bytes${nonZero === 0 ? ', all zero' : ''}`);
    }
  });
  return out.out;
}
