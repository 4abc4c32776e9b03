import { describe, expect, it } from 'vitest';

import { Rng } from '../../../src/fuzz/rng.js';

describe('Rng (xoshiro128**)', () => {
  it('matches the reference implementation from state {1, 2, 3, 4}', () => {
    const rng = Rng.fromState(1, 2, 3, 4);
    expect([rng.next(), rng.next(), rng.next(), rng.next(), rng.next(), rng.next()]).toEqual([
      11520, 0, 5927040, 70819200, 2031721883, 1637235492,
    ]);
  });

  it('refuses the all-zero state, a fixed point of the generator', () => {
    expect(() => Rng.fromState(0, 0, 0, 0)).toThrow('all-zero state');
  });

  it('gives seed 1 the same stream every time', () => {
    const a = new Rng(1);
    const b = new Rng(1);
    const first = [a.next(), a.next(), a.next(), a.next()];
    expect(first).toEqual([2442144158, 3238099751, 3819917871, 2104621829]);
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual(first);
  });

  it('gives neighbouring seeds unrelated streams', () => {
    expect([new Rng(0).next(), new Rng(0).next()]).toEqual([3809008728, 3809008728]);
    expect(new Rng(2).next()).not.toBe(new Rng(1).next());
  });

  it('draws ints, ranges, coins, picks and bytes from seed 42 as pinned', () => {
    const rng = new Rng(42);
    expect([rng.int(10), rng.int(10), rng.int(10)]).toEqual([6, 1, 1]);
    expect(rng.between(5, 7)).toBe(7);
    expect(rng.chance(0.5)).toBe(true);
    expect(rng.pick(['a', 'b', 'c'])).toBe('a');
    expect(rng.hexBytes(4)).toBe('0342e153');
  });

  it('keeps int(n) in [0, n) and between(lo, hi) in [lo, hi]', () => {
    const rng = new Rng(9);
    const ints = new Set<number>();
    const ranged = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      ints.add(rng.int(5));
      ranged.add(rng.between(-2, 2));
    }
    expect([...ints].sort()).toEqual([0, 1, 2, 3, 4]);
    expect([...ranged].sort((x, y) => x - y)).toEqual([-2, -1, 0, 1, 2]);
  });

  it('never picks a choice of weight 0 and follows the weights', () => {
    const rng = new Rng(3);
    const counts = [0, 0, 0];
    for (let i = 0; i < 1000; i++)
      counts[
        rng.weighted([
          [1, 0],
          [0, 1],
          [3, 2],
        ] as const)
      ]! += 1;
    expect(counts).toEqual([241, 0, 759]);
  });

  it('refuses empty ranges, bad bounds and all-zero weights', () => {
    const rng = new Rng(1);
    expect(() => rng.int(0)).toThrow('bad bound 0');
    expect(() => rng.int(1.5)).toThrow('bad bound 1.5');
    expect(() => rng.between(3, 2)).toThrow('empty range [3, 2]');
    expect(() => rng.pick([])).toThrow('empty list');
    expect(() => rng.weighted([[0, 'x']])).toThrow('no positive weight');
  });
});
