// SPDX-License-Identifier: GPL-2.0-only
/**
 * The answers to the read questions about a stored run, as the data `--json` prints: one builder per
 * question (runs, log, at, diff, why, watch, step), shared by the CLI and the browser view's API so the two
 * can never disagree.
 */
import { variantLabel } from '../kernel/variant-spec.js';
import { BadRangeError, NotFoundError } from '../lib/errors.js';
import { decodeJson } from '../lib/codec.js';
import type { Event } from '../events/events.js';
import type { EventFilter, RunRow, Store, StoredOp } from '../store/index.js';
import type { StateDiff } from '../state/diff.js';
import { diffStates } from '../state/diff.js';
import type { State } from '../state/state.js';
import { Cursor } from './cursor.js';
import { stateAt } from './state-at.js';
import { StoreSource } from './store-source.js';
import { renderStep } from './step-report.js';
import type { StepReport } from './step-report.js';
import { watch } from './watch.js';
import type { WhyTarget } from './why.js';
import { why } from './why.js';

/** The run row, or a NotFoundError naming the run and the store. */
export async function requireRun(store: Store, run: number): Promise<RunRow> {
  const row = await store.run(run);
  if (!row) throw new NotFoundError(`no run ${run} in ${store.path} (ioptrace runs lists them)`, 'run', run);
  return row;
}

export type RunListing = RunRow & { label: string };

/** `runs --json`: every run with its variant label. */
export async function runsAnswer(store: Store): Promise<RunListing[]> {
  const runs = await store.runs();
  return runs.map((r) => ({ ...r, label: variantLabel(r.variant, r.flags) }));
}

export interface LoggedEvent {
  seq: number;
  op: number;
  hash: string;
  event: Event;
}

/** `log RUN --json`: the events matching the filter, in seq order. */
export async function eventsAnswer(store: Store, run: number, filter: EventFilter): Promise<LoggedEvent[]> {
  await requireRun(store, run);
  const out: LoggedEvent[] = [];
  for await (const e of store.events(run, filter)) {
    out.push({ seq: e.seq, op: e.op, hash: e.hash, event: decodeJson(e.payload) as Event });
  }
  return out;
}

export interface StateAnswer {
  run: number;
  seq: number;
  op: number | null;
  line: number | null;
  state: State;
}

/** The op whose events include `seq` (none for seq 0, the initial state). */
export async function opOfSeq(store: Store, run: number, seq: number): Promise<StoredOp | null> {
  return seq === 0 ? null : ((await store.opAt(run, seq)) ?? null);
}

/** `at RUN SEQ --json`: the state after event `seq`, with the op that emitted it. */
export async function stateAnswer(
  store: Store,
  run: number,
  seq: number,
): Promise<StateAnswer & { opRow: StoredOp | null }> {
  await requireRun(store, run);
  const state = await stateAt(await StoreSource.open(store, run), seq);
  const op = await opOfSeq(store, run, seq);
  return { run, seq, op: op?.index ?? null, line: op?.line ?? null, state, opRow: op };
}

/** `diff RUN A B --json`. */
export async function diffAnswer(
  store: Store,
  run: number,
  a: number,
  b: number,
): Promise<{ run: number; a: number; b: number; diff: StateDiff }> {
  await requireRun(store, run);
  const source = await StoreSource.open(store, run);
  return { run, a, b, diff: diffStates(await stateAt(source, a), await stateAt(source, b)) };
}

export interface WhyAnswer {
  run: number;
  target: WhyTarget;
  events: { seq: number; op: number; type: string; text: string }[];
}

/** `why RUN --pfn P | --index PAGES:I --json`: every event that touched the page. */
export async function whyAnswer(store: Store, run: number, target: WhyTarget): Promise<WhyAnswer> {
  await requireRun(store, run);
  const entries = await why(await StoreSource.open(store, run), target);
  return { run, target, events: entries.map(({ seq, op, type, text }) => ({ seq, op, type, text })) };
}

export type WatchAnswer =
  | { run: number; expr: string; hit: null }
  | { run: number; expr: string; seq: number; op: number; line: number | null };

/** `watch RUN EXPR --json`: the first event at or after `from` where the expression holds. */
export async function watchAnswer(store: Store, run: number, expr: string, from: number): Promise<WatchAnswer> {
  await requireRun(store, run);
  const hit = await watch(await StoreSource.open(store, run), expr, { from, runName: `run ${run}` });
  if (!hit) return { run, expr, hit: null };
  const op = await opOfSeq(store, run, hit.seq);
  return { run, expr, seq: hit.seq, op: hit.op, line: op?.line ?? null };
}

export interface StepQuery {
  /** The cursor starts after op `from` and goes to `to` (with `back`: to `to` first, then back to `from`). */
  from: number;
  to: number;
  back: boolean;
  /** Most patches rendered per step. */
  maxPatches: number;
}

export interface StepAnswer {
  run: number;
  from: number;
  to: number;
  back: boolean;
  steps: StepReport[];
}

/**
 * `step RUN --json`: the steps of the cursor between two ops, forward or back by inverse patches. A caller
 * that keeps a cursor over the run (the browser view) passes it: a step back then applies the inverse
 * patches the cursor kept instead of seeking. The answer is the same either way.
 */
export async function stepAnswer(store: Store, run: number, query: StepQuery, kept?: Cursor): Promise<StepAnswer> {
  const { from, to, back, maxPatches } = query;
  const row = await requireRun(store, run);
  const last = row.opCount - 1;
  if (from > last || to > last || from < 0) {
    throw new BadRangeError(`run ${run} has ops 0..${last}; got from ${from} to ${to}`, 'from', from, 0, last);
  }
  if (from > to) throw new BadRangeError(`from ${from} is after to ${to}`, 'from', from, 0, to);
  const ops = new Map((await store.ops(run, from, to)).map((o) => [o.index, o]));
  const cursor = kept ?? (await Cursor.open(await StoreSource.open(store, run), from));
  // Forward starts at `from`; back walks forward to `to` (applying kept patches) and then back.
  if (back ? cursor.op < from || cursor.op > to : cursor.op !== from) await cursor.seek(from);
  const steps: StepReport[] = [];
  while (cursor.op < to) {
    const before = cursor.state;
    const step = await cursor.forward();
    if (step === null) break;
    if (!back) steps.push(renderStep(step, before, cursor, ops, maxPatches));
  }
  while (back && cursor.op > from) {
    const before = cursor.state;
    const step = await cursor.back();
    if (step === null) break;
    steps.push(renderStep(step, before, cursor, ops, maxPatches));
  }
  return { run, from, to, back, steps };
}
