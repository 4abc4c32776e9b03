// SPDX-License-Identifier: GPL-2.0-only
/**
 * GUP unsharing of read-only pins (mm behaviour since Linux 5.19, gup_must_unshare): any FOLL_PIN without
 * FOLL_WRITE of a non-exclusive anonymous page unshares it, long-term or not. The one short-term pin of
 * iommufd is iopt_pages_rw_page (access_rw of one page from a task whose mm is not the source mm). With the
 * trace header setting gup_unshare_read_pins the pin copies the shared page first, on every variant; without
 * it (version 1 as it always replayed) only long-term pins unshare.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { replay } from '../../../src/replay/replayer.js';
import { MemorySink } from '../../../src/state/emit.js';
import { xaLoad } from '../../../src/structures/xarray.js';

const SHARED = 0x50000;
const VPN = 0x7f0000000000 / 4096;

/** Two processes map the same two frames (as after fork: each frame mapped twice, so not exclusive). */
function trace(unshareReadPins: boolean | null): string {
  const header =
    unshareReadPins === null
      ? '{"format":"ioptrace-trace","version":1}'
      : `{"format":"ioptrace-trace","version":1,"gup_unshare_read_pins":${unshareReadPins}}`;
  return [
    header,
    '{"op":"process","pid":1,"memlock":"unlimited"}',
    '{"op":"process","pid":2,"memlock":"unlimited"}',
    `{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":8192,"pfns":[[${SHARED},2]]}`,
    `{"op":"mmap","pid":2,"addr":"0x7f0000000000","length":8192,"pfns":[[${SHARED},2]]}`,
    '{"op":"write","pid":1,"addr":"0x7f0000000000","data":"abcd"}',
    '{"op":"open","ctx":"c","pid":1}',
    '{"op":"ioas_alloc","ioas":"A"}',
    // No domain: the map pins nothing, so the page is still shared when the access reads it.
    '{"op":"ioas_map","ioas":"A","pid":1,"uptr":"0x7f0000000000","length":8192,"iova":"0x1000000","expect":"ok"}',
    '{"op":"access_create","access":"x","ioas":"A","expect":"ok"}',
    // Process 2 is not the source: one page read goes to iopt_pages_rw_page, a short-term FOLL_PIN read.
    '{"op":"access_rw","access":"x","pid":2,"iova":"0x1001000","length":4,"expect":{"data":"00000000"}}',
  ].join('\n');
}

function run(text: string, variant: string) {
  const sink = new MemorySink();
  const r = replay(parseTraceText(text, 'gup-unshare'), { ...resolveVariant(variant), sink });
  const mm = (pid: string): number => r.state.processes[pid]?.mm ?? -1;
  const pt = (pid: string, page: number): number | undefined => {
    const m = r.state.mms[mm(pid)];
    return m === undefined ? undefined : xaLoad(m.pt, VPN + page);
  };
  const cows = sink.events.filter((e) => e.type === 'CowBroken').map((e) => (e.type === 'CowBroken' ? e.fn : ''));
  return { r, pt, cows };
}

describe('a read-only short-term pin of a shared anonymous page', () => {
  for (const variant of ['v3', 'merged', 'upstream']) {
    it(`${variant}, gup_unshare_read_pins: the pin unshares the page (process 1 gets a copy, process 2 keeps it)`, () => {
      const { r, pt, cows } = run(trace(true), variant);
      expect(r.mismatches).toEqual([]);
      expect([...r.violations, ...r.warns]).toEqual([]);
      // Page 0 was copied by process 1's CPU write (COW); page 1 by the pin's unshare.
      expect(cows).toEqual(['do_wp_page', 'pin_user_pages_remote']);
      expect(pt('2', 1)).toBe(SHARED + 1);
      expect(pt('1', 1)).not.toBe(SHARED + 1);
      expect(r.state.config.gupUnshareReadPins).toBe(true);
    });

    it(`${variant}, version 1 default: only long-term pins unshare, the page stays shared`, () => {
      const { r, pt, cows } = run(trace(null), variant);
      expect(r.mismatches).toEqual([]);
      expect(cows).toEqual(['do_wp_page']);
      expect(pt('1', 1)).toBe(SHARED + 1);
      expect(pt('2', 1)).toBe(SHARED + 1);
      expect(r.state.config.gupUnshareReadPins).toBeUndefined();
    });
  }

  it('the setting written false is the version 1 default: the same digest as no setting', () => {
    expect(run(trace(false), 'upstream').r.digest).toBe(run(trace(null), 'upstream').r.digest);
  });
});

describe('replays/gup-unshare-read-pin.jsonl', () => {
  const text = readFileSync(join(import.meta.dirname, '../../../replays/gup-unshare-read-pin.jsonl'), 'utf8');
  const pinned = (t: string, variant: string): unknown =>
    replay(parseTraceText(t, 'gup-unshare-read-pin'), resolveVariant(variant)).ops.find((o) => o.op === 'access_pin')
      ?.outputs;

  it('merged and upstream: clean; the access pins process 1 copy 0x50005 (the original 0x50001 without the setting)', () => {
    for (const variant of ['merged', 'upstream']) {
      const r = replay(parseTraceText(text, 'gup-unshare-read-pin'), resolveVariant(variant));
      expect(r.mismatches).toEqual([]);
      expect([...r.violations, ...r.warns]).toEqual([]);
      expect(pinned(text, variant)).toEqual({ pfns: [[0x50005, 1]] });
      expect(pinned(text.replace(',"gup_unshare_read_pins":true', ''), variant)).toEqual({ pfns: [[0x50001, 1]] });
    }
  });
});
