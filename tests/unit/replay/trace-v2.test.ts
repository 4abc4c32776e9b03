// SPDX-License-Identifier: GPL-2.0-only
/**
 * Trace format version 2 (file lifetime): descriptors and refcounted files, fork with the COW-for-DMA copy
 * of pinned pages, close and the last close's release, dup, fd passing, exit releasing files after the mm
 * (the remote unpin path), and ops of a dead process refused with the line and field. Version 1 keeps its
 * meaning: `pid` on ops that had none changes nothing when absent, and v2 ops are refused there.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Event } from '../../../src/events/events.js';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { TraceError } from '../../../src/replay/errors.js';
import { replay } from '../../../src/replay/replayer.js';
import type { ReplayResult } from '../../../src/replay/replayer.js';
import { rangeGet } from '../../../src/structures/range-map.js';
import { xaLoad } from '../../../src/structures/xarray.js';

const ROOT = join(import.meta.dirname, '../../..');
const V2 = '{"format":"ioptrace-trace","version":2}';
const V1 = '{"format":"ioptrace-trace","version":1}';

interface Run {
  result: ReplayResult;
  /** Events by op index, as "Type" or "Type detail". */
  events: [number, Event][];
}

function run(lines: readonly string[], variant = 'upstream'): Run {
  const events: [number, Event][] = [];
  const result = replay(parseTraceText(`${lines.join('\n')}\n`), {
    variant,
    fixes: resolveVariant(variant).fixes,
    sink: { accept: (event, _seq, op) => events.push([op, event]) },
  });
  return { result, events };
}

/** The file and descriptor events of one op, in order, as short strings. */
function fileEvents(r: Run, op: number): string[] {
  const out: string[] = [];
  for (const [at, e] of r.events) {
    if (at !== op) continue;
    if (e.type === 'OpenFileCreated') out.push(`create ${e.file} ${e.fn}${e.holds ? ` holds ${e.holds}` : ''}`);
    if (e.type === 'OpenFileGot') out.push(`get ${e.file} ${e.fn}`);
    if (e.type === 'OpenFilePut') out.push(`put ${e.file} ${e.fn}`);
    if (e.type === 'OpenFileReleased') out.push(`release ${e.file} ${e.fn}`);
    if (e.type === 'FdInstalled') out.push(`install ${e.pid}:${e.fd} ${e.file} ${e.fn}`);
    if (e.type === 'FdRemoved') out.push(`remove ${e.pid}:${e.fd} ${e.file} ${e.fn}`);
    if (e.type === 'PagesUnpinned') out.push(`unpin ${e.pfn.toString(16)}+${e.count}`);
    if (e.type === 'ProcessExited') out.push(`exited ${e.pid}`);
    if (e.type === 'MmPut') out.push(`mmput ${e.mm} ${e.fn}`);
    if (e.type === 'MmGot') out.push(`mmget ${e.mm} ${e.fn}`);
    if (e.type === 'AccountingUncharged') out.push(`uncharge ${e.counter} ${e.delta}`);
  }
  return out;
}

function refusal(lines: readonly string[]): { line: number; field: string | null; message: string }[] {
  try {
    parseTraceText(`${lines.join('\n')}\n`);
  } catch (error) {
    if (error instanceof TraceError)
      return error.issues.map((i) => ({ line: i.line, field: i.field, message: i.message }));
    throw error;
  }
  throw new Error('trace was accepted');
}

const PIN_SETUP = [
  V2,
  '{"op":"process","pid":"p"}',
  '{"op":"mmap","pid":"p","addr":"0x100000","length":8192}',
  '{"op":"write","pid":"p","addr":"0x100000","data":"aa"}',
  '{"op":"open","ctx":"c","pid":"p","account":"mm"}',
  '{"op":"ioas_alloc","ioas":"A"}',
  '{"op":"domain_attach","domain":"d","ioas":"A"}',
  '{"op":"ioas_map","ioas":"A","pid":"p","uptr":"0x100000","length":4096,"iova":"0x1000000"}',
];

