// SPDX-License-Identifier: GPL-2.0-only
// The /proc texts `ioptrace run` shows a program: VmLck and VmPin of status with the model's charges in the
// kernel's format, HugePages_Free less the pinned huge pages no mapping holds, counted on model state.
import { describe, expect, it } from 'vitest';
import {
  meminfoWithHeld,
  pinnedHugePagesUnmapped,
  poolPageSize,
  statusWithCharges,
} from '../../../src/server/proc-files.js';
import { LiveReplay } from '../../../src/replay/replayer.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import type { State } from '../../../src/state/state.js';

const STATUS = [
  'Name:\tprog',
  'Tgid:\t100',
  'VmPeak:\t    2560 kB',
  'VmSize:\t    2496 kB',
  'VmLck:\t       8 kB',
  'VmPin:\t       0 kB',
  'VmHWM:\t    1024 kB',
  '',
].join('\n');

const MEMINFO = [
  'MemTotal:        8000000 kB',
  'HugePages_Total:     128',
  'HugePages_Free:      127',
  'HugePages_Rsvd:        0',
  'HugePages_Surp:        0',
  'Hugepagesize:       2048 kB',
  'Hugetlb:          262144 kB',
  '',
].join('\n');

describe('status', () => {
  it("adds the mm's locked_vm and pinned_vm pages to the real kB, in the kernel's width-8 field", () => {
    const text = statusWithCharges(STATUS, { lockedVm: 4, pinnedVm: 1024 }, 4096);
    expect(text.split('\n').slice(4, 6)).toEqual(['VmLck:\t      24 kB', 'VmPin:\t    4096 kB']);
    // Every other line is the real file's, byte for byte.
    expect(text.replace(/^Vm(Lck|Pin):.*$/gm, '')).toBe(STATUS.replace(/^Vm(Lck|Pin):.*$/gm, ''));
  });

  it('leaves a status without Vm lines (no mm) as it is', () => {
    const zombie = 'Name:\tprog\nTgid:\t100\nState:\tZ (zombie)\n';
    expect(statusWithCharges(zombie, { lockedVm: 4, pinnedVm: 4 }, 4096)).toBe(zombie);
  });
});

describe('meminfo', () => {
  it('takes the held pages off HugePages_Free only, in the width-5 field', () => {
    const text = meminfoWithHeld(MEMINFO, 3);
    expect(text.split('\n')[2]).toBe('HugePages_Free:      124');
    expect(text.replace(/^HugePages_Free:.*$/m, '')).toBe(MEMINFO.replace(/^HugePages_Free:.*$/m, ''));
    expect(meminfoWithHeld(MEMINFO, 0)).toBe(MEMINFO);
  });

  it('reads the default hstate size', () => {
    expect(poolPageSize(MEMINFO)).toBe('2M');
    expect(poolPageSize(MEMINFO.replace('2048 kB', '1048576 kB'))).toBe('1G');
    expect(poolPageSize('MemTotal: 1 kB\n')).toBeNull();
  });
});

/** A model state after `ops` (trace lines) on upstream. */
function stateAfter(ops: string[]): { live: LiveReplay; state: () => State } {
  const text = ['{"format":"ioptrace-trace","version":3}', ...ops].join('\n');
  const parsed = parseTraceText(`${text}\n`);
  const live = new LiveReplay(parsed.header, { variant: 'upstream', fixes: [] });
  for (const e of parsed.entries) live.step(e.op, e.line);
  return { live, state: () => live.current };
}

const A = 0x40000000n;
const B = 0x40200000n;
const SETUP = [
  '{"op":"process","pid":"100","uid":0,"memlock":"unlimited","cap_ipc_lock":false}',
  '{"op":"open","ctx":"c","pid":"100","fd":3}',
  '{"op":"ioas_alloc","ioas":"i","ctx":"c"}',
  '{"op":"domain_attach","domain":"d","ioas":"i"}',
  `{"op":"mmap","pid":"100","addr":"0x${A.toString(16)}","length":2097152,"huge":"2M"}`,
  `{"op":"mmap","pid":"100","addr":"0x${B.toString(16)}","length":2097152,"huge":"2M"}`,
  `{"op":"ioas_map","ioas":"i","pid":"100","uptr":"0x${A.toString(16)}","length":2097152,"iova":"0x1000000"}`,
];

describe('pinned huge pages out of the pool', () => {
  const everywhere = (): boolean => true;
  const allBut =
    (gone: bigint) =>
    (_pid: string, start: bigint): boolean =>
      start !== gone;

  it('counts a pinned huge page once the real process no longer maps it, and only a pinned one', () => {
    const { state } = stateAfter(SETUP);
    expect(state().mms[state().processes['100']?.mm ?? -1]?.pinnedVm).toBe(512);
    expect(pinnedHugePagesUnmapped(state(), '2M', everywhere)).toBe(0);
    expect(pinnedHugePagesUnmapped(state(), '2M', allBut(A))).toBe(1);
    // B is not pinned: its page went back to the pool with the real munmap, as the kernel's would.
    expect(pinnedHugePagesUnmapped(state(), '2M', allBut(B))).toBe(0);
    expect(pinnedHugePagesUnmapped(state(), '2M', () => false)).toBe(1);
    // Another pool size holds none of these.
    expect(pinnedHugePagesUnmapped(state(), '1G', () => false)).toBe(0);
  });

  it('counts a pinned frame the model saw unmapped, until the pin goes', () => {
    const unmapped = [...SETUP, `{"op":"munmap","pid":"100","addr":"0x${A.toString(16)}","length":2097152}`];
    const { live, state } = stateAfter(unmapped);
    expect(pinnedHugePagesUnmapped(state(), '2M', everywhere)).toBe(1);
    live.step({ op: 'ioas_unmap', ioas: 'i', iova: 0x1000000n, length: 2097152n, all: false }, 100);
    expect(pinnedHugePagesUnmapped(state(), '2M', () => false)).toBe(0);
  });
});
