import { describe, expect, it } from 'vitest';

import { findingLines } from '../../../src/cli/commands/replay.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { replay } from '../../../src/replay/replayer.js';

describe('check_refs over many failing pages', () => {
  it('lists the first 8 and counts the other 248', () => {
    const trace = parseTraceText(
      [
        '{"op":"process","pid":1}',
        '{"op":"mmap","pid":1,"addr":"0x100000","length":"0x100000","pfns":[["0x40000",256]]}',
        '{"op":"check_refs","pid":1,"uptr":"0x100000","length":"0x100000","refs":1}',
      ].join('\n'),
    );
    const r = replay(trace, { variant: 'upstream', fixes: [] });
    expect(r.mismatches.map((m) => [m.field, m.expected, m.actual, m.more])).toEqual([
      ['check_refs pfn 0x40000 @0x100000', '1 pins', '0 pins', undefined],
      ['check_refs pfn 0x40001 @0x101000', '1 pins', '0 pins', undefined],
      ['check_refs pfn 0x40002 @0x102000', '1 pins', '0 pins', undefined],
      ['check_refs pfn 0x40003 @0x103000', '1 pins', '0 pins', undefined],
      ['check_refs pfn 0x40004 @0x104000', '1 pins', '0 pins', undefined],
      ['check_refs pfn 0x40005 @0x105000', '1 pins', '0 pins', undefined],
      ['check_refs pfn 0x40006 @0x106000', '1 pins', '0 pins', undefined],
      ['check_refs pfn 0x40007 @0x107000', '1 pins', '0 pins', 248],
    ]);
    expect(findingLines(r).slice(-2)).toEqual([
      '  MISMATCH line 3: check_refs pfn 0x40007 @0x107000 expected 1 pins, got 0 pins',
      '  (and 248 more at line 3, not listed)',
    ]);
  });
});
