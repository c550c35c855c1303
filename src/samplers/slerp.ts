// Spherical linear interpolation between two latents x_T (Shoemake 1985), the path DDIM's paper walks
// to show that its deterministic map x_T -> x_0 is smooth (Song, Meng & Ermon 2021, section 5.3 and
// Figure 6): theta = arccos(<a, b> / (|a| |b|)),
//   slerp(a, b; alpha) = sin((1 - alpha) theta) / sin(theta) a + sin(alpha theta) / sin(theta) b.
// A straight line between two Gaussian latents passes through points of smaller norm than either end
// (|x_T| concentrates near sqrt(d)), which the model never saw at t = T; the great circle does not.
// Tensor-free: the studio page can bundle it.
import { ArgumentError } from '../tensor/check.js';

/** Below this sin(theta) the ends are parallel to float64 rounding: slerp's limit there is the straight line. */
const PARALLEL_SIN = 1e-12;

/** The angle theta between a and b, and the two weights of every alpha in `alphas`. */
export function slerpWeights(a: ArrayLike<number>, b: ArrayLike<number>, alphas: readonly number[]): { theta: number; weights: [number, number][] } {
  if (a.length !== b.length) throw new ArgumentError(`slerp: the two latents have ${a.length} and ${b.length} values; expected the same shape`);
  if (a.length === 0) throw new ArgumentError('slerp: the latents are empty');
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    dot += x * y;
    aa += x * x;
    bb += y * y;
  }
  if (!(aa > 0) || !(bb > 0) || !Number.isFinite(dot)) throw new ArgumentError(`slerp: a latent is zero or not finite (|a|^2 = ${aa}, |b|^2 = ${bb}); the angle between them is undefined`);
  // Rounding can push the cosine a hair past +-1, where arccos is NaN.
  const theta = Math.acos(Math.min(1, Math.max(-1, dot / Math.sqrt(aa * bb))));
  const s = Math.sin(theta);
  if (s < PARALLEL_SIN && theta > Math.PI / 2) {
    throw new ArgumentError('slerp: the latents point in opposite directions (theta = pi), so no great circle between them is singled out; pick other seeds');
  }
  const weights = alphas.map((alpha): [number, number] => {
    if (!Number.isFinite(alpha)) throw new ArgumentError(`slerp: alpha must be a finite number, got ${alpha}`);
    // sin(k theta) / sin(theta) -> k as theta -> 0: the parallel case is the straight line.
    return s < PARALLEL_SIN ? [1 - alpha, alpha] : [Math.sin((1 - alpha) * theta) / s, Math.sin(alpha * theta) / s];
  });
  return { theta, weights };
}

/** `frames` evenly spaced alphas from 0 to 1, both ends included. */
export function frameAlphas(frames: number): number[] {
  if (!Number.isInteger(frames) || frames < 2) throw new ArgumentError(`slerp: frames must be an integer >= 2 (both ends and what lies between), got ${frames}`);
  return Array.from({ length: frames }, (_, i) => i / (frames - 1));
}

/**
 * The latents along the great circle from a (alpha 0) to b (alpha 1), one per alpha, as one
 * float32 array of alphas.length * a.length values. The ends are a and b exactly: their weights are
 * (1, 0) and (0, 1) in float64.
 */
export function slerp(a: ArrayLike<number>, b: ArrayLike<number>, alphas: readonly number[]): Float32Array {
  const { weights } = slerpWeights(a, b, alphas);
  const d = a.length;
  const out = new Float32Array(weights.length * d);
  weights.forEach(([wa, wb], f) => {
    for (let i = 0; i < d; i++) out[f * d + i] = wa * a[i]! + wb * b[i]!;
  });
  return out;
}
