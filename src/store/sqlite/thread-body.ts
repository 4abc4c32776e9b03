// SPDX-License-Identifier: GPL-2.0-only
/**
 * The body of a run's writer thread (writer-thread.ts starts it). It runs from its own source text
 * (`new Worker(source, { eval: true })`), because Node 20 cannot load a .ts file in a worker and the tests
 * run src/: so it may use nothing from outside itself but what `load` (the worker's require) gives it and
 * types, which the compilers erase.
 *
 * One job per batch, in order: BEGIN IMMEDIATE, its statements, COMMIT, then one reply. After a failed
 * batch every job posted before the main thread knew of it (an older `epoch`) is dropped, so nothing is
 * committed past a batch that is not in the database.
 */

import type BetterSqlite3 from 'better-sqlite3';
import type { MessagePort } from 'node:worker_threads';

/** Slots of the shared Int32Array. */
export const SLOT = {
  /** Jobs the thread has answered (committed, failed or dropped). */
  answered: 0,
  /** Bumped after every reply, so a main thread blocked in Atomics.wait wakes up to read it. */
  signal: 1,
  /** The main thread's answer to a write step: 1 go on, 2 the hook threw (roll the batch back). */
  ack: 2,
  /** Batches that failed to commit. */
  failures: 3,
} as const;
export const SLOTS = 4;

export interface ThreadData {
  /** Where better-sqlite3 is, resolved by the main thread (an eval'd worker resolves from the cwd). */
  driver: string;
  path: string;
  timeout: number;
  /** Run on the thread's connection before its first batch (synchronous, foreign_keys, test limits). */
  pragmas: string[];
  shared: SharedArrayBuffer;
  replies: MessagePort;
  /** Report each write step and wait for the main thread's answer (BeginRunOptions.onWriteStep). */
  steps: boolean;
  /** SLOT, handed over because the body cannot see this module. */
  slots: typeof SLOT;
}

export interface StatementJob {
  step: 'events' | 'block' | 'ops' | 'snapshots' | 'finish';
  /** An id of a text sent in this or an earlier job's `texts`. */
  sql: number;
  /** The bound parameters, or null when they are `packed`. */
  params: unknown[] | null;
  packed: PackedParams | null;
}

/**
 * Parameters of numbers and strings only (the events' INSERTs), packed so that crossing threads costs a
 * transfer, not one structured clone per value: `layout` says per column whether its value is the next of
 * `numbers` ('n') or the next string of the batch's `text` ('s', ending at the next of `ends`, in UTF-16
 * code units).
 */
export interface PackedParams {
  rows: number;
  layout: string;
  /** Where the first string starts in the batch's text. */
  start: number;
  numbers: Float64Array;
  ends: Uint32Array;
}

export interface BatchJob {
  t: 'batch';
  /** The batch's number (onWriteStep's). */
  batch: number;
  /** Failures the main thread knew of when it posted the job. */
  epoch: number;
  /** Statement texts this thread has not been sent yet, by id. */
  texts: [number, string][];
  statements: StatementJob[];
  /** The packed parameters' strings, joined, as UTF-8. */
  text: Uint8Array;
  /** `text` is all ASCII. */
  ascii: boolean;
}

export type Job = BatchJob | { t: 'close' };

/** The driver's error, as far as it crosses threads. */
export interface ThreadError {
  name: string;
  message: string;
  code: string | undefined;
}

export type Reply =
  | { t: 'step'; step: string; batch: number }
  /**
   * `ns`: how long the thread spent on the batch (unpacking, statements, commit); `sched`: of that time, on
   * a CPU and waiting for one (null where the kernel does not say); `text`: the job's, back.
   */
  | { t: 'done'; batch: number; ns: number; sched: ThreadSched | null; text: Uint8Array }
  | { t: 'dropped'; batch: number }
  /** `finishChanged`: the finish UPDATE changed that many rows (not 1: the run was no longer 'running'). */
  | {
      t: 'failed';
      batch: number;
      ns: number;
      sched: ThreadSched | null;
      error: ThreadError | null;
      hook: boolean;
      finishChanged: number | null;
    };

/**
 * Where a batch's time went, from Linux's /proc/thread-self/schedstat: nanoseconds on a CPU and waiting in
 * the run queue for one; the rest of `ns` the thread slept (fsync at checkpoints, mostly). B1 reports them
 * to tell the store's own cost from a shared machine's (bench/README.md).
 */
export interface ThreadSched {
  cpuNs: number;
  waitNs: number;
}

