// Two checks around every test of the suite:
// - any console output is a failure: the suite must be silent, and code under test must not print;
// - every Emitter the test created is rebuilt from the events it applied, starting from the state it was
//   created with: the rebuilt state must equal the live one, digest included (events are the only writers).
// After every test the event loop gets a turn, so that a file of synchronous tests does not starve the
// worker's RPC with the main process (tests/README.md). With IOPTRACE_TEST_BLOCKS=<file>, the longest time
// each test kept the event loop from turning is appended to that file as a JSON line (a measurement, never
// a check).
import { appendFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { serialize, deserialize } from 'node:v8';
import { afterEach, beforeEach, expect, vi } from 'vitest';
import { Emitter } from '../src/state/emit.js';
import type { Event } from '../src/events/events.js';
import type { State } from '../src/state/state.js';
import { reduce } from '../src/state/reduce.js';
import { recomputeDigest } from '../src/state/state.js';
import { tampering } from './support/tamper.js';
import { yieldToEventLoop, yieldToTimers } from './support/yield.js';

const methods = ['log', 'info', 'warn', 'error', 'debug'] as const;
let spies: ReturnType<typeof vi.spyOn>[] = [];

interface Tapped {
  emitter: Emitter;
  start: State;
  events: Event[];
}
/** Deep-compare states only up to this many events: beyond, the digests (checked always) carry the check. */
const DEEP_COMPARE_LIMIT = 20_000;
/** Events kept per emitter; a longer run is not rebuilt (memory), the shorter ones of the suite are. */
const RECORD_LIMIT = 200_000;
let tapped: Tapped[] = [];
const byEmitter = new WeakMap<Emitter, Tapped>();

const blockLog = process.env.IOPTRACE_TEST_BLOCKS;
const loopDelay = blockLog === undefined ? null : monitorEventLoopDelay({ resolution: 10 });
loopDelay?.enable();

beforeEach(() => {
  loopDelay?.reset();
  spies = methods.map((m) => vi.spyOn(console, m).mockImplementation(() => undefined));
  tapped = [];
  Emitter.tap = {
    created(emitter) {
      // Rebuild equals live at any point of a run, so the emitters seen so far are checked now and dropped:
      // a test that replays hundreds of times (a fail-nth sweep) keeps one run in memory, not all.
      if (!tampering.allowed) for (const t of tapped) checkRebuild(t);
      tapped = [];
      const t: Tapped = { emitter, start: deserialize(serialize(emitter.state)) as State, events: [] };
      tapped.push(t);
      byEmitter.set(emitter, t);
    },
    emitted(emitter, event) {
      const t = byEmitter.get(emitter);
      if (t === undefined || t.events.length > RECORD_LIMIT) return;
      t.events.push(t.events.length === RECORD_LIMIT ? TOO_LONG : (deserialize(serialize(event)) as Event));
    },
  };
});

afterEach(async () => {
  await yieldToEventLoop();
  Emitter.tap = null;
  const calls = spies.flatMap((spy, i) =>
    spy.mock.calls.map((args) => `console.${methods[i]}: ${args.map(String).join(' ')}`),
  );
  for (const spy of spies) spy.mockRestore();
  expect(calls, 'a test wrote to the console').toEqual([]);
  const tamper = tampering.allowed;
  tampering.allowed = false;
  for (const t of tamper ? [] : tapped) checkRebuild(t);
  tapped = [];
  await yieldToEventLoop();
  if (loopDelay !== null && blockLog !== undefined) {
    await yieldToTimers(); // the delay monitor records a block when its timer next fires
    const { testPath, currentTestName } = expect.getState();
    const maxBlockMs = Math.round(loopDelay.max / 1e6);
    appendFileSync(blockLog, JSON.stringify({ file: testPath, test: currentTestName, maxBlockMs }) + '\n');
  }
});

const TOO_LONG = { type: 'too-long' } as unknown as Event;

function checkRebuild(t: Tapped): void {
  if (t.events.length === 0 || t.events.at(-1) === TOO_LONG) return;
  const rebuilt = t.start;
  for (const e of t.events) reduce(rebuilt, e);
  const live = t.emitter.state;
  expect(rebuilt.digest, 'rebuilt digest equals the live digest').toEqual(live.digest);
  expect(recomputeDigest(live), 'the incremental digest equals a digest computed from scratch').toEqual(live.digest);
  if (t.events.length <= DEEP_COMPARE_LIMIT) expect(rebuilt, 'the rebuilt state equals the live state').toEqual(live);
  t.events = [];
}
