// SPDX-License-Identifier: GPL-2.0-only
/**
 * Variant-neutral state digests: what bisect compares between two runs, which is what the kernel holds
 * (pins, page tables, xarrays, interval trees, IO page tables, accounting, live allocations by owner and
 * size) and not how the code that got there was written.
 *
 * The stored digest covers the whole state (the run's variant and fixes are not part of it). Two kinds of
 * field differ between variants by construction, and would make runs "diverge" where they behave the same:
 *   - derived: `ioas.iovaAlignment`, which iopt_calculate_iova_alignment recomputes from the domains, the
 *     accesses and disable_large_pages under the variant's rules ([merged] counts each access's PAGE_SIZE
 *     alignment, [v3] has none). It holds no history of its own: where an alignment difference has a
 *     consequence (an -EINVAL, another allocated IOVA), that consequence differs in its own right.
 *   - provenance: `heap.fn` and `heap.tag`, the function that allocated a live allocation and its label.
 *     A refactor renames them (v3's iopt_pages_add_access is iopt_area_add_access after the merge) while
 *     the kernel holds the same object of the same size for the same owner.
 * Both are shown beside a divergence (divergence.ts), never counted as one.
 *
 * The digest is additive (src/lib/digest.ts: one hash per record field, summed), so subtracting those
 * fields' hashes, taken by src/state/records.ts's own fieldParts, gives the digest of the rest of the
 * state exactly; nothing is re-read. `strict` turns the correction off: every stored difference counts.
 *
 * The correction is tracked from the events that set those fields (NEUTRAL_EVENT_TYPES), so a store scan
 * reads them through the type filter without reading the run.
 */
import type { Event, EventType } from '../events/events.js';
import { NEUTRAL_EVENTS } from '../events/groups.js';
import type { Digest, HashPart } from '../lib/digest.js';
import {
  digestAdd,
  digestHex,
  digestRemove,
  tupleAddTo,
  tupleKey,
  tupleRemoveFrom,
  tupleStart,
  tupleString,
  zeroDigest,
} from '../lib/digest.js';
import type { EventSink } from '../state/emit.js';
import { fieldParts } from '../state/records.js';
import type { State } from '../state/state.js';

/** The events that change a neutralised field. */
export const NEUTRAL_EVENT_TYPES: readonly EventType[] = NEUTRAL_EVENTS;

/** Of those, the ones that change the provenance of allocations (frequent: most ops allocate). */
export const PROVENANCE_EVENT_TYPES: readonly EventType[] = NEUTRAL_EVENTS.filter(
  (t) => t === 'HeapAllocated' || t === 'HeapFreed',
);

/** The others, which set an IOAS's derived alignment (rare). */
export const DERIVED_EVENT_TYPES: readonly EventType[] = NEUTRAL_EVENTS.filter(
  (t) => !PROVENANCE_EVENT_TYPES.includes(t),
);

/** The alignment a new IOAS starts with (reducers/iommufd.ts ioasAllocated). */
const INITIAL_ALIGNMENT = 1n;

/** Fields of a heap allocation that say where it came from, not what the kernel holds. */
export const PROVENANCE_FIELDS = ['fn', 'tag'] as const;

export interface NeutralOptions {
  /** Leave out the derived field ioas.iovaAlignment (default true); false (`--strict`): it counts. */
  derived?: boolean;
  /** Leave out the provenance of allocations, heap.fn and heap.tag (default true); false (`--strict`): they count. */
  provenance?: boolean;
}

/** The options of `--strict` (every stored difference counts) or of the default. */
export function neutralOptions(strict: boolean): NeutralOptions {
  return { derived: !strict, provenance: !strict };
}

const alignmentParts = (ioas: string, alignment: bigint): HashPart[] =>
  fieldParts('ioas', ioas, 'iovaAlignment', alignment);

function provenanceParts(alloc: number, origin: { fn: string; tag: string }): HashPart[][] {
  return PROVENANCE_FIELDS.map((field) => fieldParts('heap', alloc, field, origin[field]));
}

/**
 * target +/-= the hashes of provenanceParts(alloc, origin), mixed part by part: the parts of a text field
 * are the table, String(alloc), the field and the text, which tupleString / tupleKey mix exactly as
 * hashParts does, without the arrays (a bisect follows every allocation of the stretches it reads).
 */
