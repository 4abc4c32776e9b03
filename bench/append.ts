// SPDX-License-Identifier: GPL-2.0-only
/**
 * B1 append: a generated trace replayed into a new database file through the product's own path
 * (recordReplay: events appended as they are emitted, op rows, snapshots), timed two ways:
 *
 * - end to end: recordReplay from its call to its return (model, reducers, invariant checks, encoding,
 *   snapshots, hashing, SQLite);
 * - in the store: the store is a pipeline of two stages since batches are committed by a writer thread
 *   (src/store/sqlite/writer-thread.ts): on the replay's thread, the time spent inside the RunWriter's
 *   calls (append, endOp, putSnapshot, settle, flush, finish: checks, hash chains, buffering, packing and
 *   handing batches over, and any wait for the thread when it holds two batches), measured by wrapping the
 *   Store that recordReplay is given; on the writer thread, the time it spent on the batches (unpacking,
 *   the batched INSERTs and their commits), as the writer reports it (RunWriter.threadSeconds). The store
 *   takes events no faster than its slower stage: storedEventsPerSec = events / the larger of the two, the
 *   figure compared with the raw insert of the same rows on one thread. Payload encoding (encodeJson) and
 *   snapshot serialisation run in the recorder before the writer is called, so they are in the end-to-end
 *   time only; B5 - B6 (the same trace with and without the store) bounds the whole store path including
 *   them.
 *
 * The raw insert limit (limits.ts) is then measured in the same process on rows of the same count and mean
 * size.
 */

import { mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { resolveVariant } from '../src/kernel/variants.js';
import { parseTraceText } from '../src/replay/parse.js';
import { recordReplay } from '../src/replay/record.js';
import type { RunWriter, Store } from '../src/store/index.js';
import { DEFAULT_BATCH_SIZE, openStore } from '../src/store/index.js';
import type { GuestOptions, GuestTrace } from './generate.js';
import { SETUP_OPS, TEARDOWN_OPS, guestTrace } from './generate.js';
import { payloadStats, rawInsert } from './limits.js';
import type { RawInsertResult } from './limits.js';
import { cpuSeconds, loadAverage, peakRssMiB, seconds, stopwatch } from './timing.js';

/** A RunWriter that adds the time spent in each of its calls to `clock.ns` (a plain delegate: no Proxy). */
class TimedWriter implements RunWriter {
  constructor(
    private readonly inner: RunWriter,
    private readonly clock: { ns: bigint },
  ) {}
  get run(): number {
    return this.inner.run;
  }
  get batchSize(): number {
    return this.inner.batchSize;
  }
  get seq(): number {
    return this.inner.seq;
  }
  get head(): string {
    return this.inner.head;
  }
  get threadSeconds(): number {
    return this.inner.threadSeconds ?? 0;
  }
  get threadCpuSeconds(): number | undefined {
    return this.inner.threadCpuSeconds;
  }
  get threadWaitSeconds(): number | undefined {
    return this.inner.threadWaitSeconds;
  }
  private timed<T>(call: () => T): T {
    const t0 = process.hrtime.bigint();
    try {
      return call();
    } finally {
      this.clock.ns += process.hrtime.bigint() - t0;
    }
  }
  append(row: Parameters<RunWriter['append']>[0]): void {
    const t0 = process.hrtime.bigint();
    try {
      this.inner.append(row);
    } finally {
      this.clock.ns += process.hrtime.bigint() - t0;
    }
  }
  endOp(row: Parameters<RunWriter['endOp']>[0]): void {
    this.timed(() => this.inner.endOp(row));
  }
  putSnapshot(...args: Parameters<RunWriter['putSnapshot']>): void {
    // eslint-disable-next-line no-restricted-syntax -- forwards the fixed-size argument tuple
    this.timed(() => this.inner.putSnapshot(...args));
  }
  get unsettled(): boolean {
    return this.inner.unsettled;
  }
  private async timedAsync(call: () => Promise<void>): Promise<void> {
    const t0 = process.hrtime.bigint();
    try {
      await call();
    } finally {
      this.clock.ns += process.hrtime.bigint() - t0;
    }
  }
  settle(): Promise<void> {
    return this.timedAsync(() => this.inner.settle());
  }
  flush(): Promise<void> {
    return this.timedAsync(() => this.inner.flush());
  }
  finish(...args: Parameters<RunWriter['finish']>): Promise<void> {
    // eslint-disable-next-line no-restricted-syntax -- forwards the fixed-size argument tuple
    return this.timedAsync(() => this.inner.finish(...args));
  }
}

/**
 * The store as recordReplay sees it, with every RunWriter it hands out timed into `clock.ns` (and listed
 * in `clock.writers`, to read their threadSeconds).
 */
export function timedStore(store: Store, clock: { ns: bigint; writers?: RunWriter[] }): Store {
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const fn = (value as (...args: unknown[]) => unknown).bind(target);
      if (prop !== 'beginRun') return fn;
      return async (...args: unknown[]): Promise<RunWriter> => {
        const t0 = process.hrtime.bigint();
        // eslint-disable-next-line no-restricted-syntax -- forwards beginRun's fixed-size argument tuple
        const writer = await (fn(...args) as Promise<RunWriter>);
        clock.ns += process.hrtime.bigint() - t0;
        clock.writers?.push(writer);
        return new TimedWriter(writer, clock);
      };
    },
  });
}

