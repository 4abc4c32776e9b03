// SPDX-License-Identifier: GPL-2.0-only
/**
 * Rows read back, as every backend checks them: runs, ops and snapshot rows are parsed with zod (few rows,
 * cheap) into the shapes of types.ts; a row that does not fit is a StoreError 'bad-row' naming the column.
 */

import { z } from 'zod';
import { decodeJson } from '../lib/codec.js';
import { StoreError } from './errors.js';
import type { RunRow, StoredOp } from './types.js';

const jsonText = z.string().transform((text, ctx) => {
  try {
    return decodeJson(text);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'not JSON' });
    return z.NEVER;
  }
});

export const runRowSchema = z
  .object({
    id: z.number().int(),
    trace_path: z.string(),
    trace_sha256: z.string(),
    variant: z.string(),
    flags: jsonText.pipe(z.array(z.string())),
    fault_plan: jsonText,
    header: jsonText,
    status: z.enum(['running', 'complete', 'failed']),
    error: z.string().nullable(),
    error_op: z.number().int().nullable(),
    error_line: z.number().int().nullable(),
    event_count: z.number().int(),
    op_count: z.number().int(),
    head_hash: z.string().nullable(),
    ops_head_hash: z.string().nullable(),
    final_digest: z.string().nullable(),
    created_seq: z.number().int(),
  })
  .transform((r): RunRow => ({
    id: r.id,
    tracePath: r.trace_path,
    traceSha256: r.trace_sha256,
    variant: r.variant,
    flags: r.flags,
    faultPlan: r.fault_plan,
    header: r.header,
    status: r.status,
    incomplete: r.status === 'running',
    error: r.error,
    errorOp: r.error_op,
    errorLine: r.error_line,
    eventCount: r.event_count,
    opCount: r.op_count,
    headHash: r.head_hash,
    opsHeadHash: r.ops_head_hash,
    finalDigest: r.final_digest,
    createdSeq: r.created_seq,
  }));

export const opRowSchema = z
  .object({
    run: z.number().int(),
    idx: z.number().int(),
    line: z.number().int(),
    op: z.string(),
    errno: z.string().nullable(),
    result: z.string(),
    first_seq: z.number().int(),
    last_seq: z.number().int(),
    digest: z.string(),
    hash: z.string(),
  })
  .transform((r): StoredOp => ({
    run: r.run,
    index: r.idx,
    line: r.line,
    op: r.op,
    errno: r.errno,
    result: r.result,
    firstSeq: r.first_seq,
    lastSeq: r.last_seq,
    digest: r.digest,
    hash: r.hash,
  }));

export const snapshotRowSchema = z.object({
  seq: z.number().int(),
  op: z.number().int(),
  digest: z.string(),
  format: z.number().int(),
  state: z.instanceof(Uint8Array),
});

export function parseRow<T>(schema: z.ZodType<T>, row: unknown, what: string): T {
  const parsed = schema.safeParse(row);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue === undefined ? '' : issue.path.join('.');
    throw new StoreError('bad-row', `${what}: column ${field}: ${issue?.message ?? 'invalid'}`, { what, field });
  }
  return parsed.data;
}
