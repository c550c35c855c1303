// Seeded normal noise in plain TypeScript for the samplers that run on ONNX Runtime, so `ddpm sample
// --model` in Node and the web page in a browser draw the same numbers for the same seed.
// Philox4x32-10 (Salmon, Moraes, Dror & Shaw 2011, "Parallel Random Numbers: As Easy as 1, 2, 3",
// the generator of Random123, cuRAND and JAX) is counter-based: block i is a pure function of (seed,
// i), with no state to carry but the counter. Box-Muller turns each pair of uniforms into two normals.
// It does not reproduce libtorch's Mersenne Twister: the two engines draw different noise per seed.
import { ArgumentError } from '../tensor/check.js';

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9; // the golden ratio's key schedule (Salmon et al., section 4.2)
const W1 = 0xbb67ae85;

/** The high 32 bits of the 64-bit product of two uint32 (JavaScript numbers hold 53 bits, so split b). */
function mulHi(a: number, b: number): number {
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const lo = a * bLo; // < 2^48
  const hi = a * bHi; // < 2^48
  // a * b = hi * 2^16 + lo; its high word is floor((hi * 2^16 + lo) / 2^32).
  return Math.floor((hi + Math.floor(lo / 0x10000)) / 0x10000) >>> 0;
}

/** One Philox4x32-10 block: 10 rounds on counter c with key k; returns four uint32. */
export function philox4x32(c: readonly [number, number, number, number], k: readonly [number, number]): [number, number, number, number] {
  let [c0, c1, c2, c3] = c;
  let [k0, k1] = k;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulHi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulHi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

/** A uint32 to a uniform in (0, 1): (u + 1/2) / 2^32, never 0, so log(u) is finite. */
const uniform = (u: number): number => (u + 0.5) / 4294967296;

/**
 * Normal noise from a seed: each call to randn continues where the last one stopped (a fresh
 * block each time), so a sampling run draws x_T and then each step's noise in order.
 */
export class PhiloxNormal {
  readonly #key: [number, number];
  #block = 0;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new ArgumentError(`noise: the seed must be an integer in [0, 2^53), got ${seed}`);
    this.#key = [seed >>> 0, Math.floor(seed / 4294967296) >>> 0];
  }

  /** n standard normals (Box-Muller on consecutive uniform pairs), as float32. */
  randn(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 4) {
      const b = this.#block++;
      const [u0, u1, u2, u3] = philox4x32([b >>> 0, Math.floor(b / 4294967296) >>> 0, 0, 0], this.#key);
      const r0 = Math.sqrt(-2 * Math.log(uniform(u0)));
      const r1 = Math.sqrt(-2 * Math.log(uniform(u2)));
      const a0 = 2 * Math.PI * uniform(u1);
      const a1 = 2 * Math.PI * uniform(u3);
      const z = [r0 * Math.cos(a0), r0 * Math.sin(a0), r1 * Math.cos(a1), r1 * Math.sin(a1)];
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = z[j]!;
    }
    return out;
  }
}
