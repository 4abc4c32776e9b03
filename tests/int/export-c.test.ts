// SPDX-License-Identifier: GPL-2.0-only
// ioptrace export-c: traces as C programs for a real kernel. Compile only (cc -fsyntax-only is not enough:
// the program must link statically as the VM runs it); the not-exportable reports are asserted exactly.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REASONS, exportC } from '../../src/groundtruth/export-c.js';
import { parseTraceText } from '../../src/replay/parse.js';

const dir = mkdtempSync(join(tmpdir(), 'ioptrace-export-c-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function compile(name: string, source: string): void {
  const file = join(dir, `${name}.c`);
  writeFileSync(file, source);
  execFileSync('cc', ['-Wall', '-Wextra', '-Werror', '-O1', '-c', '-o', join(dir, `${name}.o`), file], {
    stdio: 'pipe',
  });
}

const exported = (path: string) => exportC(parseTraceText(readFileSync(path, 'utf8'), path), path);

describe('export-c', () => {
  it('exports the MM-mode finding completely, and the program compiles', () => {
    const p = exported('tests/fixtures/findings/mm-mode-stale-last-npinned.jsonl');
    expect(p.ops).toBe(10);
    expect(p.notExportable).toEqual([]);
    expect(p.source).toContain('#define N_OPS 10');
    // The child maps, the context's opener (process 1) attaches and detaches: the callers the model uses.
    expect(p.source).toContain('{ K_IOAS_MAP, 14, "ioas_map", 1, 0, 0, 0x7f0000000000ULL, 0x1000ULL, 0x2000000ULL, 7u');
    expect(p.source).toContain('{ K_DOMAIN_ATTACH, 17, "domain_attach", 0, 0, 0,');
    compile('finding', p.source);
  });

  it('exports a shared mmap with flag 4 (MAP_SHARED in the runtime), a private one without', () => {
    const text = [
      '{"op":"process","pid":"p"}',
      '{"op":"mmap","pid":"p","addr":"0x100000","length":8192,"shared":true}',
      '{"op":"mmap","pid":"p","addr":"0x200000","length":4096,"prot":"r"}',
    ].join('\n');
    const p = exportC(parseTraceText(`${text}\n`, 'shared.jsonl'), 'shared.jsonl');
    expect(p.notExportable).toEqual([]);
    expect(p.source).toContain('{ K_MMAP, 2, "mmap", 0, 0, 0, 0x100000ULL, 0x2000ULL, 0x0ULL, 4u');
    expect(p.source).toContain('{ K_MMAP, 3, "mmap", 0, 0, 0, 0x200000ULL, 0x1000ULL, 0x0ULL, 1u');
    compile('shared', p.source);
  });

  it('reports the memfd and map_file ops of a shipped trace as not in the 6.12 kernel, by op and line', () => {
    const p = exported('replays/map-file-stale-folio.jsonl');
    expect(p.notExportable.map((n) => [n.op, n.name, n.reason])).toEqual([
      [2, 'memfd', REASONS.mapFile],
      [7, 'fault', REASONS.site],
      [8, 'map_file', REASONS.mapFile],
    ]);
    compile('map_file', p.source);
  });

  it("reports the kernel-thread pin of bad-free as not exportable, and runs the dead caller's ops elsewhere", () => {
    const p = exported('replays/bad-free.jsonl');
    expect(p.notExportable).toEqual([{ op: 8, line: 33, name: 'access_pin', reason: REASONS.kthread }]);
    expect(p.source).toContain('{ K_ACCESS_DESTROY, 36, "access_destroy", -1,');
    compile('bad-free', p.source);
  });

  it('names every op user space cannot perform, by op and line', () => {
    const text = [
      '{"format":"ioptrace-trace","version":1}',
      '{"op":"process","pid":1}',
      '{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":8192,"pfns":[[100,2]]}',
      '{"op":"mmap","pid":1,"addr":"0x7f0040000000","length":"0x40000000","huge":"1G"}',
      '{"op":"mmap","pid":1,"addr":"0x7f0100000000","length":"0x200000","huge":"2M"}',
      '{"op":"open","ctx":"c","pid":1}',
      '{"op":"ioas_alloc","ioas":"A"}',
      '{"op":"fault","nth":2,"site":"gup"}',
      '{"op":"fault","nth":1}',
      '{"op":"domain_attach","domain":"G","ioas":"A","kind":"generic"}',
      '{"op":"domain_attach","domain":"M","ioas":"A"}',
      '{"op":"ioas_map","ioas":"A","pid":1,"uptr":"0x7f0100000000","length":"0x200000","iova":"0x1000000"}',
      '{"op":"access_create","access":"X","ioas":"A"}',
      '{"op":"access_pin","access":"X","pid":"kthread","iova":"0x1000000","length":4096}',
      '{"op":"access_pin","access":"X","pid":1,"iova":"0x1000000","length":4096}',
      '{"op":"access_unpin","access":"X","iova":"0x1000000","length":8192}',
      '{"op":"access_unpin","access":"X","iova":"0x1000000","length":4096}',
      '{"op":"access_rw","access":"X","pid":1,"iova":"0x1000000","length":4,"kthread":true}',
      '{"op":"access_rw","access":"X","pid":1,"iova":"0x1000000","length":4,"write":true,"data":"01020304"}',
      '{"op":"check_refs","pid":1,"uptr":"0x7f0100000000","length":4096,"refs":1}',
      '{"op":"check_map","pid":1,"ioas":"A","iova":"0x1000000","length":"0x200000","uptr":"0x7f0100000000"}',
      '{"op":"ioas_allow_iovas","ioas":"A","ranges":[[0,"0xffff"]]}',
      '{"op":"vfio_unmap","ioas":"A","iova":"0x1000000","length":"0x200000"}',
    ].join('\n');
    const p = exportC(parseTraceText(text, 'all.jsonl'), 'all.jsonl');
    expect(p.notExportable).toEqual([
      { op: 2, line: 3, name: 'mmap', reason: REASONS.pfns },
      { op: 3, line: 4, name: 'mmap', reason: REASONS.huge1g },
      { op: 7, line: 8, name: 'fault', reason: REASONS.site },
      { op: 9, line: 10, name: 'domain_attach', reason: REASONS.generic },
      { op: 13, line: 14, name: 'access_pin', reason: REASONS.kthread },
      { op: 15, line: 16, name: 'access_unpin', reason: REASONS.unpin },
      { op: 17, line: 18, name: 'access_rw', reason: REASONS.rwKthread },
      { op: 19, line: 20, name: 'check_refs', reason: REASONS.hugeRefs },
    ]);
    expect(p.source).toContain('static const struct x_range R21[] = { { 0x0ULL, 0xffffULL } };');
    expect(p.source).toContain('static const int D20[] = { 0 };'); // M, the only domain that was attached
    expect(p.source).toContain('0x7f0100000000ULL, 0u, NULL, NULL, 1, D20 }');
    compile('all', p.source);
  });

  it('reports the ioctls the 6.12 kernel lacks (MAP_FILE, CHANGE_PROCESS, v6.13; HW_QUEUE_ALLOC, v6.17) as not exportable, naming the kernel', () => {
    const text = [
      '{"format":"ioptrace-trace","version":1}',
      '{"op":"process","pid":1}',
      '{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":8192}',
      '{"op":"open","ctx":"c","pid":1}',
      '{"op":"ioas_alloc","ioas":"A"}',
      '{"op":"ioas_map","ioas":"A","pid":1,"uptr":"0x7f0000000000","length":8192,"iova":"0x1000000"}',
      '{"op":"memfd","pid":1,"file":"m","length":8192}',
      '{"op":"map_file","ioas":"A","pid":1,"file":"m","start":0,"length":8192,"iova":"0x2000000"}',
      '{"op":"change_process","pid":1}',
      '{"op":"hw_queue_alloc","queue":"q","ioas":"A","iova":"0x1000000","length":4096}',
      '{"op":"hw_queue_destroy","queue":"q"}',
      '{"op":"ioas_unmap","ioas":"A","all":true}',
    ].join('\n');
    const p = exportC(parseTraceText(text, 'later.jsonl'), 'later.jsonl');
    expect(p.notExportable).toEqual([
      { op: 6, line: 7, name: 'memfd', reason: REASONS.mapFile },
      { op: 7, line: 8, name: 'map_file', reason: REASONS.mapFile },
      { op: 8, line: 9, name: 'change_process', reason: REASONS.changeProcess },
      { op: 9, line: 10, name: 'hw_queue_alloc', reason: REASONS.hwQueue },
      { op: 10, line: 11, name: 'hw_queue_destroy', reason: REASONS.hwQueue },
    ]);
    expect(REASONS.changeProcess).toContain('6.12.118');
    expect(REASONS.changeProcess).toContain('v6.13 (829ed626499c)');
    // The skipped rows carry the reason into the program, which prints it for the op.
    expect(p.source).toContain('K_SKIP, 9, "change_process"');
    compile('later', p.source);
  });

  it('gives an unpin every earlier pin of its range as a candidate, oldest first (the program takes the first held)', () => {
    // fuzz --against-kernel seed 2179: the newest pin of the range had failed (EPERM); the model undoes the
    // oldest pin still held, and which pins hold is known only when the program runs.
    const p = exported('tests/fixtures/kernel-fuzz/unpin-after-failed-pin.jsonl');
    expect(p.notExportable).toEqual([]);
    expect(p.source).toContain('static const int D9[] = { 0, 1 };');
    expect(p.source).toContain(
      '{ K_ACCESS_UNPIN, 14, "access_unpin", 0, 0, 0, 0x0ULL, 0x0ULL, 0x0ULL, 0u, NULL, NULL, 2, D9 }',
    );
    expect(p.source).toContain(
      '{ K_ACCESS_UNPIN, 15, "access_unpin", 0, 0, 0, 0x0ULL, 0x0ULL, 0x0ULL, 0u, NULL, NULL, 2, D10 }',
    );
    compile('unpin-after-failed-pin', p.source);
  });

  it('exports every shipped selftest trace that has no unexportable op as a program that compiles', () => {
    const p = exported('replays/selftest/fail_nth.map_two_domains.jsonl');
    expect(p.notExportable).toEqual([]);
    compile('map-two-domains', p.source);
  });
});
