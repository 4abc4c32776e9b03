// SPDX-License-Identifier: GPL-2.0-only
import type { InvariantFinding } from './finding.js';
import type { Run } from './runs.js';

/**
 * What the per-pages checks found of one iopt_pages, kept by a checker that knows which of the pages'
 * parts no event touched since: each self-check reads one structure only (its access_itree, its
 * domains_itree, its xarray), the coverage reads those three and npinned. A checker drops the fields whose
 * structure an event touched; empty fields are computed and filled in.
 */
export interface PagesMemo {
  accessTree?: InvariantFinding[];
  domainsTree?: InvariantFinding[];
  xa?: InvariantFinding[];
  held?: { access: Run[]; domains: Run[]; cover: Run[]; findings: InvariantFinding[] };
}

/**
 * What the IOAS-level self-checks found (the IOASes' trees, their areas, allocated areas in no tree), kept
 * while no event touched an IOAS's trees or allocated or freed an area: these read nothing else.
 */
export interface LayoutMemo {
  structures?: InvariantFinding[];
}

/**
 * What the object-level checks found (invariant 3, the accounting; invariant 4, the areas against their
 * domains and the domains' mappings), kept while the ops' events touched nothing either reads: a checker
 * drops a field when an event of a kind it does not know to be inert for that check arrives.
 */
export interface ObjectsMemo {
  accounting?: InvariantFinding[];
  areasAndDomains?: InvariantFinding[];
}
