// SPDX-License-Identifier: GPL-2.0-only
/**
 * Copying runs between stores (`ioptrace export` and `import`), written against the Store interface only,
 * so it copies between any two backends. The copy is not a row dump: every event and op row goes in again
 * through the target's RunWriter, which recomputes both hash chains, and the copy is refused unless the
 * recomputed chains end exactly where the source's stored ones do.
 *
 * The checks, in the order they run:
 * 1. Before anything is written, for every run asked for: it exists, it is finished (an incomplete run is
 *    copied only when asked, see below), and `verify` finds its chains and summary intact. A tampered
 *    source is refused here, with the first broken row named, and the target is not touched.
 * 2. While copying: after each event the writer's head must equal the hash the source stored for that
 *    event, and each op row's recomputed chain link the op's stored hash. So the first row that would hash
 *    differently in the target (a source changed since step 1, a value that does not survive the trip) is
 *    named by its seq or index.
 * 3. Before the finish row: event count, op count, head and ops head of the copy equal the source run's,
 *    and `verify` of the copy in the target passes. Only then is the copy finished with the source's
 *    status and final digest; a refusal at step 2 or 3 finishes the copy as 'failed' with the reason, so a
 *    copy that did not match never looks complete.
 * 4. After the finish: the target's row is read back and compared again (head, ops head, event count, op
 *    count, final digest, status).
 *
 * Snapshots are copied as stored (they are not chained; a reader rebuilds from them through the same
 * reducers, and `ioptrace at` compares a rebuilt state with the op digests). The trace text goes with the
 * run. Run ids are the target's: a copied run gets the next id there.
 *
 * An incomplete run (status 'running': still being written, or its writer was killed) is refused unless
 * `incomplete` is set; then what the source had committed when the copy began is copied and the copy is
 * left unfinished, so it shows as incomplete in the target too, never as complete or failed.
 */

import { encodeJson } from '../lib/codec.js';
import { NotFoundError } from '../lib/errors.js';
import { genesisHash, opHash } from './chain.js';
import { StoreError } from './errors.js';
import type { FinishSummary, RunRow, RunVerification, RunWriter, Store, StoredOp } from './types.js';

/** Ops read per call while copying (a run's ops are never held in memory all at once). */
const OP_CHUNK = 1024;

export interface CopyOptions {
  /** Copy incomplete runs as incomplete instead of refusing them. */
  incomplete?: boolean;
  /** Events per committed batch of the target writer (the writer's default unless given). */
  batchSize?: number;
}

/** One copied run: its id on both sides and the figures both sides agree on. */
export interface CopiedRun {
  source: number;
  target: number;
  status: RunRow['status'];
  incomplete: boolean;
  events: number;
  ops: number;
  snapshots: number;
  headHash: string;
  opsHeadHash: string;
  finalDigest: string | null;
}

function refused(message: string, details: Record<string, unknown>): StoreError {
  return new StoreError('copy-refused', message, details);
}

/** What verify found wrong with a run, in one line. */
function brokenText(v: RunVerification): string {
  const parts: string[] = [];
  if (v.firstBroken !== undefined) {
    const b = v.firstBroken;
    parts.push(`event seq ${b.seq}: ${b.reason}, expected ${b.expected}, found ${b.actual}`);
  }
  if (v.firstBrokenOp !== undefined) {
    const o = v.firstBrokenOp;
    parts.push(`op ${o.index}: ${o.reason}, expected ${o.expected}, found ${o.actual}`);
  }
  for (const m of v.mismatches) parts.push(`${m.what}: expected ${m.expected}, found ${m.actual}`);
  return parts.join('; ');
}

/**
 * Step 1 for every run of `ids` (all runs of the source when empty): returns their rows, or throws before
 * anything is written: NotFoundError for a missing run, StoreError 'copy-refused' for an incomplete one
 * (unless options.incomplete) or one that does not verify.
 */
export async function checkCopyable(
  source: Store,
  ids: readonly number[],
  options: CopyOptions = {},
): Promise<RunRow[]> {
  const rows: RunRow[] = ids.length === 0 ? await source.runs() : [];
  for (const id of ids) {
    const row = await source.run(id);
    if (row === undefined) throw new NotFoundError(`no run ${id} in ${source.path}`, 'run', id);
    rows.push(row);
  }
  for (const row of rows) {
    if (row.incomplete && options.incomplete !== true) {
      throw refused(
        `run ${row.id} of ${source.path} is incomplete (no finish row: still being written, or its writer was stopped); nothing was copied. Copy it as incomplete with --incomplete`,
        { run: row.id },
      );
    }
    const report = await source.verify(row.id);
    const verification = report.runs[0];
    if (verification === undefined || !verification.ok) {
      throw refused(
        `run ${row.id} of ${source.path} does not verify, nothing was copied: ${verification === undefined ? 'not found by verify' : brokenText(verification)}`,
        { run: row.id },
      );
    }
  }
  return rows;
}

