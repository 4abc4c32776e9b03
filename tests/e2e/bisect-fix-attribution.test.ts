// bisect-fix answers "which upstream commit fixed this defect" (issue 11, item 7) on traces written here,
// not taken from replays/ or tests/fixtures/: the headline names the flag that removes the bad run's first
// violation (or first finding), not the first flag that changes anything along the walk.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, freshDir as tempDir } from '../support/built-cli.js';

const dir = tempDir();

function trace(name: string, ops: object[]): string {
  const path = join(dir, name);
  const lines = [{ format: 'ioptrace-trace', version: 1 }, ...ops].map((o) => JSON.stringify(o));
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

// An access holds three 4K pages (indexes 5..7) of a 4 MiB area of 2M pages while the only domain is
// detached, with 16-byte temp buffers: the unfill walks the holes around them one PFN run at a time with a
// carry. The first flag that changes the outcome only adds a WARN (reader-destroy-locked-reset); the one
// that removes the out-of-bounds batch read is the carry's fix.
const HELD_CARRY = [
  { op: 'process', pid: 3, memlock: 'unlimited' },
  { op: 'open', ctx: 'q', pid: 3 },
  { op: 'ioas_alloc', ioas: 'Z', ctx: 'q' },
  { op: 'temp_memory_limit', bytes: 16 },
  { op: 'domain_attach', domain: 'M', ioas: 'Z', kind: 'mock' },
  { op: 'mmap', pid: 3, addr: '0x7f5000000000', length: 4194304, huge: '2M' },
  { op: 'ioas_map', ioas: 'Z', pid: 3, uptr: '0x7f5000000000', length: 4194304, iova: '0x8000000' },
  { op: 'access_create', access: 'hold', ioas: 'Z', needs_pin_pages: true },
  { op: 'access_pin', access: 'hold', pid: 3, iova: '0x8005000', length: 12288, write: true },
  { op: 'domain_detach', domain: 'M' },
  { op: 'access_unpin', access: 'hold', iova: '0x8005000', length: 12288 },
  { op: 'access_destroy', access: 'hold' },
  { op: 'ioas_unmap', ioas: 'Z', all: true },
  { op: 'exit', pid: 3 },
];

// IOAS_MAP of 256 KiB from 0xfffffffffffe0000: uptr + length wraps past 2^64. v3 accepts it and the pin
// reaches GUP with a wrapped range (a WARN); the fix refuses the map with EOVERFLOW.
const WRAPPED_UPTR = [
  { op: 'process', pid: 7, memlock: 'unlimited' },
  { op: 'mmap', pid: 7, addr: '0xfffffffffffe0000', length: 131072 },
  { op: 'open', ctx: 'k', pid: 7 },
  { op: 'ioas_alloc', ioas: 'B', ctx: 'k' },
  { op: 'ioas_map', ioas: 'B', pid: 7, uptr: '0xfffffffffffe0000', length: 262144, iova: '0x400000' },
  { op: 'access_create', access: 'y', ioas: 'B', needs_pin_pages: true },
  { op: 'access_pin', access: 'y', pid: 7, iova: '0x400000', length: 262144, write: true },
  { op: 'access_unpin', access: 'y', iova: '0x400000', length: 262144 },
  { op: 'access_destroy', access: 'y' },
  { op: 'ioas_unmap', ioas: 'B', all: true },
  { op: 'exit', pid: 7 },
];

describe('bisect-fix names the flag that removes the first violation', () => {
  it('held carry: fixed by carry-end-one, though reader-destroy-locked-reset changes the outcome first', async () => {
    const path = trace('held-carry-2.jsonl', HELD_CARRY);
    const r = await cli(['bisect-fix', path, '--bad', 'v3', '--good', 'upstream']);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines[3]).toBe(
      "fixed by: carry-end-one (b7c822fa6b77, v6.5-rc4, spec 5): it removes the bad run's first violation, " +
        'violation batch_out_of_bounds batch_unpin (line 11, op 10)',
    );
    expect(lines.slice(4, 6)).toEqual([
      'findings of the bad run, and the flag that removes each:',
      '  violation batch_out_of_bounds batch_unpin (line 11, op 10): carry-end-one',
    ]);
    expect(lines).toContain('  warn __iopt_area_unfill_domain (line 11, op 10): unpin-domain-batch-last-index');
    expect(lines).toContain('  warn batch_clear_carry (line 11, op 10): reader-destroy-locked-reset');
    expect(lines).toContain('first flag that changes the outcome: reader-destroy-locked-reset (a26fa392068d), line 11');
    // Three changes along the walk: not monotonic, exit 1.
    expect(r.status).toBe(1);

    const json = await cli(['bisect-fix', path, '--bad', 'v3', '--good', 'upstream', '--json']);
    const report = JSON.parse(json.stdout) as { answer: { flag: string; removes: { finding: string } } };
    expect([report.answer.flag, report.answer.removes.finding]).toEqual([
      'carry-end-one',
      'violation batch_out_of_bounds batch_unpin',
    ]);
  });

  it('wrapped uptr: fixed by uptr-overflow-check, the map of line 6 refused', async () => {
    const path = trace('wrapped-uptr-2.jsonl', WRAPPED_UPTR);
    const r = await cli(['bisect-fix', path, '--bad', 'v3', '--good', 'upstream']);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n').slice(3, 6)).toEqual([
      "fixed by: uptr-overflow-check (e4395701330f, v6.3-rc6, spec 11): it removes the bad run's first finding, " +
        'warn pfn_reader_user_pin (line 8, op 7)',
      'findings of the bad run, and the flag that removes each:',
      '  warn pfn_reader_user_pin (line 8, op 7): uptr-overflow-check',
    ]);
    expect(r.stdout).toContain('  at op 5, line 6 (ioas_map): the first op where the two variants disagree\n');
    expect(r.status).toBe(0);
  });
});
