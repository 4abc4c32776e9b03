// SPDX-License-Identifier: GPL-2.0-only
/**
 * Bisect: where two runs of a trace stop agreeing (over the store or in memory), which fix flag first
 * changes a trace's outcome, and where a model replay stops matching a recording. An explicit export list.
 */
export { bisectRuns, bisectVariants } from './bisect-runs.js';
export type { Align, BisectReport, BisectRunsOptions, RunSide, TraceBisectReport, VariantRun } from './bisect-runs.js';
export { bisectInMemory, divergenceInMemory, replayKeyed } from './memory.js';
export type { KeyedReplay, MemoryBisect, MemoryReplayOptions } from './memory.js';
export { bisectFix, fixSteps, outcomeOf, sameOutcome, searchFlips, variantAt } from './bisect-fix.js';
export type { FixBisectOptions, FixBisectReport, FixStep, Flip, Outcome, OutcomeChange } from './bisect-fix.js';
export { compareObserved, replayObserved } from './observed.js';
export type { ObservedDivergence, ObservedReport, OpEvents } from './observed.js';
export { describeDivergence } from './divergence.js';
export type { Divergence, DivergenceDiff, OpSide } from './divergence.js';
export { compareEffects, namedObjects, renderEvent } from './effects.js';
export type { EffectsComparison, NamedObjects, RowMark, SideBySideRow } from './effects.js';
export { DigestNeutralizer, NEUTRAL_EVENT_TYPES, neutralDigestOfState } from './neutral.js';
export type { NeutralOptions } from './neutral.js';
export { opDifferences, scanOps } from './scan.js';
export type { OpDifference, OpPair, ScanResult } from './scan.js';
export { parseVariantSpec } from '../kernel/variant-spec.js';
export type { NamedVariant } from '../kernel/variant-spec.js';
export { bisectFixJson, bisectJson, observedJson, renderBisect, renderBisectFix, renderObserved } from './render.js';
