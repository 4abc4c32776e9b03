// SPDX-License-Identifier: GPL-2.0-only
// The vitest worker talks to the main process over an RPC whose calls time out after 60 s; the replies are
// only read when the worker's event loop turns. Synchronous test code (and a file of synchronous tests: the
// runner goes from one test to the next with microtasks only) must therefore give the loop a turn every few
// seconds, or a loaded machine turns a passing suite red. See tests/README.md.

// Captured at load, before any test can install fake timers.
const realSetImmediate = setImmediate;
const realSetTimeout = setTimeout;

/** Let the event loop run once (I/O, the RPC replies), then continue. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => realSetImmediate(resolve));
}

/** Let the event loop run up to its timers phase (setImmediate may come back before timers have run). */
export function yieldToTimers(): Promise<void> {
  return new Promise((resolve) => realSetTimeout(resolve, 1));
}

/** Longest stretch of synchronous work between two turns of the event loop, in a test that uses `yielder`. */
export const SLICE_MS = 500;

/**
 * For a long loop: `const pause = yielder(); for (...) { work(); await pause(); }` gives the event loop a
 * turn whenever `sliceMs` have passed since the last one, and costs nothing otherwise.
 */
export function yielder(sliceMs = SLICE_MS): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last < sliceMs) return;
    await yieldToEventLoop();
    last = performance.now();
  };
}
