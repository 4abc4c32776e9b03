// SPDX-License-Identifier: GPL-2.0-only
/**
 * B8 long run (`node dist/bench/long.js [--events 1000000,2000000] [--keep]`): a generated trace of about N
 * events (generate.ts, a 1 GiB guest of huge pages, as many access ops as it takes) replayed into a new
 * database file, then rebuilt from its log, audited, and bisected against a second run of the same trace on
 * a variant that diverges at one op (the probe of B4). Each of the five steps runs in a child process of
 * its own, so each peak RSS (the kernel's high-water mark, process.resourceUsage().maxRSS) is that step's
 * alone. The goal: every peak <= 512 MiB at 10M events, that is, flat in the run's length. With several
 * sizes it prints the slope of each step in MiB per million events, which should be about 0.
 *
 * The trace is written to a file first, by this process (not measured), and each replay reads it back, as
 * `ioptrace replay` does.
 */

import { isAscii } from 'node:buffer';
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { auditRun } from '../src/audit/index.js';
import { bisectRuns } from '../src/bisect/bisect-runs.js';
import { resolveVariant } from '../src/kernel/variants.js';
import { InternalError } from '../src/lib/errors.js';
import { digestHex } from '../src/lib/digest.js';
import { streamTraceText } from '../src/replay/parse.js';
import { recordReplay } from '../src/replay/record.js';
import { openStore } from '../src/store/index.js';
import { StoreSource, rebuildFinal } from '../src/timetravel/index.js';
import { UPSTREAM } from './append.js';
import type { VariantChoice } from './append.js';
import { DIVERGENT } from './bisect.js';
import { DEFAULT_GUEST, GiB, guestTrace } from './generate.js';
import { peakRssMiB, seconds, stopwatch } from './timing.js';

/** Events per access op of the 1 GiB guest (measured: 11.5); the figures report the real count. */
const EVENTS_PER_ACCESS_OP = 11.5;

export interface StepMeasurement {
  step: string;
  peakRssMiB: number;
  /** The live heap once the step is done and its results dropped, after a full GC (node --expose-gc), else NaN. */
  liveHeapMiB?: number;
  seconds: number;
  detail: Record<string, number | string>;
}

/** Replay the trace file into the database on one variant (a new run). */
export async function replayStep(dbPath: string, tracePath: string, choice: VariantChoice): Promise<StepMeasurement> {
  const clock = stopwatch();
  // As `ioptrace replay` reads it (readTraceFile): ASCII as Latin-1, an external string off V8's heap.
  const bytes = readFileSync(tracePath);
  const text = isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
  const trace = streamTraceText(text, tracePath);
  const spec = resolveVariant(choice.variant, [], choice.without);
  const store = await openStore(dbPath);
  try {
    const recorded = await recordReplay(store, trace, {
      tracePath,
      traceText: text,
      variant: choice.label,
      fixes: spec.fixes,
      keepOps: false,
    });
    return {
      step: `replay ${choice.label}`,
      peakRssMiB: peakRssMiB(),
      seconds: seconds(clock),
      detail: { run: recorded.run, events: recorded.result.events, digest: recorded.result.digest },
    };
  } finally {
    await store.close();
  }
}

/** The run's final state from its log alone, checked against the recorded digest. */
export async function rebuildStep(dbPath: string, run: number): Promise<StepMeasurement> {
  const clock = stopwatch();
  const store = await openStore(dbPath, { readonly: true });
  try {
    const source = await StoreSource.open(store, run);
    const events = source.eventCount();
    const state = await rebuildFinal(source);
    const recorded = (await store.run(run))?.finalDigest ?? null;
    const rebuilt = digestHex(state.digest);
    if (recorded !== rebuilt)
      throw new InternalError(`rebuild of run ${run}: digest ${rebuilt}, recorded ${String(recorded)}`);
    return { step: 'rebuild', peakRssMiB: peakRssMiB(), seconds: seconds(clock), detail: { events } };
  } finally {
    await store.close();
  }
}

/** The audit of the run: every rule over the whole run, the ledger counted as it streams. */
export async function auditStep(dbPath: string, run: number): Promise<StepMeasurement> {
  const clock = stopwatch();
  const store = await openStore(dbPath, { readonly: true });
  try {
    const report = await auditRun(store, run, {}, { ops: false });
    return {
      step: 'audit',
      peakRssMiB: peakRssMiB(),
      seconds: seconds(clock),
      detail: { ok: String(report.ok), ledgerLines: report.ledger.length, ops: report.opCount },
    };
  } finally {
    await store.close();
  }
}

/** Bisect run A against run B: the divergence must be the probe's op. */
export async function bisectStep(
  dbPath: string,
  runA: number,
  runB: number,
  probeAt: number,
): Promise<StepMeasurement> {
  const clock = stopwatch();
  const store = await openStore(dbPath, { readonly: true });
  try {
    const report = await bisectRuns(store, runA, runB);
    const op = report.divergence?.op ?? -1;
    if (op !== probeAt) throw new InternalError(`bisect found op ${op}, the probe is op ${probeAt}`);
    return {
      step: 'bisect',
      peakRssMiB: peakRssMiB(),
      seconds: seconds(clock),
      detail: { divergenceOp: op, differingOps: report.differingOps },
    };
  } finally {
    await store.close();
  }
}

type Params = Record<string, unknown>;

const JOBS: Record<string, (p: Params) => Promise<StepMeasurement>> = {
  replay: (p) => replayStep(p['db'] as string, p['trace'] as string, p['choice'] as VariantChoice),
  rebuild: (p) => rebuildStep(p['db'] as string, p['run'] as number),
  audit: (p) => auditStep(p['db'] as string, p['run'] as number),
  bisect: (p) => bisectStep(p['db'] as string, p['runA'] as number, p['runB'] as number, p['probeAt'] as number),
};