/** The copy's chains as they are recomputed, next to the source rows they must reproduce. */
class ChainCheck {
  opsHead: string;
  ops = 0;

  constructor(
    readonly row: RunRow,
    genesis: string,
  ) {
    this.opsHead = genesis;
  }

  event(writer: RunWriter, seq: number, storedHash: string): void {
    if (writer.head !== storedHash) {
      throw refused(
        `run ${this.row.id}: event seq ${seq} hashes to ${writer.head} in the copy, but the source stored ${storedHash}`,
        { run: this.row.id, seq },
      );
    }
  }

  op(op: StoredOp): void {
    const link = opHash(this.opsHead, op);
    if (link !== op.hash) {
      throw refused(
        `run ${this.row.id}: op ${op.index} hashes to ${link} in the copy, but the source stored ${op.hash}`,
        { run: this.row.id, index: op.index },
      );
    }
    this.opsHead = link;
    this.ops++;
  }
}

/** Reads the source's ops in chunks, in index order, for ops 0..count-1. */
async function* opsOf(source: Store, run: number, count: number): AsyncGenerator<StoredOp, void, undefined> {
  for (let first = 0; first < count; first += OP_CHUNK) {
    yield* await source.ops(run, first, Math.min(count, first + OP_CHUNK) - 1);
  }
}

/**
 * Copies one run that checkCopyable accepted (steps 2 to 4 of the file comment). On a refusal the copy is
 * finished as 'failed' naming the reason (left incomplete when the source run was) and the error thrown.
 */
export async function copyRun(
  source: Store,
  target: Store,
  row: RunRow,
  options: CopyOptions = {},
): Promise<CopiedRun> {
  const traceText = await source.traceText(row.id);
  if (traceText === undefined) throw new NotFoundError(`no run ${row.id} in ${source.path}`, 'run', row.id);
  const writer = await target.beginRun(
    {
      tracePath: row.tracePath,
      traceSha256: row.traceSha256,
      traceText,
      variant: row.variant,
      flags: row.flags,
      faultPlan: row.faultPlan,
      header: row.header,
    },
    options.batchSize === undefined ? {} : { batchSize: options.batchSize },
  );
  const genesis = genesisHash(row.traceSha256, row.variant, encodeJson(row.flags), encodeJson(row.faultPlan ?? null));
  const check = new ChainCheck(row, genesis);
  try {
    const snapshots = await copyRows(source, writer, row, check);
    await writer.flush();
    await checkBeforeFinish(target, writer, row, check);
    if (row.incomplete) return copied(row, writer.run, snapshots, writer.head, check.opsHead);
    await finish(writer, row.status === 'complete' ? 'complete' : 'failed', {
      ...(row.error === null ? {} : { error: row.error }),
      ...(row.errorOp === null ? {} : { errorOp: row.errorOp }),
      ...(row.errorLine === null ? {} : { errorLine: row.errorLine }),
      ...(row.finalDigest === null ? {} : { finalDigest: row.finalDigest }),
    });
    await checkAfterFinish(target, writer.run, row);
    return copied(row, writer.run, snapshots, writer.head, check.opsHead);
  } catch (error) {
    if (!row.incomplete) await markFailed(writer, error);
    throw error;
  }
}

function copied(row: RunRow, target: number, snapshots: number, head: string, opsHead: string): CopiedRun {
  return {
    source: row.id,
    target,
    status: row.status,
    incomplete: row.incomplete,
    events: row.eventCount,
    ops: row.opCount,
    snapshots,
    headHash: head,
    opsHeadHash: opsHead,
    finalDigest: row.finalDigest,
  };
}

/** writer.finish, awaited whether the backend's writer finishes synchronously or not. */
async function finish(writer: RunWriter, status: 'complete' | 'failed', summary: FinishSummary): Promise<void> {
  await writer.finish(status, summary);
}

/** Finishes a refused copy as failed, if the writer still takes a finish row; the refusal stays the error. */
async function markFailed(writer: RunWriter, error: unknown): Promise<void> {
  const reason = error instanceof Error ? error.message : String(error);
  try {
    await finish(writer, 'failed', { error: `copy refused: ${reason}` });
  } catch {
    // The writer cannot write either (the target failed): the copy stays incomplete, never complete.
  }
}

/**
 * Appends the run's events in seq order, each op row once its events are in, each snapshot once its event
 * is; returns the number of snapshots. Only what the source row counted is copied (a run still being
 * written grows meanwhile).
 */
