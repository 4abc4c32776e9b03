// User output speaks the kernel's names and one number style (issue 11, item 9): PFNs, addresses and byte
// sizes in hex, counts in decimal, a kernel thread as `kthread`, state fields as the kernel spells them
// (src/state/kernel-names.ts), and the same event text in `log` and `bisect`.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILT_CLI, ROOT, cli, freshDir as tempDir } from '../support/built-cli.js';

const dir = tempDir();
const db = join(dir, 'names.db');
const BAD_FREE = join(ROOT, 'replays/bad-free.jsonl');

describe('kernel names and hex numbers in user output', () => {
  it('bisect: kernel field names in the state diff, kthread and hex sizes in the events of the op', async () => {
    const r = await cli(['bisect', BAD_FREE, '--variants', 'v3,merged', '--db', db]);
    expect(r.status).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines.slice(5, 13)).toEqual([
      'state just after the op (run 1 -> run 2):',
      '  violations (count): 3 -> 0',
      '  mms 1 mm_users: -1 -> 0',
      'not counted (outside the digest, or derived from the variant: see bisect --help):',
      '  ioases A iova_alignment: 0x1 -> 0x1000',
      'names:',
      '  heap allocations: 4, 5',
      '  mms: 1',
    ]);
    expect(lines[13]).toBe('  counters: mms 1 mm_users, violations (count)');
    expect(lines[15]).toBe(
      '  = OpStarted op 8 line 33 name access_pin caller kthread            | ' +
        'OpStarted op 8 line 33 name access_pin caller kthread',
    );
    expect(lines[17]).toBe(
      '  < HeapAllocated alloc 5 size 0x38 owner iommufd tag iopt_pages_ac… | ' +
        '> HeapAllocated alloc 5 size 0x38 owner iommufd tag iopt_pages_access fn iopt_area_add_access',
    );
  });

  it('log prints the same event text as bisect, with = between field and value', async () => {
    const r = await cli(['log', '1', '--op', '8', '--type', 'OpStarted,HeapAllocated', '--db', db]);
    expect(r.stdout.split('\n').slice(0, 3)).toEqual([
      '     36 op     8  OpStarted op=8 line=33 name=access_pin caller=kthread',
      '     37 op     8  HeapAllocated alloc=4 size=0x8 owner=caller tag=out_pages fn=iommufd_test_access_pages',
      '     38 op     8  HeapAllocated alloc=5 size=0x38 owner=iommufd tag=iopt_pages_access fn=iopt_pages_add_access',
    ]);
  });

  it('diff names bookkeeping plainly and kernel fields as the kernel does', async () => {
    const r = await cli(['diff', '1', '35', '45', '--db', db]);
    expect(r.stdout.split('\n').slice(0, 5)).toEqual([
      'run 1: event 35 -> event 45',
      'violations (count): 0 -> 3',
      'next object id: 4 -> 6',
      'ops done: 8 -> 9',
      'mms 1 mm_users: 0 -> -1',
    ]);
  });

  it('watch reads the names diff prints (mms.1.mm_users) and the short ones it took before', async () => {
    const kernel = await cli(['watch', '1', 'mms.1.mm_users < 0', '--db', db]);
    expect(kernel.stdout).toBe(
      'run 1: mms.1.mm_users < 0 first holds after event 42 (op 8 access_pin, trace line 33)\n',
    );
    const short = await cli(['watch', '1', 'mm.1.users < 0', '--db', db]);
    expect(short.stdout).toBe('run 1: mm.1.users < 0 first holds after event 42 (op 8 access_pin, trace line 33)\n');
    const wrong = await cli(['watch', '1', 'mm.1.lockedVm > 0', '--db', db]);
    expect([wrong.status, wrong.stderr]).toEqual([
      2,
      "ioptrace: bad expression at column 1: mm has no field 'lockedVm' (locked_vm, pinned_vm, mm_users, mm_count) " +
        '(in "mm.1.lockedVm > 0")\n',
    ]);
  });

  it('a reader that closes the pipe early ends log quietly: no EPIPE stack trace, exit 0', async () => {
    // 1523 events, about 190 KB of text: more than a pipe holds, so the write meets the closed pipe.
    const trace = join(ROOT, 'replays/selftest/iommufd_ioas.access_domain_destory.jsonl');
    expect((await cli(['replay', trace, '--variant', 'merged', '--db', db])).status).toBe(1);
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [BUILT_CLI, 'log', '3', '--db', db], {
        env: { ...process.env, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      // Read the first chunk, then close our end, as `| head -1` does.
      child.stdout.once('data', () => child.stdout.destroy());
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stderr }));
    });
    expect(result.stderr.split('\n').filter((l) => l !== '' && !l.includes('nodedir'))).toEqual([]);
    expect(result.code).toBe(0);
  });

  it('finding texts of a version 3 trace give the PFN in hex; the shipped version 1 trace keeps what it stored', async () => {
    const shipped = join(ROOT, 'replays/map-file-stale-folio.jsonl');
    const [, ...ops] = readFileSync(shipped, 'utf8').split('\n');
    const v3 = join(dir, 'stale-folio-v3.jsonl');
    writeFileSync(v3, ['{"format":"ioptrace-trace","version":3}', ...ops].join('\n'));
    const finding = (out: string): string | undefined => out.split('\n').find((l) => l.includes('VIOLATION'));
    // The trace fails the xarray mock's iommu_map point, which the iommupt mock of upstream does not have.
    const now = await cli(['replay', v3, '--variant', 'upstream-mock-iommupt', '--db', db]);
    expect([now.status, finding(now.stdout)]).toEqual([
      1,
      '  VIOLATION double_unpin in batch_unpin (line 25, op 8, event 72): unpin of 1 page(s) at pfn 0x40006 that hold no pin',
    ]);
    // Two events fewer before it: version 1 opens the context without a file and descriptor.
    const before = await cli(['replay', shipped, '--variant', 'upstream-mock-iommupt', '--db', db]);
    expect([before.status, finding(before.stdout)]).toEqual([
      1,
      '  VIOLATION double_unpin in batch_unpin (line 25, op 8, event 70): unpin of 1 page(s) at pfn 262150 that hold no pin',
    ]);
  });
});
