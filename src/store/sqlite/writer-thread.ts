// SPDX-License-Identifier: GPL-2.0-only
/**
 * The main thread's end of a run's writer thread (thread-body.ts): a worker with its own connection to the
 * store's file, to which append.ts hands each cut batch as one message, so the model runs while SQLite
 * inserts and commits.
 *
 * A batch goes over as the statements the batch's transaction runs (run-writer.ts). The events' INSERTs,
 * nearly all of a batch, have their parameters packed (packRows): numbers into typed arrays, strings
 * joined and written once as UTF-8 into one buffer, all transferred, not copied. Structured cloning the
 * same flat arrays value by value cost about 15 ms per batch of 4,096 events on the replay's thread in B5
 * (bench/README.md, B1). Writing each string into the buffer on its own cost a call per string here and a
 * decode per string on the thread (0.4 s and 0.38 s of a 1.15M-event B1); posting the joined string
 * itself cost more in postMessage than the writes it saved. Joined, the buffer is one write here and one
 * decode there, and the thread takes each string as a slice of the batch's text. Statement texts cross
 * once per thread, then by id; the thread sends each text buffer back with its reply, to be filled again.
 *
 * Replies come back on a port of their own, read either by its listener (while the main thread awaits)
 * or synchronously (receiveMessageOnPort, woken by Atomics.wait on a shared counter) when append must
 * wait for room or a write step hook must be answered. The worker holds the process open only while
 * batches are in flight or it is closing.
 */

import Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { type BatchStatement, EVENT_COLUMNS } from '../run-writer.js';
import type { WriterHome } from './connection.js';
import {
  type Job,
  type PackedParams,
  type Reply,
  SLOT,
  SLOTS,
  type StatementJob,
  type ThreadData,
  type ThreadError,
  writerThreadBody,
} from './thread-body.js';

/**
 * The thread's young generation, in MiB: it holds one or two batches' unpacked rows at a time, and V8's
 * default (tens of MiB) showed in the peak RSS of a 10M-event replay (bench B8, goal <= 512 MiB).
 */
const THREAD_YOUNG_GENERATION_MB = 4;
/** Text buffers kept for reuse: one per batch that can be in flight, and the one being filled. */
const SPARE_BUFFERS = 3;
const DRIVER = createRequire(import.meta.url).resolve('better-sqlite3');
const SOURCE = `(${writerThreadBody.toString()})(require, require('node:worker_threads').workerData)`;

/** The error a thread reported, as the driver would have thrown it on this thread. */
export function threadError(error: ThreadError): Error {
  if (error.code?.startsWith('SQLITE_') === true) return new Database.SqliteError(error.message, error.code);
  const rebuilt = new Error(error.message);
  rebuilt.name = error.name;
  return rebuilt;
}

/**
 * Rows of `width` numbers and strings as PackedParams, their strings pushed onto `parts` (the batch's text
 * once joined), which holds `at` UTF-16 code units so far; null when a value is neither (the statement's
 * parameters then cross as they are, and nothing is pushed).
 */
function packRows(params: unknown[], width: number, parts: string[], at: number): PackedParams | null {
  let layout = '';
  for (let c = 0; c < width; c++) layout += typeof params[c] === 'number' ? 'n' : 's';
  const rows = params.length / width;
  const numeric = layout.split('n').length - 1;
  const numbers = new Float64Array(rows * numeric);
  const ends = new Uint32Array(rows * (width - numeric));
  const pushed = parts.length;
  let n = 0;
  let e = 0;
  const start = at;
  for (let i = 0; i < params.length; i++) {
    const value = params[i];
    if (layout.charCodeAt(i % width) === 110) {
      if (typeof value !== 'number') {
        parts.length = pushed;
        return null;
      }
      numbers[n++] = value;
    } else {
      if (typeof value !== 'string') {
        parts.length = pushed;
        return null;
      }
      parts.push(value);
      at += value.length;
      ends[e++] = at;
    }
  }
  return { rows, layout, start, numbers, ends };
}

export class WriterThread {
  readonly #worker: Worker;
  readonly #replies: MessagePort;
  readonly #shared: Int32Array;
  readonly #onReply: (reply: Reply) => void;
  readonly #texts = new Map<string, number>();
  readonly #exited: Promise<void>;
  #posted = 0;
  #handled = 0;
  #waiters: (() => void)[] = [];
  #closing: Promise<void> | null = null;
  /** Text buffers the thread sent back (see post). */
  #spare: Buffer[] = [];

