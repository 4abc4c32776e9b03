// SPDX-License-Identifier: GPL-2.0-only
/**
 * One list of trace ops replayed under a chosen trace version on upstream, with every event and the op it
 * came in: for comparing what versions 3 and 4 emit for the same ops.
 */
import type { Event } from '../../src/events/events.js';
import { resolveVariant } from '../../src/kernel/variants.js';
import { parseTraceText } from '../../src/replay/parse.js';
import { replay } from '../../src/replay/replayer.js';
import type { ReplayResult } from '../../src/replay/replayer.js';

export function replayAsVersion(
  version: number,
  lines: readonly string[],
): { result: ReplayResult; events: [number, Event][] } {
  const events: [number, Event][] = [];
  const text = [`{"format":"ioptrace-trace","version":${version}}`, ...lines].join('\n');
  const result = replay(parseTraceText(`${text}\n`), {
    variant: 'upstream',
    fixes: resolveVariant('upstream').fixes,
    sink: { accept: (event, _seq, op) => events.push([op, event]) },
  });
  return { result, events };
}

/** How many events of each type op `op` emitted. */
export function eventTypesOf(events: readonly [number, Event][], op: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [at, e] of events) if (at === op) out[e.type] = (out[e.type] ?? 0) + 1;
  return out;
}
