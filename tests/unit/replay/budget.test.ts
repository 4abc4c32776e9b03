import { describe, expect, it } from 'vitest';

import { EventBudgetError } from '../../../src/replay/errors.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { DEFAULT_MAX_EVENTS, replay } from '../../../src/replay/replayer.js';
import { Progress } from '../../../src/cli/output.js';

const TIB = parseTraceText(
  [
    '{"format":"ioptrace-trace","version":1,"page_size":4096}',
    '{"op":"process","pid":1}',
    '{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":"0x10000000000"}',
  ].join('\n'),
);

describe('the event budget', () => {
  it('stops a replay inside the op that exceeds it, naming its line and size', () => {
    let caught: unknown = null;
    try {
      replay(TIB, { variant: 'upstream', fixes: [], maxEvents: 200 });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(EventBudgetError);
    const e = caught as EventBudgetError;
    expect([e.maxEvents, e.line]).toEqual([200, 3]);
    expect(e.message).toBe(
      'trace needs more than 200 events (budget --max-events 200); op at line 3 (mmap of 1 TiB) had emitted 194 ' +
        'of them when the budget ran out. Raise --max-events (0 = no limit) if the trace is meant to be this big.',
    );
  });

  it('is 20,000,000 events by default, and a budget that is enough changes nothing', () => {
    expect(DEFAULT_MAX_EVENTS).toBe(20_000_000);
    const small = parseTraceText('{"op":"process","pid":1}\n{"op":"mmap","pid":1,"addr":"0x1000","length":8192}\n');
    const free = replay(small, { variant: 'upstream', fixes: [] });
    const exact = replay(small, { variant: 'upstream', fixes: [], maxEvents: free.events });
    expect(exact.digest).toBe(free.digest);
    expect(() => replay(small, { variant: 'upstream', fixes: [], maxEvents: free.events - 1 })).toThrow(
      `trace needs more than ${free.events - 1} events`,
    );
  });
});

describe('progress inside one op', () => {
  function fakeStream(isTTY: boolean): { writes: string[]; stream: NodeJS.WritableStream & { isTTY?: boolean } } {
    const writes: string[] = [];
    const stream = { isTTY, write: (s: string) => writes.push(s) > 0 } as unknown as NodeJS.WritableStream & {
      isTTY?: boolean;
    };
    return { writes, stream };
  }

  it('is drawn at most every 200 ms, on a terminal or with --progress, never otherwise', () => {
    let now = 0;
    const tty = fakeStream(true);
    const p = new Progress(3, 'replay t', tty.stream, false, () => now);
    p.inside(2, 4, 3, 'mmap', 65536);
    now = 100;
    p.inside(2, 4, 3, 'mmap', 131072);
    now = 250;
    p.inside(2, 4, 3, 'mmap', 196608);
    p.finish();
    expect(tty.writes).toEqual([
      '\rreplay t  op 2/4 (line 3 mmap): 65536 events so far\x1b[K',
      '\rreplay t  op 2/4 (line 3 mmap): 196608 events so far\x1b[K',
      '\r\x1b[K',
    ]);

    const pipe = fakeStream(false);
    const quiet = new Progress(3, 'replay t', pipe.stream, false, () => now);
    quiet.inside(2, 4, 3, 'mmap', 65536);
    quiet.finish();
    expect(pipe.writes).toEqual([]);

    const forced = new Progress(3, 'replay t', pipe.stream, true, () => now);
    forced.inside(2, 4, 3, 'mmap', 65536);
    expect(pipe.writes).toEqual(['\rreplay t  op 2/4 (line 3 mmap): 65536 events so far\x1b[K']);
  });
});