export function writerThreadBody(load: (id: string) => unknown, data: ThreadData): void {
  const threads = load('node:worker_threads') as typeof import('node:worker_threads');
  const fs = load('node:fs') as typeof import('node:fs');
  const Database = load(data.driver) as typeof BetterSqlite3;
  const shared = new Int32Array(data.shared);
  const { replies, slots: SLOT } = data;
  const statements = new Map<number, BetterSqlite3.Statement>();
  const texts = new Map<number, string>();
  let failures = 0;
  let db: { conn: BetterSqlite3.Database; commit: BetterSqlite3.Transaction<(job: BatchJob) => void> } | null = null;

  const reply = (message: Reply): void => {
    replies.postMessage(message);
    Atomics.add(shared, SLOT.signal, 1);
    Atomics.notify(shared, SLOT.signal);
  };
  const answered = (message: Reply, transfer: ArrayBuffer[] = []): void => {
    Atomics.add(shared, SLOT.answered, 1);
    replies.postMessage(message, transfer);
    Atomics.add(shared, SLOT.signal, 1);
    Atomics.notify(shared, SLOT.signal);
  };
  // The thread's schedstat so far (on CPU, waiting), or null once it could not be read (not Linux).
  let schedReadable = true;
  const sched = (): ThreadSched | null => {
    if (!schedReadable) return null;
    try {
      const fields = fs.readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ');
      return { cpuNs: Number(fields[0]), waitNs: Number(fields[1]) };
    } catch {
      schedReadable = false;
      return null;
    }
  };
  const since = (start: ThreadSched | null): ThreadSched | null => {
    const end = start === null ? null : sched();
    return start === null || end === null ? null : { cpuNs: end.cpuNs - start.cpuNs, waitNs: end.waitNs - start.waitNs };
  };
  class HookFailed extends Error {}
  class NotFinished extends Error {
    constructor(readonly changed: number) {
      super('not finished');
    }
  }
  const step = (name: string, batch: number): void => {
    if (!data.steps) return;
    Atomics.store(shared, SLOT.ack, 0);
    reply({ t: 'step', step: name, batch });
    Atomics.wait(shared, SLOT.ack, 0);
    if (Atomics.load(shared, SLOT.ack) === 2) throw new HookFailed();
  };
  // The job whose text was decoded last, and that text: decoded once per batch, then sliced. A slice shares
  // the text's characters (V8 copies only slices shorter than 13 units).
  let decoded: { job: BatchJob; text: string } | null = null;
  const unpack = (packed: PackedParams, job: BatchJob): unknown[] => {
    if (decoded?.job !== job) {
      const bytes = job.text;
      const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      decoded = { job, text: buffer.toString(job.ascii ? 'latin1' : 'utf8') };
    }
    const text = decoded.text;
    const { layout, numbers, ends } = packed;
    const params: unknown[] = [];
    let n = 0;
    let e = 0;
    let at = packed.start;
    for (let row = 0; row < packed.rows; row++) {
      for (let c = 0; c < layout.length; c++) {
        if (layout.charCodeAt(c) === 110) params.push(numbers[n++]);
        else {
          const end = ends[e++] as number;
          params.push(text.slice(at, end));
          at = end;
        }
      }
    }
    return params;
  };
  const write = (conn: BetterSqlite3.Database, job: BatchJob): void => {
    step('begin', job.batch);
    for (const s of job.statements) {
      step(s.step, job.batch);
      let statement = statements.get(s.sql);
      if (statement === undefined) {
        statement = conn.prepare(texts.get(s.sql) ?? '');
        statements.set(s.sql, statement);
      }
      const params = s.params ?? unpack(s.packed as PackedParams, job);
      // eslint-disable-next-line no-restricted-syntax -- bounded by the main thread's rows per statement
      const changed = statement.run(...params).changes;
      if (s.step === 'finish' && changed !== 1) throw new NotFinished(changed);
    }
  };

  const open = (): NonNullable<typeof db> => {
    const conn = new Database(data.path, { fileMustExist: true, timeout: data.timeout });
    for (const pragma of data.pragmas) conn.pragma(pragma);
    return { conn, commit: conn.transaction((job: BatchJob) => write(conn, job)) };
  };

  threads.parentPort?.on('message', (job: Job) => {
    if (job.t === 'close') {
      db?.conn.close();
      replies.close();
      threads.parentPort?.close();
      return;
    }
    for (const [id, text] of job.texts) texts.set(id, text);
    if (job.epoch < failures) {
      answered({ t: 'dropped', batch: job.batch });
      return;
    }
    const begun = process.hrtime.bigint();
    const sched0 = sched();
    const ns = (): number => Number(process.hrtime.bigint() - begun);
    try {
      db ??= open();
      db.commit.immediate(job);
    } catch (error) {
      failures += 1;
      Atomics.store(shared, SLOT.failures, failures);
      const e = error as { name?: unknown; message?: unknown; code?: unknown };
      answered({
        t: 'failed',
        batch: job.batch,
        ns: ns(),
        sched: since(sched0),
        error:
          error instanceof HookFailed || error instanceof NotFinished
            ? null
            : {
                name: String(e.name),
                message: String(e.message),
                code: typeof e.code === 'string' ? e.code : undefined,
              },
        hook: error instanceof HookFailed,
        finishChanged: error instanceof NotFinished ? error.changed : null,
      });
      return;
    }
    try {
      step('commit', job.batch);
    } catch {
      // The batch is in the database whatever the hook says.
    }
    decoded = null;
    // The text buffer goes back to be filled again: a batch's worth of bytes is not allocated per batch.
    answered({ t: 'done', batch: job.batch, ns: ns(), sched: since(sched0), text: job.text }, [
      job.text.buffer as ArrayBuffer,
    ]);
  });
}