describe('trace format version 2', () => {
  it('fork shares the files and copies the pinned page for the child, without a pin', () => {
    const r = run([
      ...PIN_SETUP,
      '{"op":"fork","pid":"p","child":"q"}',
      '{"op":"check_refs","pid":"p","uptr":"0x100000","length":4096,"refs":1}',
      '{"op":"check_refs","pid":"q","uptr":"0x100000","length":8192,"refs":0}',
      '{"op":"read","pid":"q","addr":"0x100000","length":1,"expect":{"data":"aa"}}',
    ]);
    expect(r.result.mismatches).toEqual([]);
    expect(r.result.ops[4]?.outputs).toEqual({ fd: 3 });
    expect(fileEvents(r, 4)).toEqual(['create ctx:c iommufd_fops_open', 'install p:3 ctx:c do_sys_open']);
    expect(fileEvents(r, 8)).toEqual(['get ctx:c dup_fd', 'install q:3 ctx:c dup_fd']);
    const s = r.result.state;
    const parentMm = s.processes['p']?.mm ?? -1;
    const childMm = s.processes['q']?.mm ?? -1;
    // The pinned page (pfn 0x40000) stays the parent's; the child got a fresh copy (0x40004) with its
    // contents; the unpinned page (0x40002) is shared copy-on-write (mapped twice).
    expect([xaLoad(s.mms[parentMm]!.pt, 256), xaLoad(s.mms[parentMm]!.pt, 257)]).toEqual([0x40000, 0x40002]);
    expect([xaLoad(s.mms[childMm]!.pt, 256), xaLoad(s.mms[childMm]!.pt, 257)]).toEqual([0x40004, 0x40002]);
    const forked = r.events.flatMap(([op, e]) =>
      op === 8 && (e.type === 'VmaMapped' || e.type === 'MemoryWritten') ? [e] : [],
    );
    expect(
      forked.map((e) => (e.type === 'VmaMapped' ? ['map', e.mm, e.runs] : ['copy', e.pfn, e.data.slice(0, 4)])),
    ).toEqual([
      ['copy', 0x40004, 'aa00'],
      [
        'map',
        childMm,
        [
          [0x40004, 1],
          [0x40002, 1],
        ],
      ],
    ]);
    // After the teardown (the pin is gone), the shared page is still mapped by both.
    expect(rangeGet(s.frames, 0x40000)).toMatchObject({ pins: 0, maps: 1 });
    expect(rangeGet(s.frames, 0x40004)).toMatchObject({ pins: 0, maps: 1 });
    expect(rangeGet(s.frames, 0x40002)).toMatchObject({ pins: 0, maps: 2 });
    expect(r.result.ops[11]?.outputs).toEqual({ data: 'aa' });
  });

  it('a shared mapping stays shared across fork: the pinned page too, and each side sees the other write', () => {
    const r = run([
      V2,
      '{"op":"process","pid":"p"}',
      '{"op":"mmap","pid":"p","addr":"0x100000","length":8192,"shared":true}',
      '{"op":"write","pid":"p","addr":"0x100000","data":"aa"}',
      '{"op":"open","ctx":"c","pid":"p","account":"mm"}',
      '{"op":"ioas_alloc","ioas":"A"}',
      '{"op":"domain_attach","domain":"d","ioas":"A"}',
      '{"op":"ioas_map","ioas":"A","pid":"p","uptr":"0x100000","length":4096,"iova":"0x1000000"}',
      '{"op":"fork","pid":"p","child":"q"}',
      '{"op":"check_refs","pid":"q","uptr":"0x100000","length":4096,"refs":1}',
      '{"op":"write","pid":"q","addr":"0x100000","data":"bb"}',
      '{"op":"write","pid":"q","addr":"0x101000","data":"cc"}',
      '{"op":"read","pid":"p","addr":"0x100000","length":1,"expect":{"data":"bb"}}',
      '{"op":"read","pid":"p","addr":"0x101000","length":1,"expect":{"data":"cc"}}',
      '{"op":"exit","pid":"q"}',
      '{"op":"write","pid":"p","addr":"0x100000","data":"dd"}',
      '{"op":"access_create","access":"x","ioas":"A","pid":"p"}',
      '{"op":"access_rw","access":"x","pid":"p","iova":"0x1000000","length":1,"expect":{"data":"dd"}}',
    ]);
    expect(r.result.mismatches).toEqual([]);
    expect(r.result.violations).toEqual([]);
    const forked = r.events.flatMap(([op, e]) =>
      op === 8 && (e.type === 'VmaMapped' || e.type === 'MemoryWritten' || e.type === 'FramesAllocated') ? [e] : [],
    );
    // No copy at fork: the child maps the parent's two frames, the pinned one (0x40000) included.
    expect(forked).toEqual([
      {
        type: 'VmaMapped',
        v: 1,
        mm: r.result.state.processes['q']?.mm,
        vpn: 256,
        npages: 2,
        writable: true,
        huge: '4K',
        runs: [
          [0x40000, 1],
          [0x40002, 1],
        ],
        shared: true,
      },
    ]);
    // No COW on the writes either: the only frames ever allocated are the mapping's two.
    expect(r.events.filter(([, e]) => e.type === 'FramesAllocated' || e.type === 'CowBroken')).toHaveLength(2);
    const s = r.result.state;
    const parentMm = s.processes['p']?.mm ?? -1;
    expect([xaLoad(s.mms[parentMm]!.pt, 256), xaLoad(s.mms[parentMm]!.pt, 257)]).toEqual([0x40000, 0x40002]);
    expect(rangeGet(s.mms[parentMm]!.vmas, 256)).toEqual({ writable: true, huge: '4K', shared: true });
    // After the child's exit and the teardown: the parent alone maps both, nothing pinned.
    expect(rangeGet(s.frames, 0x40000)).toMatchObject({ pins: 0, maps: 1 });
    expect(rangeGet(s.frames, 0x40002)).toMatchObject({ pins: 0, maps: 1 });
  });

  it('a private mapping written after fork still breaks COW (shared absent means private)', () => {
    const r = run([
      V2,
      '{"op":"process","pid":"p"}',
      '{"op":"mmap","pid":"p","addr":"0x100000","length":4096}',
      '{"op":"write","pid":"p","addr":"0x100000","data":"aa"}',
      '{"op":"fork","pid":"p","child":"q"}',
      '{"op":"write","pid":"q","addr":"0x100000","data":"bb"}',
      '{"op":"read","pid":"p","addr":"0x100000","length":1,"expect":{"data":"aa"}}',
      '{"op":"read","pid":"q","addr":"0x100000","length":1,"expect":{"data":"bb"}}',
    ]);
    expect(r.result.mismatches).toEqual([]);
    expect(r.events.filter(([, e]) => e.type === 'CowBroken').map(([op, e]) => [op, e])).toEqual([
      [
        5,
        {
          type: 'CowBroken',
          v: 1,
          mm: r.result.state.processes['q']?.mm,
          vpn: 256,
          oldPfn: 0x40000,
          newPfn: 0x40002,
          fn: 'do_wp_page',
        },
      ],
    ]);
  });

  it('the last close releases the context; before it, the other descriptors keep it', () => {
    const r = run([
      ...PIN_SETUP,
      '{"op":"dup","pid":"p","fd":3}',
      '{"op":"close","pid":"p","fd":3}',
      '{"op":"check_refs","pid":"p","uptr":"0x100000","length":4096,"refs":1}',
      '{"op":"close","pid":"p","fd":4}',
      '{"op":"check_refs","pid":"p","uptr":"0x100000","length":4096,"refs":0}',
      '{"op":"close","pid":"p","fd":4,"expect":"EBADF"}',
      '{"op":"ioas_map","ioas":"A","pid":"p","uptr":"0x100000","length":4096,"expect":"EBADF"}',
    ]);
    expect(r.result.mismatches).toEqual([]);
    expect(r.result.ops[8]?.outputs).toEqual({ fd: 4 });
    expect(fileEvents(r, 8)).toEqual(['get ctx:c dup', 'install p:4 ctx:c dup']);
    expect(fileEvents(r, 9)).toEqual(['remove p:3 ctx:c close_fd', 'put ctx:c close_fd']);
    // The caller still has its mm: the unpin is local (no mmget), and the MM-mode charge comes back.
    expect(fileEvents(r, 11)).toEqual([
      'remove p:4 ctx:c close_fd',
      'put ctx:c close_fd',
      'unpin 40000+1',
      'uncharge mm.locked_vm 1',
      'uncharge mm.pinned_vm 1',
      'release ctx:c iommufd_fops_release',
    ]);
    expect(r.result.state.openFiles).toEqual({});
    expect(r.result.state.fds).toEqual({});
  });

  it('exit tears down the mm before the files: the release unpins remotely and the MM-mode charge stays', () => {
    const r = run([...PIN_SETUP, '{"op":"exit","pid":"p"}']);
    expect(fileEvents(r, 8)).toEqual([
      'exited p',
      'mmput 1 exit_mm',
      'remove p:3 ctx:c exit_files',
      'put ctx:c exit_files',
      'unpin 40000+1',
      'release ctx:c iommufd_fops_release',
    ]);
    // mmget_not_zero of the dead mm failed, so update_mm_locked_vm gave up: the charge is never returned.
    const mm = r.result.state.mms[1];
    expect([mm?.users, mm?.lockedVm, mm?.pinnedVm]).toEqual([0, 1, 1]);
    expect(rangeGet(r.result.state.frames, 0x40000)).toBeUndefined();
  });

  it('a descriptor passed to another process keeps the context after the sender exits', () => {
    const r = run([
      ...PIN_SETUP.slice(0, 2),
      '{"op":"process","pid":"r"}',
      ...PIN_SETUP.slice(2),
      '{"op":"send_fd","pid":"p","fd":3,"to":"r","new_fd":7}',
      '{"op":"exit","pid":"p"}',
      '{"op":"ioas_unmap","ioas":"A","pid":"r","all":true,"expect":{"unmapped":4096}}',
      '{"op":"close","pid":"r","fd":7}',
    ]);
    expect(r.result.mismatches).toEqual([]);
    expect(r.result.ops[9]?.outputs).toEqual({ fd: 7 });
    expect(fileEvents(r, 9)).toEqual(['get ctx:c scm_fp_copy', 'install r:7 ctx:c receive_fd']);
    expect(fileEvents(r, 10)).toEqual([
      'exited p',
      'mmput 1 exit_mm',
      'remove p:3 ctx:c exit_files',
      'put ctx:c exit_files',
    ]);
    expect(fileEvents(r, 12)).toEqual([
      'remove r:7 ctx:c close_fd',
      'put ctx:c close_fd',
      'release ctx:c iommufd_fops_release',
    ]);
  });

  it('an access file holds its context: closing the context first waits for the access', () => {
    const r = run([
      ...PIN_SETUP,
      '{"op":"access_create","access":"a","ioas":"A","pid":"p"}',
      '{"op":"access_pin","access":"a","pid":"p","iova":"0x1000000","length":4096}',
      '{"op":"close","pid":"p","fd":3}',
      '{"op":"check_refs","pid":"p","uptr":"0x100000","length":4096,"refs":1}',
      '{"op":"close","pid":"p","fd":4}',
      '{"op":"check_refs","pid":"p","uptr":"0x100000","length":4096,"refs":0}',
    ]);
    expect(r.result.mismatches).toEqual([]);
    expect(r.result.ops[8]?.outputs).toEqual({ fd: 4 });
    expect(fileEvents(r, 8)).toEqual([
      'get ctx:c iommufd_access_create',
      'create access:a iommufd_access_create holds ctx:c',
      'install p:4 access:a iommufd_test_create_access',
    ]);
    expect(fileEvents(r, 10)).toEqual(['remove p:3 ctx:c close_fd', 'put ctx:c close_fd']);
    expect(fileEvents(r, 12)).toEqual([
      'remove p:4 access:a close_fd',
      'put access:a close_fd',
      // The access's item is unpinned from the pages, whose page the domain still holds: no page unpin yet.
      'put ctx:c iommufd_access_destroy_object',
      'unpin 40000+1',
      'uncharge mm.locked_vm 1',
      'uncharge mm.pinned_vm 1',
      'release ctx:c iommufd_fops_release',
      'release access:a iommufd_test_staccess_release',
    ]);
  });

  it('refuses ops by a process that has exited, naming the line and the field', () => {
    expect(
      refusal([
        V2,
        '{"op":"process","pid":"p"}',
        '{"op":"process","pid":"q"}',
        '{"op":"open","ctx":"c","pid":"p"}',
        '{"op":"exit","pid":"p"}',
        '{"op":"mmap","pid":"p","addr":4096,"length":4096}',
        '{"op":"send_fd","pid":"q","fd":3,"to":"p"}',
      ]),
    ).toEqual([
      {
        line: 6,
        field: 'pid',
        message: 'process "p" exited on line 5: a process that has exited issues no more ops',
      },
      { line: 7, field: 'to', message: 'process "p" exited on line 5: no descriptor can be passed to it' },
    ]);
  });

  it('refuses v2 ops and fields in version 1, and access_destroy in version 2', () => {
    expect(
      refusal([
        V1,
        '{"op":"process","pid":"p"}',
        '{"op":"fork","pid":"p","child":"q"}',
        '{"op":"open","ctx":"c","fd":5}',
      ]),
    ).toEqual([
      {
        line: 3,
        field: 'op',
        message:
          '"fork" is a version 2 op (file lifetime): start the trace with {"format":"ioptrace-trace","version":2}',
      },
      { line: 4, field: 'fd', message: 'a descriptor number needs version 2 (file lifetime)' },
    ]);
    expect(
      refusal([
        V2,
        '{"op":"process","pid":"p"}',
        '{"op":"open","ctx":"c"}',
        '{"op":"ioas_alloc","ioas":"A"}',
        '{"op":"access_create","access":"a","ioas":"A"}',
        '{"op":"access_destroy","access":"a"}',
      ]),
    ).toEqual([
      {
        line: 6,
        field: 'op',
        message: 'in version 2 an access lives as long as its file: "close" its descriptor instead',
      },
    ]);
  });
});

