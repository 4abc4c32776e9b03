// SPDX-License-Identifier: GPL-2.0-only
/** Time travel over a recorded run: seeks, stepping, why, watch, rebuild checks. An explicit export list. */
export type { EventSource, SourcedEvent, SnapshotBlob, OpSpan, MemoryRecorderOptions } from './source.js';
export { MemorySource, MemoryRecorder } from './source.js';
export { StoreSource } from './store-source.js';
export { SnapshotSpacing, DEFAULT_SPACING } from '../state/snapshot-spacing.js';
export type { SpacingOptions } from '../state/snapshot-spacing.js';
export { stateAt, replayInto, loadSnapshot, ForwardSeeker } from './state-at.js';
export { Cursor } from './cursor.js';
export type { Step } from './cursor.js';
export { why } from './why.js';
export type { WhyTarget, WhyEntry, WhyOptions } from './why.js';
export { watch, compileWatch, ExpressionError } from './watch.js';
export type { Predicate, WatchHit, WatchOptions } from './watch.js';
export { verifyRebuild, rebuildFinal } from './rebuild.js';
export type { RebuildReport, RebuildMismatch } from './rebuild.js';
export { renderState } from './render.js';
export type { RenderOptions } from './render.js';
export { diffStates, renderDiff, renderDifference, DIFF_TABLES } from '../state/diff.js';
export type { StateDiff, Difference, DiffTable, DiffRange, DiffUnit } from '../state/diff.js';
export { serializeState, deserializeState, decodeEvent, parseEvent, SNAPSHOT_FORMAT } from '../state/snapshot.js';
export { renderPatches, renderStep, DEFAULT_MAX_PATCHES } from './step-report.js';
export type { RenderedPatch, StepReport } from './step-report.js';
export {
  requireRun,
  runsAnswer,
  eventsAnswer,
  stateAnswer,
  diffAnswer,
  whyAnswer,
  watchAnswer,
  stepAnswer,
  opOfSeq,
} from './answers.js';
export type { RunListing, LoggedEvent, StateAnswer, WhyAnswer, WatchAnswer, StepQuery, StepAnswer } from './answers.js';
