// SPDX-License-Identifier: GPL-2.0-only
/** How physical frames are compared and hashed inside the run-length frame table. */
import type { RangeSpec } from '../structures/range-map.js';
import type { Frame, Vma } from './state.js';

export const FRAME_SPEC: RangeSpec<Frame> = {
  keyOf: (f) => `${f.pins},${f.maps},${f.huge},${f.dirty ? 1 : 0}`,
};

export const VMA_SPEC: RangeSpec<Vma> = {
  // The shared mark only when set, so that private VMAs hash as they did before shared mappings existed.
  keyOf: (v) => `${v.writable ? 'rw' : 'r'},${v.huge}${v.shared ? ',shared' : ''}`,
};

/** A frame nobody maps or pins is freed. */
export function frameOrFree(f: Frame): Frame | undefined {
  return f.pins === 0 && f.maps === 0 ? undefined : f;
}