function provenanceHash(target: Digest, add: boolean, alloc: number, origin: { fn: string; tag: string }): void {
  for (const field of PROVENANCE_FIELDS) {
    const value: unknown = origin[field];
    if (typeof value !== 'string') {
      if (add) digestAdd(target, fieldParts('heap', alloc, field, value));
      else digestRemove(target, fieldParts('heap', alloc, field, value));
      continue;
    }
    tupleStart();
    tupleString('heap');
    tupleKey(alloc);
    tupleString(field);
    tupleString(value);
    if (add) tupleAddTo(target);
    else tupleRemoveFrom(target);
  }
}

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
  private readonly origins = new Map<number, { fn: string; tag: string }>();
  private readonly derived: boolean;
  private readonly provenance: boolean;

  constructor(options: NeutralOptions = {}) {
    this.derived = options.derived ?? true;
    this.provenance = options.provenance ?? true;
  }

  accept(event: Event): void {
    switch (event.type) {
      case 'IoasAllocated':
        this.setAlignment(event.ioas, INITIAL_ALIGNMENT);
        return;
      case 'IovaAlignmentSet':
        this.setAlignment(event.ioas, event.alignment);
        return;
      case 'HeapAllocated':
        if (!this.provenance) return;
        this.origins.set(event.alloc, { fn: event.fn, tag: event.tag });
        provenanceHash(this.correction, true, event.alloc, event);
        return;
      case 'HeapFreed': {
        const origin = this.origins.get(event.alloc);
        if (origin === undefined) return;
        provenanceHash(this.correction, false, event.alloc, origin);
        this.origins.delete(event.alloc);
        return;
      }
      default:
        return;
    }
  }

  /**
   * Start following allocations from a state instead of from the run's start: the tracked allocations
   * become `live` (a state's heap), as if every HeapAllocated and HeapFreed up to that state had been
   * accepted, since the live heap is exactly what those events leave behind.
   */
  seedProvenance(live: Iterable<{ id: number; fn: string; tag: string }>): void {
    if (!this.provenance) return;
    for (const [alloc, origin] of this.origins)
      for (const parts of provenanceParts(alloc, origin)) digestRemove(this.correction, parts);
    this.origins.clear();
    for (const { id, fn, tag } of live) {
      this.origins.set(id, { fn, tag });
      for (const parts of provenanceParts(id, { fn, tag })) digestAdd(this.correction, parts);
    }
  }

  /** Whether allocations are followed (false under --strict: their provenance counts). */
  get followsProvenance(): boolean {
    return this.provenance;
  }

  /** Whether IOVA alignments are followed (false under --strict: the alignment counts). */
  get followsDerived(): boolean {
    return this.derived;
  }

  /** The neutral digest (16 hex digits) of a state whose raw digest is `rawHex`, at this point of the run. */
  neutral(rawHex: string): string {
    return digestHex(minus(parseDigestHex(rawHex), this.correction));
  }

  /**
   * Whether neutral(rawHex) here equals other.neutral(otherRawHex) there, compared as lanes: a scan compares
   * every op of a stretch and needs the text only of the first that differs.
   */
  sameNeutral(rawHex: string, other: DigestNeutralizer, otherRawHex: string): boolean {
    const a = parseDigestHex(rawHex);
    const b = parseDigestHex(otherRawHex);
    return (
      (a.lo - this.correction.lo) >>> 0 === (b.lo - other.correction.lo) >>> 0 &&
      (a.hi - this.correction.hi) >>> 0 === (b.hi - other.correction.hi) >>> 0
    );
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
  if (options.provenance ?? true) {
    for (const alloc of Object.values(state.heap))
      for (const parts of provenanceParts(alloc.id, alloc)) digestAdd(correction, parts);
  }
  return digestHex(minus(state.digest, correction));
}

/** Which kind of neutralised field a structural difference is in; null when it counts. */
export function neutralKind(
  table: string,
  path: readonly string[],
  options: NeutralOptions = {},
): 'uncounted' | 'provenance' | null {
  // Cursors (nextId, nextPfn, opsDone) are outside the digest: how a state was reached, not what it is.
  if (table === 'cursors') return 'uncounted';
  if ((options.derived ?? true) && table === 'ioases' && path.length === 1 && path[0] === 'iovaAlignment')
    return 'uncounted';
  if (
    (options.provenance ?? true) &&
    table === 'heap' &&
    path.length === 1 &&
    (PROVENANCE_FIELDS as readonly string[]).includes(path[0] ?? '')
  )
    return 'provenance';
  return null;
}

/** Whether a structural difference is in a neutralised field (shown beside a divergence, never counted). */
export function isNeutralField(table: string, path: readonly string[], options: NeutralOptions = {}): boolean {
  return neutralKind(table, path, options) !== null;
}
