// SPDX-License-Identifier: GPL-2.0-only
/**
 * The HTML report of a real run: its chart checked structurally (always), and rendered by headless Chromium
 * through scripts/render-audit.sh when /usr/bin/chromium exists (CI need not have it), with the screenshot
 * decoded and its pixels counted: the counter lines and the violation markers must be on screen.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { opX, renderAuditHtml } from '../../src/audit/html.js';
import { auditRun } from '../../src/audit/report.js';
import { recordTrace, tempStore, type TempStore } from '../fixtures/audit/record.js';

let t: TempStore;
beforeEach(async () => {
  t = await tempStore();
});
afterEach(async () => {
  await t.close();
});

const CHROMIUM = '/usr/bin/chromium';

interface Png {
  width: number;
  height: number;
  /** RGB per pixel. */
  rgb: Uint8Array;
}

/** A minimal PNG decoder: 8-bit truecolour with or without alpha, not interlaced (what Chromium writes). */
function decodePng(bytes: Buffer): Png {
  let at = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (at < bytes.length) {
    const len = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    const data = bytes.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [depth, colour, , , interlace] = [data[8], data[9], data[10], data[11], data[12]];
      if (depth !== 8 || (colour !== 2 && colour !== 6) || interlace !== 0)
        throw new Error(`unsupported PNG ${depth}/${colour}/${interlace}`);
      channels = colour === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(data);
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const cur = new Uint8Array(stride);
  let prev = new Uint8Array(stride);
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)] ?? 0;
    const row = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? (cur[i - channels] ?? 0) : 0;
      const b = prev[i] ?? 0;
      const c = i >= channels ? (prev[i - channels] ?? 0) : 0;
      const x = row[i] ?? 0;
      let v = x;
      if (filter === 1) v = x + a;
      else if (filter === 2) v = x + b;
      else if (filter === 3) v = x + ((a + b) >> 1);
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v = x + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
      cur[i] = v & 0xff;
    }
    for (let px = 0; px < width; px++) {
      rgb.set(cur.subarray(px * channels, px * channels + 3), (y * width + px) * 3);
    }
    prev = Uint8Array.from(cur);
  }
  return { width, height, rgb };
}

/** Pixels within `tolerance` of a colour, in columns x0..x1 (inclusive) of the whole height. */
function countColour(png: Png, hex: string, tolerance: number, x0 = 0, x1 = png.width - 1): number {
  const want = [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));
  let n = 0;
  for (let y = 0; y < png.height; y++) {
    for (let x = Math.max(0, x0); x <= Math.min(png.width - 1, x1); x++) {
      const i = (y * png.width + x) * 3;
      if (want.every((w, k) => Math.abs((png.rgb[i + k] ?? 0) - w) <= tolerance)) n++;
    }
  }
  return n;
}

/** The page's left margin: the chart's SVG starts this many pixels from the window's left edge. */
const BODY_MARGIN = 24;

describe('audit --html of fail_nth.access_pin on v3', () => {
  it('draws six counters over the 14 ops and marks the three broken rules at their ops', async () => {
    const run = await recordTrace(t.store, 'replays/selftest/fail_nth.access_pin.jsonl', 'v3');
    const html = renderAuditHtml(await auditRun(t.store, run));
    const polylines = [...html.matchAll(/<polyline class="series" data-counter="([^"]+)" points="([^"]*)"/g)].map(
      (m) => [m[1], (m[2] ?? '').split(' ').length],
    );
    expect(polylines).toEqual([
      ['pins', 14],
      ['mm.pinned_vm', 14],
      ['user.locked_vm', 14],
      ['mm.locked_vm', 14],
      ['last_npinned', 14],
      ['npinned', 14],
    ]);
    const markers = [
      ...html.matchAll(/<g class="violation" data-rule="([^"]+)" data-op="(\d+)" data-x="([\d.]+)">/g),
    ].map((m) => [m[1], Number(m[2]), Number(m[3])]);
    expect(markers).toEqual([
      ['ledger-equals-state', 11, opX(11, 0, 13)],
      ['npinned-equals-pins', 9, opX(9, 0, 13)],
      ['zero-after-teardown', 13, opX(13, 0, 13)],
    ]);
    // The ledger below: 532 lines; the 9 of op 9 (3 unpins, 3 npinned, 3 charges) highlighted.
    expect([...html.matchAll(/<tr( class="at-break")?><td class="num">\d+<\/td>/g)]).toHaveLength(532);
    expect([...html.matchAll(/<tr class="at-break">/g)]).toHaveLength(9);
  });

  it.skipIf(!existsSync(CHROMIUM))(
    'renders in headless Chromium with the chart and the markers on screen',
    { timeout: 120_000 },
    async () => {
      const run = await recordTrace(t.store, 'replays/selftest/fail_nth.access_pin.jsonl', 'v3');
      const htmlPath = join(t.dir, 'report.html');
      const pngPath = join(t.dir, 'report.png');
      writeFileSync(htmlPath, renderAuditHtml(await auditRun(t.store, run)));
      const out = execFileSync('bash', ['scripts/render-audit.sh', htmlPath, pngPath, '1200,900'], {
        encoding: 'utf8',
        env: { ...process.env, CHROMIUM },
      });
      expect(out.trim()).toBe(pngPath);
      const png = decodePng(readFileSync(pngPath));
      expect([png.width, png.height]).toEqual([1200, 900]);
      // The widest line (pins, green) is on screen; each marker's red dashed line stands at its op's x, and no
      // red is drawn at an op where nothing broke.
      expect(countColour(png, '#2ca02c', 24)).toBeGreaterThan(1000);
      const column = (op: number): [number, number] => {
        const x = Math.round(BODY_MARGIN + opX(op, 0, 13));
        return [x - 2, x + 2];
      };
      for (const op of [9, 11, 13])
        expect([op, countColour(png, '#c00000', 16, ...column(op)) > 150]).toEqual([op, true]);
      for (const op of [1, 3]) expect([op, countColour(png, '#c00000', 16, ...column(op))]).toEqual([op, 0]);
      expect(countColour(png, '#ffffff', 0)).toBeGreaterThan(400_000);
    },
  );
});
