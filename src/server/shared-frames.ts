// SPDX-License-Identifier: GPL-2.0-only
/**
 * Shared mappings under `ioptrace run`: which model frames stand for the pages of each shared object
 * (a MAP_SHARED mapping, anonymous ones included: shmem backs them, one object per mmap call, named by
 * /proc/PID/maps as its device and inode), and which processes have declared which part of it.
 *
 * The kernel maps one object's page to the same frame in every process that maps it, across fork and
 * after the process that first touched it exits. The session declares user memory to the model lazily (an
 * `mmap` op when a range is first handed to the kernel), so two processes that map one object declare it
 * at different times; this book lets the later declaration name the frames of the earlier one (`mmap`
 * `pfns`, `shared: true`), and lets the session find a live process that still maps the object when the
 * one whose memory was pinned has gone.
 */

/** One declared shared range of a process: [start, end) maps `object` from byte `offset`. */
interface Declared {
  start: bigint;
  end: bigint;
  object: string;
  offset: bigint;
}

export class SharedFrames {
  /** Per object, per page index in the object, the model PFN that holds it. */
  private readonly frames = new Map<string, Map<number, number>>();
  private readonly declared = new Map<number, Declared[]>();

  constructor(private readonly pageSize: bigint) {}

  /**
   * The PFN runs the model already has for [offset, offset + length) of `object`, split where that
   * knowledge starts or stops: each piece is `pfns` (the frames to map again) or null (never declared, or
   * freed since: a fresh mapping). `live(pfn)` says whether the model still has the frame.
   */
  pieces(
    object: string,
    offset: bigint,
    length: bigint,
    live: (pfn: number) => boolean,
  ): { at: bigint; length: bigint; pfns: [number, number][] | null }[] {
    const known = this.frames.get(object);
    const first = Number(offset / this.pageSize);
    const count = Number(length / this.pageSize);
    const out: { at: bigint; length: bigint; pfns: [number, number][] | null }[] = [];
    for (let i = 0; i < count; i++) {
      const pfn = known?.get(first + i);
      const have = pfn !== undefined && live(pfn) ? pfn : null;
      const last = out[out.length - 1];
      if (last !== undefined && (last.pfns === null) === (have === null)) {
        last.length += this.pageSize;
        if (have !== null && last.pfns !== null) {
          const run = last.pfns[last.pfns.length - 1] as [number, number];
          if (run[0] + run[1] === have) run[1]++;
          else last.pfns.push([have, 1]);
        }
      } else {
        out.push({ at: BigInt(i) * this.pageSize, length: this.pageSize, pfns: have === null ? null : [[have, 1]] });
      }
    }
    return out;
  }

  /** `pid` declared [start, end) over `object` from `offset`; `pfnAt(addr)` is the model's frame of a page. */
  record(pid: number, range: Declared, pfnAt: (addr: bigint) => number | undefined): void {
    const list = this.declared.get(pid) ?? [];
    list.push({ ...range });
    this.declared.set(pid, list);
    const known = this.frames.get(range.object) ?? new Map<number, number>();
    this.frames.set(range.object, known);
    for (let addr = range.start; addr < range.end; addr += this.pageSize) {
      const pfn = pfnAt(addr);
      if (pfn !== undefined) known.set(Number((range.offset + addr - range.start) / this.pageSize), pfn);
    }
  }

  /**
   * `pid` no longer maps [start, end): its declared ranges are cut there. The object's frames stay known
   * (another process may map them, and `pieces` asks whether the model still has each one).
   */
  dropped(pid: number, start: bigint, end: bigint): void {
    const list = this.declared.get(pid);
    if (list === undefined) return;
    const kept: Declared[] = [];
    for (const d of list) {
      if (d.end <= start || d.start >= end) {
        kept.push(d);
        continue;
      }
      if (d.start < start) kept.push({ ...d, end: start });
      if (end < d.end) kept.push({ ...d, start: end, offset: d.offset + (end - d.start) });
    }
    this.declared.set(pid, kept);
  }

  /** A fork: the child maps every shared range of the parent at the same addresses. */
  forked(parent: number, child: number): void {
    this.declared.set(
      child,
      (this.declared.get(parent) ?? []).map((d) => ({ ...d })),
    );
  }

  /**
   * Where another process that `alive` accepts maps the bytes [addr, addr + length) of `pid`, when they
   * lie in one declared shared range of `pid` and that process declared the same part of the object.
   */
  elsewhere(
    pid: number,
    addr: bigint,
    length: bigint,
    alive: (pid: number) => boolean,
  ): { pid: number; addr: bigint } | null {
    const mine = (this.declared.get(pid) ?? []).find((d) => d.start <= addr && addr + length <= d.end);
    if (mine === undefined) return null;
    const from = mine.offset + (addr - mine.start);
    for (const [other, list] of this.declared) {
      if (other === pid || !alive(other)) continue;
      for (const d of list) {
        if (d.object !== mine.object || from < d.offset || from + length > d.offset + (d.end - d.start)) continue;
        return { pid: other, addr: d.start + (from - d.offset) };
      }
    }
    return null;
  }
}
