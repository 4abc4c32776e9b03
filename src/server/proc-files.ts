// SPDX-License-Identifier: GPL-2.0-only
/**
 * What the kernel shows a process about iommufd's pins, which a program under `ioptrace run` cannot see
 * from the real kernel (nothing is pinned there): the `VmLck` and `VmPin` lines of /proc/PID/status and
 * `HugePages_Free` of /proc/meminfo. Each emulated file is the real file's text with those lines changed
 * by what the model holds; every other line is the real kernel's.
 *
 * - `VmPin` is mm->pinned_vm, which iommufd moves in every accounting mode (do_update_pinned adds the
 *   pages after the mode's own charge, even in the no-accounting mode CAP_IPC_LOCK chooses); `VmLck` is
 *   mm->locked_vm, which only MM accounting (the VFIO-compatible mode) charges. The model keeps both per
 *   mm (`Mm.pinnedVm`, `Mm.lockedVm`, in pages); the line shows kB.
 * - `HugePages_Free` counts the default hstate's free pages. A hugetlb page that a pin holds does not go
 *   back to the pool when the process unmaps it; under `run` the real page does. So the emulated count is
 *   the real one less the pinned huge pages of the pool's size whose every mapping is gone: model frames
 *   nobody maps any more (frame.maps 0: the model saw the unmap, or the exit), and model mappings whose
 *   address the real process no longer maps with pages of that size (the model is not told of munmap).
 */
import type { HugeSize } from '../events/events.js';
import { hugePfns } from '../machine/memory.js';
import type { Mm, State } from '../state/state.js';
import { rangeForEach } from '../structures/range-map.js';
import { xaLoad } from '../structures/xarray.js';

/** The kernel's text of one Vm line: the name, a tab, the kB right-aligned in 8 (seq_put_decimal_ull_width). */
const vmLine = (name: string, kb: bigint): string => `${name}:\t${kb.toString().padStart(8)} kB`;

/**
 * The status text with the model's charges of `mm` added to the real `VmLck` and `VmPin`. A text without
 * those lines (a task with no mm: a zombie, a kernel thread) is returned as it is.
 */
export function statusWithCharges(real: string, mm: Pick<Mm, 'lockedVm' | 'pinnedVm'>, pageSize: number): string {
  const kbPerPage = BigInt(pageSize / 1024);
  const add: Record<string, number> = { VmLck: mm.lockedVm, VmPin: mm.pinnedVm };
  return real.replace(/^(VmLck|VmPin):\s*(\d+) kB$/gm, (_line, name: string, kb: string) =>
    vmLine(name, BigInt(kb) + BigInt(add[name] ?? 0) * kbPerPage),
  );
}

/** The meminfo text with `held` pages fewer free in the default hugetlb pool (never below 0). */
export function meminfoWithHeld(real: string, held: number): string {
  return real.replace(/^HugePages_Free:\s*(\d+)$/m, (_line, free: string) => {
    const left = BigInt(free) - BigInt(held);
    return `HugePages_Free:    ${(left < 0n ? 0n : left).toString().padStart(5)}`;
  });
}

/** The page size of the default hstate (`Hugepagesize`), as the model names it; null when the model has none. */
export function poolPageSize(meminfo: string): HugeSize | null {
  const kb = /^Hugepagesize:\s*(\d+) kB$/m.exec(meminfo)?.[1];
  if (kb === '2048') return '2M';
  if (kb === '1048576') return '1G';
  return null;
}

/**
 * Pinned huge pages of size `pool` that no live mapping holds any more: every PFN block of that size with
 * a pinned frame, whose model mappings (frame.maps) are all gone, either in the model or in reality
 * (`stillMapped(pid, start, end)` false for the model's mapping of it in a live model process).
 */
export function pinnedHugePagesUnmapped(
  state: State,
  pool: HugeSize,
  stillMapped: (pid: string, start: bigint, end: bigint) => boolean,
): number {
  const pageSize = state.config.pageSize;
  const per = hugePfns(pageSize, pool);
  // Per pinned block (its first PFN / per): how many page-table entries map it in the model.
  const maps = new Map<number, number>();
  rangeForEach(state.frames, 0, Number.MAX_SAFE_INTEGER, (start, count, frame) => {
    if (frame.huge !== pool || frame.pins === 0) return;
    for (let block = Math.floor(start / per); block * per < start + count; block++)
      maps.set(block, Math.max(maps.get(block) ?? 0, frame.maps));
  });
  if (maps.size === 0) return 0;
  const gone = new Map<number, number>();
  for (const proc of Object.values(state.processes)) {
    const mm = state.mms[proc.mm];
    if (proc.exited || mm === undefined) continue;
    rangeForEach(mm.vmas, 0, Number.MAX_SAFE_INTEGER, (vpn, count, vma) => {
      if (vma.huge !== pool) return;
      for (let at = vpn; at < vpn + count; at += per) {
        const pfn = xaLoad(mm.pt, at);
        const block = pfn === undefined ? undefined : Math.floor(pfn / per);
        if (block === undefined || !maps.has(block)) continue;
        const start = BigInt(at) * BigInt(pageSize);
        if (!stillMapped(proc.pid, start, start + BigInt(per) * BigInt(pageSize)))
          gone.set(block, (gone.get(block) ?? 0) + 1);
      }
    });
  }
  let held = 0;
  for (const [block, mapped] of maps) if ((gone.get(block) ?? 0) >= mapped) held++;
  return held;
}
