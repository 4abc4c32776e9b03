// SPDX-License-Identifier: GPL-2.0-only
/**
 * Trace format version 3: version 2 with finding texts that give PFNs in hex and gup_unshare_read_pins on
 * unless the header says otherwise. Versions 1 and 2 keep what they stored: their decimal PFN texts and the
 * old GUP default, so traces that replayed before keep their digests and heads.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultTraceHeader } from '../../../src/events/trace.js';
import { serializeHeader } from '../../../src/fuzz/write.js';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { replay } from '../../../src/replay/replayer.js';

const STALE_FOLIO = readFileSync(join(import.meta.dirname, '../../../replays/map-file-stale-folio.jsonl'), 'utf8');

/** The shipped stale-folio finding under another header line. */
function withHeader(header: string): string {
  const [, ...rest] = STALE_FOLIO.split('\n');
  return [header, ...rest].join('\n');
}

// The shipped trace's trigger is the xarray mock's own fault point (iommu_map): upstream without mock-iommupt.
function violationTexts(text: string): string[] {
  const r = replay(parseTraceText(text, 'stale-folio'), resolveVariant('upstream', [], ['mock-iommupt']));
  return r.violations.map((v) => `${v.kind} ${v.fn}: ${v.detail}`);
}

describe('trace format version 3', () => {
  it('turns gup_unshare_read_pins on by default; versions 1 and 2 keep it off; an explicit setting wins', () => {
    const settle = (header: string): boolean =>
      parseTraceText(`${header}\n{"op":"process","pid":1}\n`).header.gup_unshare_read_pins;
    expect(settle('{"format":"ioptrace-trace","version":1}')).toBe(false);
    expect(settle('{"format":"ioptrace-trace","version":2}')).toBe(false);
    expect(settle('{"format":"ioptrace-trace","version":3}')).toBe(true);
    expect(settle('{"format":"ioptrace-trace","version":3,"gup_unshare_read_pins":false}')).toBe(false);
    expect(settle('{"format":"ioptrace-trace","version":1,"gup_unshare_read_pins":true}')).toBe(true);
  });

  it('writes a header with the settings that differ from its own version defaults, so it reads back the same', () => {
    const v3off = { ...defaultTraceHeader(3), gup_unshare_read_pins: false };
    expect(serializeHeader(defaultTraceHeader(3))).toBe('{"format":"ioptrace-trace","version":3}');
    expect(serializeHeader(v3off)).toBe('{"format":"ioptrace-trace","version":3,"gup_unshare_read_pins":false}');
    expect(serializeHeader({ ...defaultTraceHeader(1), gup_unshare_read_pins: true })).toBe(
      '{"format":"ioptrace-trace","version":1,"gup_unshare_read_pins":true}',
    );
    const reread = parseTraceText(`${serializeHeader(v3off)}\n{"op":"process","pid":1}\n`).header;
    expect(reread).toEqual(v3off);
  });

  it('stores the double unpin of the stale-folio finding with a hex PFN in version 3, decimal before', () => {
    const text = 'double_unpin batch_unpin: unpin of 1 page(s) at pfn';
    expect(violationTexts(withHeader('{"format":"ioptrace-trace","version":1}'))).toEqual([
      `${text} 262150 that hold no pin`,
    ]);
    expect(violationTexts(withHeader('{"format":"ioptrace-trace","version":2}'))).toEqual([
      `${text} 262150 that hold no pin`,
    ]);
    expect(violationTexts(withHeader('{"format":"ioptrace-trace","version":3}'))).toEqual([
      `${text} 0x40006 that hold no pin`,
    ]);
  });
});
