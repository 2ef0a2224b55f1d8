// Seeded generators shared by the fuzz tests: the same seed gives the same cases, so a failure printed with its seed
// and case number can be replayed (FUZZ_SEED=<seed>).
import { randomInt } from 'node:crypto';

/** The run's seed: FUZZ_SEED when set (a replay), else a fresh one. */
export function fuzzSeed(): number {
  const env = process.env.FUZZ_SEED;
  return env !== undefined && env !== '' ? Number(env) >>> 0 : randomInt(1, 2 ** 31);
}

/** sfc32: small, fast, and good enough that case kinds are not correlated. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = seed >>> 0;
    for (let i = 0; i < 15; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** 0 ≤ n < max */
  int(max: number): number { return max <= 0 ? 0 : Math.floor((this.u32() / 2 ** 32) * max); }
  range(min: number, max: number): number { return min + this.int(max - min + 1); }
  chance(p: number): boolean { return this.u32() / 2 ** 32 < p; }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]!; }
  /** A length skewed towards small values, now and then up to max. */
  size(max: number): number { return this.chance(0.8) ? this.int(Math.min(max, 32) + 1) : this.int(max + 1); }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }

  /** A string from the classes that break parsers: ASCII, controls, NUL, multi-byte, astral, lone surrogates. */
  text(max = 40): string {
    const n = this.size(max);
    let s = '';
    for (let i = 0; i < n; i++) {
      switch (this.int(10)) {
        case 0: s += String.fromCharCode(this.int(0x20)); break;
        case 1: s += String.fromCharCode(0x80 + this.int(0x780)); break;
        case 2: s += String.fromCodePoint(0x1f300 + this.int(0x300)); break;
        case 3: s += String.fromCharCode(0xd800 + this.int(0x800)); break; // lone surrogate
        case 4: s += this.pick(['"', '\\', '/', '\u2028', '\u202e', '\ufeff', '\uffff', '%', '{', '}', '$', '..', '\n']); break;
        default: s += String.fromCharCode(0x20 + this.int(0x5f));
      }
    }
    return s;
  }

  /** Any JSON value, nested at most `depth` deep. */
  json(depth = 3): unknown {
    switch (this.int(depth > 0 ? 10 : 7)) {
      case 0: return null;
      case 1: return this.chance(0.5);
      case 2: return this.pick([0, -1, 1, 2 ** 53 + 1, -(2 ** 63), 1e308, -1e-308, 0.5, 65536, 4294967296]);
      case 3: return this.int(1 << 30) - (1 << 29);
      case 4: return this.pick(['', ' ', 'null', 'true', '0', '10.0.0.1', '10.0.0.0/8', '::1', 'global/10.0.0.0-8', 'com.docker.network.gateway']);
      case 5: case 6: return this.text();
      case 7: case 8: {
        const o: Record<string, unknown> = {};
        for (let i = this.int(5); i > 0; i--) {
          const k = this.chance(0.2) ? this.pick(['__proto__', 'constructor', 'toString', 'hasOwnProperty']) : this.text(12);
          // defineProperty: an own "__proto__" key, as JSON.parse makes it (assignment would set the prototype).
          Object.defineProperty(o, k, { value: this.json(depth - 1), enumerable: true, writable: true, configurable: true });
        }
        return o;
      }
      default: return Array.from({ length: this.int(5) }, () => this.json(depth - 1));
    }
  }
}

/** `[[[…]]]` or `{"a":{"a":…}}` nested `depth` deep. */
export function deep(depth: number, object: boolean): string {
  return object ? `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}` : `${'['.repeat(depth)}${']'.repeat(depth)}`;
}
