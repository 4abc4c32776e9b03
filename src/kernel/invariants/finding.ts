// SPDX-License-Identifier: GPL-2.0-only
/**
 * What a broken invariant reports, and the limits and formatting all the checks share.
 */
import type { ViolationKind } from '../../events/events.js';
import type { FindingObjects } from '../../machine/sim.js';

export interface InvariantFinding {
  /** Identity of the breach (what it is about), for reporting it once while it persists. */
  key: string;
  kind: ViolationKind;
  detail: string;
  objects: FindingObjects;
  /** What must change for the finding to be reported again (default: the detail). */
  signature?: string;
}

export const U64_MASK = (1n << 64n) - 1n;
/** Addresses below this are exact as numbers, and so are their differences. */
export const SMALL = 1n << 52n;
/** How many runs a finding's text lists before it says "and N more". */
export const LIST_MAX = 4;
/** Teardown reports this many runs or allocations one by one, then one summary. */
export const TEARDOWN_MAX = 16;

export { hex } from '../../lib/format.js';
