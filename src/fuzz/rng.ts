// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fuzzer's pseudo-random numbers: xoshiro128** 1.1 (Blackman and Vigna), seeded through splitmix32 so that
 * nearby seeds (1, 2, 3, ...) give unrelated streams. Pure 32-bit integer arithmetic (Math.imul, >>> 0), so
 * the same seed gives the same sequence on every platform and Node version; Math.random is never used.
 *
 * Ranges: `int(n)` is in [0, n), `between(lo, hi)` in [lo, hi] (both inclusive, as `last` elsewhere).
 */

/**
 * One step of the seed expander (splitmix32: a golden-ratio counter through the murmur3 finaliser);
 * returns the next state and its output.
 */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return [next, (z ^ (z >>> 16)) >>> 0];
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

/** A seeded xoshiro128** generator. `new Rng(7)` always yields the same numbers. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    let state = seed >>> 0;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(state);
      state = next;
      words.push(out);
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    // The all-zero state is a fixed point of xoshiro; splitmix32 never yields four zeros, but be sure.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A generator in the given raw state (not all zero): for checking against the reference vectors. */
  static fromState(s0: number, s1: number, s2: number, s3: number): Rng {
    const rng = new Rng(0);
    [rng.s0, rng.s1, rng.s2, rng.s3] = [s0 >>> 0, s1 >>> 0, s2 >>> 0, s3 >>> 0];
    if ((rng.s0 | rng.s1 | rng.s2 | rng.s3) === 0)
      throw new RangeError('Rng.fromState: the all-zero state is a fixed point');
    return rng;
  }

  /** The next 32-bit unsigned integer. */
  next(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** An integer in [0, n); n must be a positive safe integer below 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x1_0000_0000) throw new RangeError(`Rng.int: bad bound ${n}`);
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  /** An integer in [lo, hi], both inclusive. */
  between(lo: number, hi: number): number {
    if (hi < lo) throw new RangeError(`Rng.between: empty range [${lo}, ${hi}]`);
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Rng.pick: empty list');
    return items[this.int(items.length)] as T;
  }

  /** One value of a list of [weight, value] pairs (weights >= 0, at least one positive). */
  weighted<T>(choices: readonly (readonly [number, T])[]): T {
    const total = choices.reduce((sum, [w]) => sum + w, 0);
    if (!(total > 0)) throw new RangeError('Rng.weighted: no positive weight');
    let x = (this.next() / 0x1_0000_0000) * total;
    for (const [w, value] of choices) {
      if (x < w) return value;
      x -= w;
    }
    // Rounding at the very top of the range: the last positive choice.
    for (let i = choices.length - 1; i >= 0; i--) {
      const c = choices[i] as readonly [number, T];
      if (c[0] > 0) return c[1];
    }
    throw new RangeError('Rng.weighted: unreachable');
  }

  /** `n` random bytes as lower-case hex. */
  hexBytes(n: number): string {
    let out = '';
    for (let i = 0; i < n; i++) out += this.int(256).toString(16).padStart(2, '0');
    return out;
  }
}
