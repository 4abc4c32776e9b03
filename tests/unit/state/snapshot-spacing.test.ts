import { describe, expect, it } from 'vitest';
import { DEFAULT_SPACING, SnapshotSpacing } from '../../../src/state/snapshot-spacing.js';
import { MemoryRecorder } from '../../../src/timetravel/source.js';
import { initialState } from '../../../src/state/state.js';

describe('SnapshotSpacing', () => {
  it('waits minEvents for the first snapshot, then as many events as the last snapshot had bytes per bytesPerEvent', () => {
    const s = new SnapshotSpacing({ minEvents: 100, maxEvents: 1000, bytesPerEvent: 10 });
    expect(s.due(99)).toBe(false);
    expect(s.due(100)).toBe(true);
    s.taken(100, 5000);
    expect(s.due(599)).toBe(false);
    expect(s.due(600)).toBe(true);
    s.taken(600, 10);
    expect(s.due(699)).toBe(false);
    expect(s.due(700)).toBe(true);
    s.taken(700, 1_000_000);
    expect(s.due(1699)).toBe(false);
    expect(s.due(1700)).toBe(true);
  });

  it('defaults to 1024..4096 events and 32 snapshot bytes per event', () => {
    expect(DEFAULT_SPACING).toEqual({ minEvents: 1024, maxEvents: 4096, bytesPerEvent: 32 });
  });

  it('refuses bounds that cannot be met', () => {
    expect(() => new SnapshotSpacing({ minEvents: 10, maxEvents: 5, bytesPerEvent: 1 })).toThrow(RangeError);
    expect(() => new SnapshotSpacing({ minEvents: 0, maxEvents: 5, bytesPerEvent: 1 })).toThrow(RangeError);
  });

  it('drives a MemoryRecorder: snapshots land where the spacing says', () => {
    const r = new MemoryRecorder(initialState(), {
      spacing: new SnapshotSpacing({ minEvents: 3, maxEvents: 4, bytesPerEvent: 1 }),
    });
    for (let i = 0; i < 12; i++) r.emit({ type: 'Warned', v: 1, fn: 'f', condition: 'c', objects: {} }, 0);
    expect(r.snapshots.map((s) => s.seq)).toEqual([3, 7, 11]);
  });
});