  /** `onReply` gets every reply, in order, on this thread. */
  constructor(home: WriterHome, steps: boolean, onReply: (reply: Reply) => void) {
    this.#onReply = onReply;
    const shared = new SharedArrayBuffer(SLOTS * Int32Array.BYTES_PER_ELEMENT);
    this.#shared = new Int32Array(shared);
    const { port1, port2 } = new MessageChannel();
    this.#replies = port1;
    const data: ThreadData = {
      driver: DRIVER,
      path: home.path,
      timeout: home.timeout,
      pragmas: [...home.pragmas],
      shared,
      replies: port2,
      steps,
      slots: SLOT,
    };
    this.#worker = new Worker(SOURCE, {
      eval: true,
      workerData: data,
      transferList: [port2],
      resourceLimits: { maxYoungGenerationSizeMb: THREAD_YOUNG_GENERATION_MB },
    });
    this.#worker.unref();
    port1.on('message', (reply: Reply) => this.#handle(reply));
    port1.unref();
    let crash: unknown = null;
    this.#worker.on('error', (error) => (crash = error));
    this.#exited = new Promise((resolve) =>
      this.#worker.once('exit', () => {
        this.#orphaned(crash);
        resolve();
      }),
    );
  }

  /** The thread ended with batches unanswered (it crashed): the first failed, the rest never ran. */
  #orphaned(crash: unknown): void {
    // The exit can be seen before the replies the thread sent last are delivered: take those first, or
    // their batches would be answered twice (once here as lost, once by the late reply).
    for (let m = receiveMessageOnPort(this.#replies); m !== undefined; m = receiveMessageOnPort(this.#replies))
      this.#handle(m.message as Reply);
    const error: ThreadError = {
      name: 'Error',
      message: `the writer thread ended: ${crash instanceof Error ? crash.message : 'it exited'}`,
      code: undefined,
    };
    for (let first = true; this.#handled < this.#posted; first = false) {
      this.#handle(
        first
          ? { t: 'failed', batch: 0, ns: 0, sched: null, error, hook: false, finishChanged: null }
          : { t: 'dropped', batch: 0 },
      );
    }
  }

  /** Resolves when the thread has ended. */
  get ended(): Promise<void> {
    return this.#exited;
  }

  /** Batches posted that the thread has not answered yet (read from shared memory: no event loop turn). */
  get inFlight(): number {
    return this.#posted - Atomics.load(this.#shared, SLOT.answered);
  }

  /** Batches the thread failed to commit so far. */
  get failures(): number {
    return Atomics.load(this.#shared, SLOT.failures);
  }

  /** Hands a batch's statements to the thread: one message, the events' rows packed (see packRows). */
  post(batch: number, epoch: number, statements: Iterable<BatchStatement>): void {
    const parts: string[] = [];
    let at = 0;
    const transfer: ArrayBuffer[] = [];
    const texts: [number, string][] = [];
    const jobs: StatementJob[] = [];
    for (const s of statements) {
      let id = this.#texts.get(s.sql);
      if (id === undefined) {
        id = this.#texts.size;
        this.#texts.set(s.sql, id);
        texts.push([id, s.sql]);
      }
      const packed = s.step === 'events' ? packRows(s.params, EVENT_COLUMNS.length, parts, at) : null;
      if (packed !== null) {
        at = packed.ends[packed.ends.length - 1] ?? at;
        transfer.push(packed.numbers.buffer as ArrayBuffer, packed.ends.buffer as ArrayBuffer);
      }
      jobs.push({ step: s.step, sql: id, params: packed === null ? s.params : null, packed });
    }
    const joined = parts.join('');
    const text = this.#textBuffer(joined.length);
    const bytes = text.write(joined, 0);
    transfer.push(text.buffer as ArrayBuffer);
    // As many bytes as code units: all ASCII, which the thread decodes as latin1 (a plain copy).
    const ascii = bytes === joined.length;
    const job: Job = { t: 'batch', batch, epoch, texts, statements: jobs, text: text.subarray(0, bytes), ascii };
    if (this.#posted++ === this.#handled) this.#worker.ref();
    this.#worker.postMessage(job, transfer);
  }

  /** A buffer for the UTF-8 of `units` UTF-16 code units (3 bytes each at most): a returned one if it fits. */
  #textBuffer(units: number): Buffer {
    const spare = this.#spare.pop();
    if (spare !== undefined && spare.byteLength >= units * 3) return spare;
    return Buffer.allocUnsafeSlow(Math.max(units * 3, 1));
  }

  /** The answer to a write step the thread waits on: go on, or roll the batch back. */
  answerStep(ok: boolean): void {
    Atomics.store(this.#shared, SLOT.ack, ok ? 1 : 2);
    Atomics.notify(this.#shared, SLOT.ack);
  }

  /** Blocks this thread, answering replies as they come, until `done()`. */
  waitSync(done: () => boolean): void {
    for (;;) {
      const seen = Atomics.load(this.#shared, SLOT.signal);
      for (let m = receiveMessageOnPort(this.#replies); m !== undefined; m = receiveMessageOnPort(this.#replies))
        this.#handle(m.message as Reply);
      if (done()) return;
      Atomics.wait(this.#shared, SLOT.signal, seen);
    }
  }

  /** Resolves once every batch posted so far has been answered and its reply handled. */
  drained(): Promise<void> {
    if (this.#handled === this.#posted) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Lets the thread answer what it was sent, close its connection and end; resolves when it has. */
  close(): Promise<void> {
    if (this.#closing === null) {
      this.#worker.ref();
      this.#worker.postMessage({ t: 'close' } satisfies Job);
      this.#closing = this.#exited;
    }
    return this.#closing;
  }

  #handle(reply: Reply): void {
    if (reply.t === 'done') {
      if (this.#spare.length < SPARE_BUFFERS) this.#spare.push(Buffer.from(reply.text.buffer));
    }
    if (reply.t !== 'step' && ++this.#handled === this.#posted && this.#closing === null) this.#worker.unref();
    this.#onReply(reply);
    if (this.#handled === this.#posted && this.#waiters.length > 0) {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}
