import { describe, expect, it } from 'vitest';

import { describeKey, failureOfError, failuresOf, FailureTally, keyOf } from '../../../src/fuzz/dedupe.js';
import type { Finding } from '../../../src/replay/replayer.js';

function finding(kind: string, fn: string, seq: number, op: number): Finding {
  return { kind, fn, detail: `${kind} at ${seq}`, seq, op, line: op + 1, objects: {} };
}

describe('failuresOf', () => {
  it('keeps the first finding of each (kind, fn), warns and violations merged in event order', () => {
    const violations = [
      finding('bad_free', 'pfn_reader_user_pin', 40, 7),
      finding('mmput_underflow', 'pfn_reader_user_destroy', 44, 7),
      finding('bad_free', 'pfn_reader_user_pin', 90, 9),
    ];
    const warns = [finding('warn', 'pfn_reader_user_pin', 12, 5), finding('warn', 'pfn_reader_user_pin', 41, 7)];
    expect(failuresOf({ violations, warns })).toEqual([
      { kind: 'warn', fn: 'pfn_reader_user_pin', detail: 'warn at 12', op: 5, line: 6 },
      { kind: 'bad_free', fn: 'pfn_reader_user_pin', detail: 'bad_free at 40', op: 7, line: 8 },
      { kind: 'mmput_underflow', fn: 'pfn_reader_user_destroy', detail: 'mmput_underflow at 44', op: 7, line: 8 },
    ]);
  });

  it('finds nothing in a clean replay', () => {
    expect(failuresOf({ violations: [], warns: [] })).toEqual([]);
  });
});

describe('failureOfError', () => {
  it('keys an exception by the function that threw it', () => {
    function ioasOfMissing(): never {
      throw new RangeError('ioas X does not exist');
    }
    let caught: unknown;
    try {
      ioasOfMissing();
    } catch (error) {
      caught = error;
    }
    expect(failureOfError(caught)).toEqual({
      kind: 'internal_error',
      fn: 'ioasOfMissing',
      detail: 'RangeError: ioas X does not exist',
      op: 0,
      line: 0,
    });
  });

  it('falls back to the error name when there is no stack', () => {
    const error = new TypeError('no stack');
    error.stack = '';
    expect(failureOfError(error).fn).toBe('TypeError');
    expect(failureOfError('a string').detail).toBe('Error: a string');
  });
});

describe('FailureTally', () => {
  it('counts traces per key, keeps the first sample, and lists keys in first-seen order', () => {
    const tally = new FailureTally<number>();
    expect(tally.add({ kind: 'warn', fn: 'a' }, 3)).toBe(true);
    expect(tally.add({ kind: 'bad_free', fn: 'b' }, 5)).toBe(true);
    expect(tally.add({ kind: 'warn', fn: 'a' }, 8)).toBe(false);
    expect(tally.add({ kind: 'warn', fn: 'b' }, 9)).toBe(true);
    expect(tally.size).toBe(3);
    expect(tally.list()).toEqual([
      { kind: 'warn', fn: 'a', count: 2, first: 3 },
      { kind: 'bad_free', fn: 'b', count: 1, first: 5 },
      { kind: 'warn', fn: 'b', count: 1, first: 9 },
    ]);
  });

  it('does not confuse keys whose parts concatenate alike', () => {
    expect(keyOf({ kind: 'a_b', fn: 'c' })).not.toBe(keyOf({ kind: 'a', fn: 'b_c' }));
  });
});

describe('describeKey', () => {
  it('names violations, WARNs and model errors as a reader expects', () => {
    expect(describeKey({ kind: 'bad_free', fn: 'pfn_reader_user_pin' })).toBe(
      'VIOLATION bad_free in pfn_reader_user_pin',
    );
    expect(describeKey({ kind: 'warn', fn: 'iopt_release_pages' })).toBe('WARN in iopt_release_pages');
    expect(describeKey({ kind: 'internal_error', fn: 'ioasOf' })).toBe('internal error of the model in ioasOf');
  });
});
