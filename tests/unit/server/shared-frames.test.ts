// SPDX-License-Identifier: GPL-2.0-only
// The book of shared objects under `ioptrace run`: which model frames hold an object's pages, split where
// that knowledge starts or stops, and where a live process maps the bytes of a process that has gone.
import { describe, expect, it } from 'vitest';
import { SharedFrames } from '../../../src/server/shared-frames.js';

const PAGE = 4096n;

describe('SharedFrames', () => {
  it('gives the known frames of an object as runs, and the unknown or freed parts as fresh pieces', () => {
    const book = new SharedFrames(PAGE);
    // Process 10 declared pages 1..3 of object 0:1:77 at 0x100000 (its VMA starts at object byte 0x1000).
    const pfns: Record<string, number> = { '0x100000': 0x40000, '0x101000': 0x40001, '0x102000': 0x40004 };
    book.record(
      10,
      { start: 0x100000n, end: 0x103000n, object: '0:1:77', offset: 0x1000n },
      (addr) => pfns[`0x${addr.toString(16)}`],
    );
    const live = (pfn: number): boolean => pfn !== 0x40004;
    expect(book.pieces('0:1:77', 0n, 5n * PAGE, live)).toEqual([
      { at: 0n, length: PAGE, pfns: null },
      { at: PAGE, length: 2n * PAGE, pfns: [[0x40000, 2]] },
      // 0x40004 was freed since: a fresh mapping, with the page after it that nobody declared.
      { at: 3n * PAGE, length: 2n * PAGE, pfns: null },
    ]);
    expect(book.pieces('0:1:78', 0n, PAGE, live)).toEqual([{ at: 0n, length: PAGE, pfns: null }]);
  });

  it('finds the same bytes in another live process, at its own address, after a fork or a declaration', () => {
    const book = new SharedFrames(PAGE);
    book.record(10, { start: 0x100000n, end: 0x104000n, object: '0:1:77', offset: 0n }, () => undefined);
    book.record(11, { start: 0x700000n, end: 0x702000n, object: '0:1:77', offset: 0x2000n }, () => undefined);
    book.forked(10, 12);
    const alive = (pid: number): boolean => pid !== 10;
    // Bytes 0x2010..0x2020 of the object: process 11 maps them at 0x700010.
    expect(book.elsewhere(10, 0x102010n, 16n, alive)).toEqual({ pid: 11, addr: 0x700010n });
    // Only process 12 (the fork) maps the object's first page.
    expect(book.elsewhere(10, 0x100000n, 16n, alive)).toEqual({ pid: 12, addr: 0x100000n });
    // Not a declared shared range of process 10, and a range nobody else alive maps.
    expect(book.elsewhere(10, 0x200000n, 16n, alive)).toBeNull();
    expect(book.elsewhere(12, 0x100000n, 16n, (pid) => pid === 12)).toBeNull();
  });
});