async function copyRows(source: Store, writer: RunWriter, row: RunRow, check: ChainCheck): Promise<number> {
  const snapshotSeqs = (await source.snapshots(row.id)).filter((seq) => seq <= row.eventCount);
  let nextSnapshot = 0;
  const putSnapshotsUpTo = async (seq: number): Promise<void> => {
    for (let at = snapshotSeqs[nextSnapshot]; at !== undefined && at <= seq; at = snapshotSeqs[++nextSnapshot]) {
      const snapshot = await source.snapshotAtOrBefore(row.id, at);
      if (snapshot?.seq !== at) {
        throw refused(`run ${row.id}: snapshot at seq ${at} could not be read back from the source`, {
          run: row.id,
          seq: at,
        });
      }
      writer.putSnapshot(snapshot.seq, snapshot.op, snapshot.digest, snapshot.state, snapshot.format);
    }
  };
  const ops = opsOf(source, row.id, row.opCount)[Symbol.asyncIterator]();
  let pending = await ops.next();
  // Ops without events (lastSeq = firstSeq - 1) close as soon as the events before them are in.
  const closeOpsUpTo = async (seq: number): Promise<void> => {
    while (!pending.done && pending.value.lastSeq <= seq) {
      check.op(pending.value);
      writer.endOp(pending.value);
      pending = await ops.next();
    }
  };
  await putSnapshotsUpTo(0);
  await closeOpsUpTo(0);
  let seq = 0;
  for await (const event of source.events(row.id, { toSeq: row.eventCount })) {
    writer.append({ seq: event.seq, op: event.op, type: event.type, v: event.v, payload: event.payload });
    check.event(writer, event.seq, event.hash);
    // A server backend queues a full batch: commit it before reading on, so a large copy holds one batch.
    if (writer.unsettled) await writer.settle();
    seq = event.seq;
    await putSnapshotsUpTo(seq);
    await closeOpsUpTo(seq);
  }
  if (!pending.done) {
    throw refused(
      `run ${row.id}: op ${pending.value.index} claims events up to seq ${pending.value.lastSeq}, but the source's events end at seq ${seq}`,
      { run: row.id, index: pending.value.index },
    );
  }
  return snapshotSeqs.length;
}

/** Step 3: the copy's counts and heads are the source's, and its stored rows verify in the target. */
async function checkBeforeFinish(target: Store, writer: RunWriter, row: RunRow, check: ChainCheck): Promise<void> {
  const differences: string[] = [];
  const compare = (what: string, source: string | number | null, copy: string | number): void => {
    if (source !== null && source !== copy) differences.push(`${what}: source ${source}, copy ${copy}`);
  };
  compare('event count', row.eventCount, writer.seq);
  compare('op count', row.opCount, check.ops);
  compare('head', row.headHash, writer.head);
  compare('ops head', row.opsHeadHash, check.opsHead);
  if (differences.length > 0) {
    throw refused(`run ${row.id}: the copy differs from the source: ${differences.join('; ')}`, { run: row.id });
  }
  const report = await target.verify(writer.run);
  const verification = report.runs[0];
  if (verification === undefined || !verification.ok) {
    throw refused(
      `run ${row.id}: its copy (run ${writer.run} of ${target.path}) does not verify: ${verification === undefined ? 'not found' : brokenText(verification)}`,
      { run: row.id, target: writer.run },
    );
  }
}

/** Step 4: the finished copy as the target reads it back. */
async function checkAfterFinish(target: Store, id: number, row: RunRow): Promise<void> {
  const copy = await target.run(id);
  if (copy === undefined)
    throw refused(`run ${row.id}: its copy, run ${id}, is missing from ${target.path}`, { run: row.id });
  const fields = ['status', 'eventCount', 'opCount', 'headHash', 'opsHeadHash', 'finalDigest'] as const;
  const differences = fields
    .filter((field) => copy[field] !== row[field])
    .map((field) => `${field}: source ${String(row[field])}, copy ${String(copy[field])}`);
  if (differences.length > 0) {
    throw new StoreError(
      'copy-refused',
      `run ${row.id}: its copy, run ${id} of ${target.path}, was finished but reads back differently: ${differences.join('; ')}`,
      { run: row.id, target: id },
    );
  }
}

/**
 * Copies runs `ids` (every run when empty) of `source` into `target`, in the order given; all of them pass
 * step 1 before the first is written. Returns the copies in order; stops at the first refusal.
 */
export async function copyRuns(
  source: Store,
  target: Store,
  ids: readonly number[],
  options: CopyOptions = {},
): Promise<CopiedRun[]> {
  const rows = await checkCopyable(source, ids, options);
  const out: CopiedRun[] = [];
  for (const row of rows) out.push(await copyRun(source, target, row, options));
  return out;
}