/** A variant by name with flags taken away, e.g. upstream without map-requires-prot. */
export interface VariantChoice {
  label: string;
  variant: string;
  without: string[];
}

export const UPSTREAM: VariantChoice = { label: 'upstream', variant: 'upstream', without: [] };

export interface RecordFigures {
  run: number;
  dbPath: string;
  events: number;
  /** Trace ops (without the replayer's setup and teardown ops). */
  traceOps: number;
  accessOps: number;
  parseSeconds: number;
  /** recordReplay, call to return. */
  seconds: number;
  cpuSeconds: number;
  /** Inside the RunWriter's calls, on the replay's thread. */
  writerSeconds: number;
  /** On the store's writer thread (0 when it had none). */
  threadSeconds: number;
  /** Of threadSeconds, on a CPU and waiting in the run queue for one (null: not known, not Linux). */
  threadCpuSeconds: number | null;
  threadWaitSeconds: number | null;
  /** Trace ops before the first access op (process, mmap, domains, the guest map). */
  setupSeconds: number;
  /** From the end of the setup to the end of the last access op. */
  accessSeconds: number;
  /** Events of the ops that are not access ops: the fixed cost of the guest. */
  fixedEvents: number;
  /** Events of the op that maps the whole guest. */
  mapEvents: number;
  digest: string;
  violations: number;
  warns: number;
  mismatches: number;
  dbBytes: number;
}

function fileBytes(path: string): number {
  let n = 0;
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      n += statSync(path + suffix).size;
    } catch {
      // absent
    }
  }
  return n;
}

/** The sum of the figures, or null when one is not known. */
function sumKnown(values: (number | undefined)[]): number | null {
  let sum = 0;
  for (const value of values) {
    if (value === undefined) return null;
    sum += value;
  }
  return sum;
}

