// SPDX-License-Identifier: GPL-2.0-only
/**
 * Variant-neutral state digests: what bisect compares between two runs.
 *
 * The stored digest covers the whole state (the run's variant and fixes are not part of it). One field of the
 * state differs between variants by construction, and would make runs of v3 and of any merged variant
 * "diverge" at the first access even where they behave the same: `ioas.iovaAlignment`, a derived value that
 * iopt_calculate_iova_alignment recomputes from the domains, the accesses and disable_large_pages under the
 * variant's rules ([merged] counts each access's PAGE_SIZE alignment, [v3] has none). It holds no history
 * of its own: where an alignment difference has a consequence (an -EINVAL, another allocated IOVA), that
 * consequence differs in its own right (errno, result, areas).
 *
 * The digest is additive (src/lib/digest.ts: one hash per record field, summed), so subtracting that field's
 * hashes gives the digest of the rest of the state exactly; nothing is re-read. The hashes are taken as
 * src/state/records.ts takes them (table, key, field, value); tests/unit/bisect/neutral.test.ts checks the
 * coupling against real states. `strict` turns the correction off: every stored difference counts.
 *
 * The correction is tracked from the few events that set the field (NEUTRAL_EVENT_TYPES), so a store scan
 * reads them through the type filter without reading the run.
 */
import type { Event, EventType } from '../events/events.js';
import type { Digest, HashPart } from '../lib/digest.js';
import { digestAdd, digestHex, digestRemove, zeroDigest } from '../lib/digest.js';
import type { EventSink } from '../state/emit.js';
import type { State } from '../state/state.js';

/** The events that change a neutralised field. */
export const NEUTRAL_EVENT_TYPES: readonly EventType[] = ['IoasAllocated', 'IovaAlignmentSet'];

/** The alignment a new IOAS starts with (reducers/iommufd.ts ioasAllocated). */
const INITIAL_ALIGNMENT = 1n;

export interface NeutralOptions {
  /** Leave out the derived field ioas.iovaAlignment (default true); false (`--strict`): every difference counts. */
  derived?: boolean;
}

const alignmentParts = (ioas: string, alignment: bigint): HashPart[] => ['ioas', ioas, 'iovaAlignment', alignment];

/** A 16-hex-digit digest (hi lane first, as digestHex writes it) back to its lanes. */
export function parseDigestHex(hex: string): Digest {
  if (!/^[0-9a-f]{16}$/.test(hex)) throw new RangeError(`not a state digest: "${hex}"`);
  return { hi: Number.parseInt(hex.slice(0, 8), 16), lo: Number.parseInt(hex.slice(8), 16) };
}

function minus(a: Digest, b: Digest): Digest {
  return { lo: (a.lo - b.lo) >>> 0, hi: (a.hi - b.hi) >>> 0 };
}

/**
 * Follows one run's events (all of them, or only NEUTRAL_EVENT_TYPES: the others are ignored) and turns the
 * raw digest after any point into the neutral one. Also an EventSink, to ride along an in-memory replay.
 *
 * @example const n = new DigestNeutralizer(); replay(trace, { ...spec, sink: n, onOp: (r) => keys.push(n.neutral(r.digest)) })
 */
export class DigestNeutralizer implements EventSink {
  /** The sum of the hashes of the neutralised fields as they are now. */
  private readonly correction: Digest = zeroDigest();
  private readonly alignments = new Map<string, bigint>();
  private readonly derived: boolean;

  constructor(options: NeutralOptions = {}) {
    this.derived = options.derived ?? true;
  }

  accept(event: Event): void {
    switch (event.type) {
      case 'IoasAllocated':
        this.setAlignment(event.ioas, INITIAL_ALIGNMENT);
        return;
      case 'IovaAlignmentSet':
        this.setAlignment(event.ioas, event.alignment);
        return;
      default:
        return;
    }
  }

  /** The neutral digest (16 hex digits) of a state whose raw digest is `rawHex`, at this point of the run. */
  neutral(rawHex: string): string {
    return digestHex(minus(parseDigestHex(rawHex), this.correction));
  }

  /** What is subtracted at this point (two runs with equal corrections compare alike raw and neutral). */
  correctionHex(): string {
    return digestHex(this.correction);
  }

  private setAlignment(ioas: string, alignment: bigint): void {
    if (!this.derived) return;
    const old = this.alignments.get(ioas);
    if (old !== undefined) digestRemove(this.correction, alignmentParts(ioas, old));
    this.alignments.set(ioas, alignment);
    digestAdd(this.correction, alignmentParts(ioas, alignment));
  }
}

/** The neutral digest of a state, computed from the state itself (the reference the tracker must match). */
export function neutralDigestOfState(state: State, options: NeutralOptions = {}): string {
  const correction = zeroDigest();
  if (options.derived ?? true) {
    for (const ioas of Object.values(state.ioases))
      digestAdd(correction, alignmentParts(ioas.name, ioas.iovaAlignment));
  }
  return digestHex(minus(state.digest, correction));
}

/** Whether a structural difference is in a neutralised field (shown beside a divergence, never counted). */
export function isNeutralField(table: string, path: readonly string[], options: NeutralOptions = {}): boolean {
  // Cursors (nextId, nextPfn, opsDone) are outside the digest: how a state was reached, not what it is.
  if (table === 'cursors') return true;
  return (options.derived ?? true) && table === 'ioases' && path.length === 1 && path[0] === 'iovaAlignment';
}