const SELF = fileURLToPath(import.meta.url);

function liveHeapMiB(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return NaN;
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

function runJob(name: string, params: Params): Promise<StepMeasurement> {
  return new Promise((done, fail) => {
    const child = fork(SELF, ['--worker', name, '--params', JSON.stringify(params)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: ['--expose-gc'],
    });
    let result: StepMeasurement | null = null;
    child.on('message', (m) => {
      result = m as StepMeasurement;
    });
    child.on('error', fail);
    child.on('exit', (code, signal) => {
      if (result !== null && code === 0) done(result);
      else fail(new Error(`B8 worker ${name} failed (${signal ?? `exit ${code}`})`));
    });
  });
}

export interface SizeMeasurement {
  targetEvents: number;
  events: number;
  steps: StepMeasurement[];
}

/** The five steps on a trace of about `targetEvents` events. */
export async function measureSize(
  dir: string,
  targetEvents: number,
  seed = 1,
  onStep: (m: StepMeasurement) => void = () => undefined,
): Promise<SizeMeasurement> {
  const half = Math.max(1, Math.round(targetEvents / EVENTS_PER_ACCESS_OP / 2));
  const accessOps = 2 * half;
  const guest = guestTrace({ ...DEFAULT_GUEST, guestBytes: GiB, accessOps, seed, probeAt: 9 + Math.floor(half) });
  if (guest.probeAt === null) throw new InternalError('the B8 trace needs a probe op');
  const tracePath = join(dir, `long-${targetEvents}.jsonl`);
  writeFileSync(tracePath, guest.text);
  const db = join(dir, `long-${targetEvents}.db`);
  const steps: StepMeasurement[] = [];
  const step = async (name: string, params: Params): Promise<StepMeasurement> => {
    const m = await runJob(name, params);
    steps.push(m);
    onStep(m);
    return m;
  };
  const a = await step('replay', { db, trace: tracePath, choice: UPSTREAM });
  const runA = a.detail['run'] as number;
  const b = await step('replay', { db, trace: tracePath, choice: DIVERGENT });
  await step('rebuild', { db, run: runA });
  await step('audit', { db, run: runA });
  await step('bisect', { db, runA, runB: b.detail['run'], probeAt: guest.probeAt });
  rmSync(tracePath, { force: true });
  return { targetEvents, events: a.detail['events'] as number, steps };
}

/** MiB per million events of each step between the smallest and the largest size (least squares over all). */
export function slopes(sizes: readonly SizeMeasurement[]): Record<string, number> {
  const out: Record<string, number> = {};
  const names = sizes[0]?.steps.map((s) => s.step) ?? [];
  for (const name of names) {
    const points = sizes.map((z) => ({
      x: z.events / 1e6,
      y: z.steps.find((s) => s.step === name)?.peakRssMiB ?? NaN,
    }));
    const n = points.length;
    const mx = points.reduce((t, p) => t + p.x, 0) / n;
    const my = points.reduce((t, p) => t + p.y, 0) / n;
    const sxx = points.reduce((t, p) => t + (p.x - mx) ** 2, 0);
    const sxy = points.reduce((t, p) => t + (p.x - mx) * (p.y - my), 0);
    out[name] = sxx === 0 ? NaN : sxy / sxx;
  }
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      worker: { type: 'string' },
      params: { type: 'string' },
      events: { type: 'string', default: '1000000,2000000' },
      keep: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
  });
  if (values.worker !== undefined) {
    const job = JOBS[values.worker];
    if (job === undefined) throw new Error(`unknown B8 job ${values.worker}`);
    const result = await job(JSON.parse(values.params ?? '{}') as Params);
    result.liveHeapMiB = liveHeapMiB();
    await new Promise<void>((done, fail) => process.send?.(result, undefined, {}, (e) => (e ? fail(e) : done())));
    return;
  }
  const targets = values.events.split(',').map((s) => Number(s.replace(/_/g, '')));
  if (targets.some((n) => !(Number.isSafeInteger(n) && n > 0)))
    throw new Error(`--events takes positive integers separated by commas, not ${values.events}`);
  const dir = mkdtempSync(join(tmpdir(), 'ioptrace-b8-'));
  const sizes: SizeMeasurement[] = [];
  try {
    for (const target of targets) {
      // Each step is printed as it ends: a run of 10M events takes a while.
      process.stdout.write(`about ${target} events:\n`);
      const size = await measureSize(dir, target, 1, (s) =>
        process.stdout.write(
          `  ${s.step.padEnd(36)} peak RSS ${s.peakRssMiB.toFixed(1).padStart(7)} MiB  ${s.seconds.toFixed(1).padStart(7)} s  live heap ${(s.liveHeapMiB ?? NaN).toFixed(1)} MiB  ${JSON.stringify(s.detail)}\n`,
        ),
      );
      sizes.push(size);
      process.stdout.write(`  (${size.events} events)\n`);
    }
    if (sizes.length > 1) {
      process.stdout.write('slope, MiB per million events:\n');
      for (const [name, slope] of Object.entries(slopes(sizes)))
        process.stdout.write(`  ${name.padEnd(36)} ${slope.toFixed(1)}\n`);
    }
    if (values.out !== undefined)
      writeFileSync(values.out, `${JSON.stringify({ sizes, slopes: slopes(sizes) }, null, 2)}\n`);
  } finally {
    if (values.keep) process.stdout.write(`kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === SELF) await main();
