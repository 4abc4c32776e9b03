// SPDX-License-Identifier: GPL-2.0-only
/**
 * Child process of the long-run audit test (run with vite-node), so that its seconds of synchronous work
 * never block the test worker:
 *
 *   audit-long-child.ts DIR OPS   write DIR/long.jsonl (OPS trace ops: setup, then access_pin / access_unpin
 *                                 of one page in turn), record it on upstream into DIR/long.db, audit the run,
 *                                 render it as text, JSON and HTML (written to DIR/long.html), and print one
 *                                 JSON line with what the test checks.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditJson, auditRun, auditText, renderAuditHtml } from '../../src/audit/index.js';
import { toJson } from '../../src/cli/output.js';
import { resolveVariant } from '../../src/kernel/variants.js';
import { parseTraceText } from '../../src/replay/parse.js';
import { recordReplay } from '../../src/replay/record.js';
import { openStore } from '../../src/store/index.js';

/** A trace of `ops` ops (an even number): seven of setup, pin/unpin pairs, then destroy, unmap and exit. */
export function longTrace(ops: number): string {
  const head = [
    '{"format":"ioptrace-trace","version":1}',
    '{"op":"process","pid":1,"memlock":"unlimited"}',
    '{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":65536}',
    '{"op":"open","ctx":"fd","pid":1}',
    '{"op":"ioas_alloc","ioas":"A","ctx":"fd"}',
    '{"op":"ioas_map","ioas":"A","pid":1,"uptr":"0x7f0000000000","length":65536,"iova":"0x100000"}',
    '{"op":"access_create","access":"mdev","ioas":"A"}',
    '{"op":"temp_memory_limit","bytes":65536}',
  ];
  const tail = [
    '{"op":"access_destroy","access":"mdev"}',
    '{"op":"ioas_unmap","ioas":"A","all":true}',
    '{"op":"exit","pid":1}',
  ];
  const lines = [...head];
  const pairs = (ops - (head.length - 1) - tail.length) / 2;
  if (!Number.isInteger(pairs) || pairs < 0) throw new RangeError(`${ops} ops do not make whole pin/unpin pairs`);
  for (let i = 0; i < pairs; i++) {
    lines.push('{"op":"access_pin","access":"mdev","pid":1,"iova":"0x100000","length":4096}');
    lines.push('{"op":"access_unpin","access":"mdev","iova":"0x100000","length":4096}');
  }
  for (const l of tail) lines.push(l);
  return `${lines.join('\n')}\n`;
}

const [dir, opsText] = process.argv.slice(2);
if (dir !== undefined && opsText !== undefined) {
  const tracePath = join(dir, 'long.jsonl');
  const text = longTrace(Number(opsText));
  writeFileSync(tracePath, text);
  const store = await openStore(join(dir, 'long.db'));
  try {
    const spec = resolveVariant('upstream');
    const { run } = await recordReplay(store, parseTraceText(text, tracePath), {
      tracePath,
      traceText: text,
      variant: spec.variant,
      fixes: spec.fixes,
    });
    const report = await auditRun(store, run);
    const lines = auditText(report);
    const json = JSON.parse(toJson(auditJson(report))) as { ledger: unknown[]; rules: { ok: boolean }[] };
    const html = renderAuditHtml(report);
    writeFileSync(join(dir, 'long.html'), html);
    const polylines = html.match(/<polyline class="series"/g) ?? [];
    const points = /data-counter="pins" points="([^"]*)"/.exec(html)?.[1]?.split(' ').length ?? 0;
    const summary = {
      run,
      ops: report.ops.length,
      ledger: report.ledger.length,
      byCounter: Object.fromEntries(
        ['pins', 'npinned', 'last_npinned', 'user.locked_vm', 'mm.locked_vm', 'mm.pinned_vm'].map((c) => [
          c,
          report.ledger.filter((l) => l.counter === c).length,
        ]),
      ),
      ok: report.ok,
      text: { lines: lines.length, head: lines.slice(0, 2), last: lines[lines.length - 1] },
      json: { ledger: json.ledger.length, rulesOk: json.rules.filter((r) => r.ok).length },
      html: { polylines: polylines.length, pinsPoints: points, ledgerRows: (html.match(/<tr/g) ?? []).length },
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    await store.close();
  }
}
