// SPDX-License-Identifier: GPL-2.0-only
/**
 * Write marks: an exact answer to "has this container been written since then?", for whoever keeps
 * something derived from a container (an encoded snapshot part) and wants to reuse it while it still holds.
 *
 * Every exported function of this folder that mutates a container in place (a btree, range map, xarray
 * or interval tree, including the segments, runs and nodes stored in it) marks the container it was
 * given, before it writes. Nothing else writes these containers: their nodes and stored values are
 * changed only through these functions (the reducers write a structure only by calling them).
 *
 * A mark is the value of one module-wide clock, which every mark advances: "written since t" is "last
 * mark > t". Exact by construction: no content digest, no sampling; a false "written" (a mutator called
 * with nothing to change) only costs a re-encode. The containers are keys of a WeakMap, so marking keeps
 * nothing alive, and it is invisible to v8.serialize, the digests and the shape of the objects.
 */

let clock = 0;
const lastWrite = new WeakMap<object, number>();

/** Record that `container` is about to be written. */
export function markWritten(container: object): void {
  lastWrite.set(container, ++clock);
}

/** The current time of the write clock: pass it to writtenSince later. */
export function writeClock(): number {
  return clock;
}

/** Was `container` written after the write clock read `since`? A container never written was not. */
export function writtenSince(container: object, since: number): boolean {
  return (lastWrite.get(container) ?? 0) > since;
}
