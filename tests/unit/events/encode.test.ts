// SPDX-License-Identifier: GPL-2.0-only
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { BIGINT_EVENT_TYPES, encodeEvent, schemaMayHoldBigint } from '../../../src/events/encode.js';
import type { Event } from '../../../src/events/events.js';
import { encodeJson, encodeJsonWithoutBigints } from '../../../src/lib/codec.js';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { replay } from '../../../src/replay/replayer.js';
import { MemorySink } from '../../../src/state/emit.js';
import { ROOT, SHIPPED_TRACES } from '../../support/heads.js';

describe('which event types may hold a bigint', () => {
  it('is read off the schemas: the u64 and tree-key fields, and the open-ended results and details', () => {
    expect([...BIGINT_EVENT_TYPES].sort()).toEqual([
      'AccessItemAdded',
      'AreaAllocated',
      'DomainAllocated',
      'HwQueueAllocated',
      'IoPageTablesChanged',
      'IommuMapped',
      'IommuMappedRuns',
      'IommuUnmapped',
      'IovaAlignmentSet',
      'ItreeInserted',
      'ItreeRemoved',
      'OpFinished',
      'PagesAllocated',
      'PagesFileSet',
      'ProcessCreated',
      'RlimitSet',
      'ViolationDetected',
      'Warned',
    ]);
  });

  it('looks through wrappers and containers, and counts a kind it does not know as may', () => {
    expect(schemaMayHoldBigint(z.strictObject({ a: z.string(), b: z.array(z.number()) }))).toBe(false);
    expect(schemaMayHoldBigint(z.strictObject({ a: z.bigint().nonnegative().nullable() }))).toBe(true);
    expect(schemaMayHoldBigint(z.array(z.tuple([z.number(), z.bigint()])))).toBe(true);
    expect(schemaMayHoldBigint(z.union([z.literal('x'), z.enum(['a', 'b'])]))).toBe(false);
    expect(schemaMayHoldBigint(z.record(z.string(), z.bigint()).optional())).toBe(true);
    expect(schemaMayHoldBigint(z.unknown())).toBe(true);
  });
});

describe('encodeEvent', () => {
  const fd = (pid: string): Event => ({
    type: 'FdInstalled',
    v: 1,
    pid,
    fd: 3,
    file: 'ctx:1',
    fn: 'iommufd_fops_open',
  });

  it('writes the text encodeJson writes, escapes included, for a type without bigints', () => {
    expect(encodeEvent(fd('12n'))).toBe(
      '{"type":"FdInstalled","v":1,"pid":"~12n","fd":3,"file":"ctx:1","fn":"iommufd_fops_open"}',
    );
    expect(encodeEvent(fd('~p'))).toBe(encodeJson(fd('~p')));
    expect(encodeEvent(fd('~p'))).toContain('"pid":"~~p"');
    // Looks like a mark but is no bigint text: written as is.
    expect(encodeEvent(fd('a5n'))).toContain('"pid":"a5n"');
    expect(encodeEvent(fd('p1'))).toBe(encodeJson(fd('p1')));
  });

  it('writes bigints as encodeJson does for a type that holds them', () => {
    const e: Event = { type: 'AccessItemAdded', v: 1, access: 'a', item: 2, iova: 4096n, length: 8192n };
    expect(encodeEvent(e)).toBe(
      '{"type":"AccessItemAdded","v":1,"access":"a","item":2,"iova":"4096n","length":"8192n"}',
    );
  });

  // The selftest recordings are left to the heads test, which pins every shipped trace's event chain.
  it('matches encodeJson on every event of the hand-written shipped traces', () => {
    let events = 0;
    let plain = 0;
    for (const path of SHIPPED_TRACES.filter((p) => !p.includes('/selftest/'))) {
      const sink = new MemorySink();
      const { fixes } = resolveVariant('upstream');
      replay(parseTraceText(readFileSync(join(ROOT, path), 'utf8'), path), {
        variant: 'upstream',
        fixes,
        failNth: null,
        sink,
      });
      for (const event of sink.events) expect(encodeEvent(event)).toBe(encodeJson(event));
      events += sink.events.length;
      plain += sink.events.filter((e) => !BIGINT_EVENT_TYPES.has(e.type)).length;
    }
    // Both paths taken: 938 events, of which these hold no bigint.
    expect([events, plain]).toEqual([938, 676]);
  });
});

describe('encodeJsonWithoutBigints', () => {
  it('refuses a bigint instead of writing it wrong', () => {
    expect(() => encodeJsonWithoutBigints({ a: 1n })).toThrow(TypeError);
  });
});
