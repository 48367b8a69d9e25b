// Seeded randomness for data order: a small, fast PRNG (xoshiro128**) seeded through splitmix32, so the
// same seed gives the same sequence on every machine and Node version (no Math.random anywhere).

/** splitmix32 step: a good 32-bit mixer, used to expand seeds. */
function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/**
 * Combines integers (seed, epoch, rank, ...) into one 32-bit seed. Each part may be any safe integer
 * (high and low 32 bits both count); the order of the parts matters.
 */
export function deriveSeed(...parts: number[]): number {
  let h = 0x2545f491;
  for (const p of parts) {
    if (!Number.isSafeInteger(p)) throw new RangeError(`seed parts must be safe integers, got ${p}`);
    const lo = p >>> 0;
    const hi = Math.floor(p / 0x100000000) >>> 0;
    h = mix32(h ^ lo);
    h = mix32(h ^ hi ^ 0x85ebca6b);
  }
  return h;
}

/** FNV-1a 32-bit hash of a string's UTF-16 code units (stable content hash for splits and ids). */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Seeded PRNG (xoshiro128**). */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = deriveSeed(seed);
    this.a = s = mix32(s);
    this.b = s = mix32(s);
    this.c = s = mix32(s);
    this.d = mix32(s) | 1;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextU32() / 0x100000000;
  }

  /** Uniform integer in [lo, hi] (inclusive), without modulo bias. */
  int(lo: number, hi: number): number {
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || hi < lo) throw new RangeError(`bad integer range [${lo}, ${hi}]`);
    const span = hi - lo + 1;
    if (span > 0x100000000) throw new RangeError('integer range too wide');
    const limit = Math.floor(0x100000000 / span) * span;
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return lo + (x % span);
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty array');
    return items[this.int(0, items.length - 1)];
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A seeded permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, seed: number): number[] {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`permutation size must be a non-negative integer, got ${n}`);
  const order = Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/** A shuffled copy of `items`; the same seed always gives the same order. */
export function shuffle<T>(items: readonly T[], seed: number): T[] {
  return permutation(items.length, seed).map((i) => items[i]);
}
