// SPDX-License-Identifier: GPL-2.0-only
/**
 * Who holds a failure's claim in a farm's store, and when a claim counts as abandoned (migration 0004).
 *
 * A claimant is `host/pid/token`: the machine and process of the worker, and a random token that tells two
 * workers of one process apart (and a worker from an earlier process that had the same pid). A claim
 * carries a lease end, in ms since the epoch of the claiming machine's clock, which its holder moves on as
 * its work goes on (after shrinking, after each recorded run).
 *
 * A claim with no runs is abandoned when
 * - it names no holder (claimed before migration 0004), or
 * - its holder is a process of this host that no longer exists (killed, crashed, stopped before it
 *   recorded): seen at once, with no clock involved; or
 * - its lease has run out: the one test that works across machines, and so after a kill on another host
 *   the work waits out the lease. Clocks of the farm's machines must agree to well within the lease.
 * A process id reused by an unrelated process only makes a dead holder look alive until its lease ends.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

import type { ClaimHolder } from '../store/index.js';

/** How long a claim holds without renewal: far above one shrink and two recorded runs of a generated trace. */
export const CLAIM_LEASE_MS = 10 * 60_000;

/** A new claimant name for this process. */
export function newClaimant(): string {
  return `${hostname()}/${process.pid}/${randomBytes(6).toString('hex')}`;
}

/** The holder `claimant` with a lease of `leaseMs` from now. */
export function holding(claimant: string, leaseMs: number, now = Date.now()): ClaimHolder {
  return { claimant, leaseUntil: now + leaseMs };
}

/** True unless `pid` is known not to exist (EPERM: it exists, owned by someone else). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when the claim (holder and lease end as stored) is abandoned; see the file comment. */
export function isAbandoned(claim: { claimant: string | null; leaseUntil: number | null }, now = Date.now()): boolean {
  if (claim.claimant === null || claim.leaseUntil === null) return true;
  if (claim.leaseUntil < now) return true;
  const match = /^(.*)\/(\d+)\/[0-9a-f]+$/.exec(claim.claimant);
  if (match === null) return false;
  const [, host, pid] = match as unknown as [string, string, string];
  return host === hostname() && !processExists(Number(pid));
}
