// SPDX-License-Identifier: GPL-2.0-only
/**
 * The public API of ioptrace as a library: an explicit export list, no logic.
 */
export type { Event, EventType, EventOf, ViolationKind } from './events/events.js';
export { Event as EventSchema, EVENT_TYPES, VIOLATION_KINDS } from './events/events.js';
export type { TraceOp, TraceHeader, Observation, Expectation } from './events/trace.js';
export { parseTraceFile, parseTraceText } from './replay/parse.js';
export type { ParsedTrace, TraceEntry } from './replay/parse.js';
export { TraceError } from './replay/errors.js';
export type { TraceIssue } from './replay/errors.js';
export { replay } from './replay/replayer.js';
export type { ReplayOptions, ReplayResult, OpRecord, Finding, Mismatch } from './replay/replayer.js';
export { recordReplay } from './replay/record.js';
export type { RecordOptions, RecordedRun } from './replay/record.js';
export { failNthSweep } from './replay/failnth.js';
export type { SweepResult, SweepStep } from './replay/failnth.js';
export { resolveVariant, FIX_FLAGS, VARIANTS } from './kernel/variants.js';
export type { FixFlag, VariantSpec } from './kernel/variants.js';
export { parseVariantSpec, variantFromOptions, variantLabel } from './kernel/variant-spec.js';
export type { NamedVariant } from './kernel/variant-spec.js';
export type { State } from './state/state.js';
export { initialState } from './state/state.js';
export { reduce } from './state/reduce.js';
export { Emitter, MemorySink, NullSink } from './state/emit.js';
export type { EventSink } from './state/emit.js';
export { openStore, StoreError } from './store/index.js';
export type { Store, RunRow, StoredEvent, StoredOp, VerifyReport } from './store/index.js';
export { digestHex } from './lib/digest.js';
export { encodeJson, decodeJson } from './lib/codec.js';
export { Cursor, StoreSource, MemorySource, stateAt } from './timetravel/index.js';
export type { Step, EventSource, OpSpan } from './timetravel/index.js';
// The answers behind the CLI's --json and the browser view's API, for scripts and other front ends.
export {
  runsAnswer,
  eventsAnswer,
  stateAnswer,
  diffAnswer,
  whyAnswer,
  watchAnswer,
  stepAnswer,
} from './timetravel/index.js';
export type {
  RunListing,
  LoggedEvent,
  StateAnswer,
  WhyAnswer,
  WatchAnswer,
  StepQuery,
  StepAnswer,
} from './timetravel/index.js';
// The browser view's server (`ioptrace serve`), to embed in another tool.
export { startServer } from './web/server.js';
export type { ServeOptions, RunningServer } from './web/server.js';