/** Replay the guest trace into a new (or existing, for a second run) database file, timed. */
export async function recordGuest(
  dbPath: string,
  guest: GuestTrace,
  choice: VariantChoice = UPSTREAM,
  fresh = true,
): Promise<RecordFigures> {
  mkdirSync(dirname(dbPath), { recursive: true });
  if (fresh) for (const suffix of ['', '-wal', '-shm']) rmSync(dbPath + suffix, { force: true });
  const parseClock = stopwatch();
  const trace = parseTraceText(guest.text, 'bench-guest.jsonl');
  const parseSeconds = seconds(parseClock);
  const spec = resolveVariant(choice.variant, [], choice.without);
  const opened = await openStore(dbPath);
  const clock = { ns: 0n, writers: [] as RunWriter[] };
  const store = timedStore(opened, clock);
  const lastAccessOp = guest.ops - TEARDOWN_OPS;
  let setupEnd = 0n;
  let accessEnd = 0n;
  let fixedEvents = 0;
  let mapEvents = 0;
  const cpu0 = cpuSeconds();
  const t0 = stopwatch();
  let recorded: Awaited<ReturnType<typeof recordReplay>>;
  try {
    recorded = await recordReplay(store, trace, {
      tracePath: 'bench-guest.jsonl',
      traceText: guest.text,
      variant: choice.label,
      fixes: spec.fixes,
      // The per-op figures are summed as ops end: a long run keeps no array of its ops.
      keepOps: false,
      onOp: (record) => {
        if (record.index === SETUP_OPS) setupEnd = process.hrtime.bigint();
        else if (record.index === lastAccessOp) accessEnd = process.hrtime.bigint();
        const n = record.lastSeq - record.firstSeq + 1;
        if (record.op !== 'access_pin' && record.op !== 'access_unpin') fixedEvents += n;
        if (record.index === SETUP_OPS - 1) mapEvents = n;
      },
    });
  } finally {
    await opened.close();
  }
  const total = seconds(t0);
  const cpu = cpuSeconds() - cpu0;
  const r = recorded.result;
  return {
    run: recorded.run,
    dbPath,
    events: r.events,
    traceOps: guest.ops,
    accessOps: guest.accessOps,
    parseSeconds,
    seconds: total,
    cpuSeconds: cpu,
    writerSeconds: Number(clock.ns) / 1e9,
    threadSeconds: clock.writers.reduce((sum, writer) => sum + (writer.threadSeconds ?? 0), 0),
    threadCpuSeconds: sumKnown(clock.writers.map((writer) => writer.threadCpuSeconds)),
    threadWaitSeconds: sumKnown(clock.writers.map((writer) => writer.threadWaitSeconds)),
    setupSeconds: Number(setupEnd - t0) / 1e9,
    accessSeconds: Number(accessEnd - setupEnd) / 1e9,
    fixedEvents,
    mapEvents,
    digest: r.digest,
    violations: r.violations.length,
    warns: r.warns.length,
    mismatches: r.mismatches.length,
    dbBytes: fileBytes(dbPath),
  };
}

export interface AppendMeasurement {
  record: RecordFigures;
  limit: RawInsertResult;
  meanPayloadBytes: number;
  /** The process's peak RSS once the run was recorded, before the limit was measured. */
  peakRssMiB: number;
  /** 1-minute load average when the recording ended. */
  load: number;
}

/** B1 at one size: record the guest trace, then the raw insert of as many rows of the same mean size. */
export async function measureAppend(dbPath: string, options: GuestOptions): Promise<AppendMeasurement> {
  const guest = guestTrace(options);
  const record = await recordGuest(dbPath, guest);
  const peak = peakRssMiB();
  const load = loadAverage();
  const stats = payloadStats(dbPath, record.run);
  const rawPath = `${dbPath}.raw`;
  for (const suffix of ['', '-wal', '-shm']) rmSync(rawPath + suffix, { force: true });
  const limit = rawInsert({
    storePath: dbPath,
    path: rawPath,
    rows: stats.events,
    meanPayloadBytes: stats.meanPayloadBytes,
    meanTypeBytes: stats.meanTypeBytes,
    batchSize: DEFAULT_BATCH_SIZE,
  });
  for (const suffix of ['', '-wal', '-shm']) rmSync(rawPath + suffix, { force: true });
  return { record, limit, meanPayloadBytes: stats.meanPayloadBytes, peakRssMiB: peak, load };
}

/** The B1 figures of one measurement (events/s in the store's slower stage, end to end, and what they rest on). */
export function appendFigures(m: AppendMeasurement): Record<string, number> {
  const r = m.record;
  return {
    events: r.events,
    storedEventsPerSec: r.events / Math.max(r.writerSeconds, r.threadSeconds),
    endToEndEventsPerSec: r.events / r.seconds,
    writerSeconds: r.writerSeconds,
    writerThreadSeconds: r.threadSeconds,
    // Diagnostics, not the figure: what the writer thread's time was made of, and the raw insert's CPU.
    ...(r.threadCpuSeconds === null ? {} : { writerThreadCpuSeconds: r.threadCpuSeconds }),
    ...(r.threadWaitSeconds === null ? {} : { writerThreadRunQueueSeconds: r.threadWaitSeconds }),
    rawInsertCpuSeconds: m.limit.cpuSeconds,
    recordSeconds: r.seconds,
    meanPayloadBytes: m.meanPayloadBytes,
    dbBytesPerEvent: r.dbBytes / r.events,
    rawInsertSeconds: m.limit.seconds,
    peakRssMiB: m.peakRssMiB,
  };
}