describe('version 1: pid on every op', () => {
  const base = [
    V1,
    '{"op":"process","pid":"p"}',
    '{"op":"process","pid":"q"}',
    '{"op":"mmap","pid":"p","addr":"0x100000","length":4096}',
    '{"op":"open","ctx":"c","pid":"p"}',
    '{"op":"ioas_alloc","ioas":"A"}',
    '{"op":"domain_attach","domain":"d","ioas":"A"}',
    '{"op":"ioas_map","ioas":"A","pid":"p","uptr":"0x100000","length":4096,"iova":"0x1000000"}',
    '{"op":"access_create","access":"a","ioas":"A"}',
  ];
  const tail = [
    '{"op":"access_destroy","access":"a"PID}',
    '{"op":"ioas_unmap","ioas":"A","all":truePID}',
    '{"op":"domain_detach","domain":"d"PID}',
  ];

  it('naming the implicit caller gives the same digest and events; another caller is recorded as such', () => {
    const implicit = run([...base, ...tail.map((l) => l.replace('PID', ''))]);
    const named = run([...base, ...tail.map((l) => l.replace('PID', ',"pid":"p"'))]);
    expect(named.result.digest).toBe(implicit.result.digest);
    expect(named.events.map(([, e]) => e)).toEqual(implicit.events.map(([, e]) => e));
    const other = run([...base, ...tail.map((l) => l.replace('PID', ',"pid":"q"'))]);
    const callers = other.events.flatMap(([, e]) =>
      e.type === 'OpStarted' && e.op >= 9 && e.op <= 11 ? [e.caller] : [],
    );
    expect(callers).toEqual(['q', 'q', 'q']);
  });

  it('refuses a named caller that does not exist', () => {
    expect(refusal([...base, '{"op":"domain_detach","domain":"d","pid":"z"}'])).toEqual([
      { line: 10, field: 'pid', message: 'unknown process "z": no earlier process creates it' },
    ]);
  });
});

describe('the version 2 example of docs/trace-format.md', () => {
  it('replays as the text says: the child exit releases, the parent page unpins remotely, the charge stays', () => {
    const doc = readFileSync(join(ROOT, 'docs/trace-format.md'), 'utf8');
    const example = doc.slice(doc.indexOf('Example: the child of a fork'));
    const lines = example.split('\n').filter((l) => l.startsWith('{'));
    expect(lines).toHaveLength(13);
    const r = run(lines);
    expect(r.result.mismatches).toEqual([]);
    expect(r.result.violations).toEqual([]);
    expect(fileEvents(r, 10)).toEqual([
      'exited p',
      'mmput 1 exit_mm',
      'remove p:3 ctx:c exit_files',
      'put ctx:c exit_files',
    ]);
    expect(fileEvents(r, 12)).toEqual([
      'exited q',
      'mmput 9 exit_mm',
      'remove q:9 ctx:c exit_files',
      'put ctx:c exit_files',
      'unpin 40000+1',
      'release ctx:c iommufd_fops_release',
    ]);
    expect(r.result.state.mms[1]?.lockedVm).toBe(1);
  });
});
