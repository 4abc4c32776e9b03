// SPDX-License-Identifier: GPL-2.0-only
/**
 * Shared by the store tests and the writer child process: a temporary directory per test, a RunInfo whose
 * trace text matches its sha256, and deterministic events (four types in turn, ten events per op).
 */

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeJson } from '../../src/lib/codec.js';
import type { EventRow, OpRow, RunInfo, RunWriter } from '../../src/store/index.js';

export const EVENT_TYPES = ['PagesPinned', 'XaStored', 'IommuMapped', 'AccountingCharged'] as const;
export const EVENTS_PER_OP = 10;

export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ioptrace-store-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function runInfo(variant = 'v3', flags: string[] = []): RunInfo {
  const traceText = '{"ioptrace":1}\n{"op":"map","iova":"0x1000","length":4096}\n';
  return {
    tracePath: 'replays/sample.jsonl',
    traceSha256: createHash('sha256').update(traceText).digest('hex'),
    traceText,
    variant,
    flags,
    faultPlan: { failAt: 3n },
    header: { ioptrace: 1 },
  };
}

/** Event seq (1-based) of the test vocabulary: type cycles through EVENT_TYPES, op = (seq - 1) / 10. */
export function eventRow(seq: number): EventRow {
  const type = EVENT_TYPES[(seq - 1) % EVENT_TYPES.length] ?? 'PagesPinned';
  const v = 1;
  const payload = encodeJson({
    type,
    v,
    iova: BigInt(seq) * 4096n,
    index: seq,
    pfns: [[262144 + seq, 17]],
    note: 'x'.repeat(80),
  });
  return { seq, op: Math.floor((seq - 1) / EVENTS_PER_OP), type, v, payload };
}

export function opRow(index: number): OpRow {
  return {
    index,
    line: index + 2,
    op: index % 2 === 0 ? 'map' : 'unmap',
    errno: index % 7 === 3 ? 'ENOMEM' : null,
    result: encodeJson({ iova: BigInt(index) * 4096n }),
    firstSeq: index * EVENTS_PER_OP + 1,
    lastSeq: (index + 1) * EVENTS_PER_OP,
    digest: (index + 0x1000).toString(16).padStart(16, '0'),
  };
}

/** Appends events 1..count (count a multiple of EVENTS_PER_OP), closing each op after its ten events. */
export function appendOps(writer: RunWriter, count: number): void {
  for (let seq = 1; seq <= count; seq++) {
    writer.append(eventRow(seq));
    if (seq % EVENTS_PER_OP === 0) writer.endOp(opRow(seq / EVENTS_PER_OP - 1));
  }
}

/** Every item of an async stream, for tests that compare a whole (small) run. */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
