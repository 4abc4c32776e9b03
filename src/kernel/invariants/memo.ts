// SPDX-License-Identifier: GPL-2.0-only
import type { InvariantFinding } from './finding.js';
import type { Run } from './runs.js';

/**
 * What the per-pages checks found of one iopt_pages (its trees' and xarray's self-checks, its coverage with
 * invariants 1 and 2), kept by a checker that knows no event touched the pages since: these read nothing
 * but the pages' own trees, xarray and npinned. Empty fields are computed and filled in.
 */
export interface PagesMemo {
  structures?: InvariantFinding[];
  held?: { access: Run[]; domains: Run[]; cover: Run[]; findings: InvariantFinding[] };
}
