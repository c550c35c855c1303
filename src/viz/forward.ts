// The forward-noising strip of the notebook (seeds/001 "Sequential forward diffusion"): one image
// noised by q(x_t | x_0) at evenly spaced t, left (t = 0) to right (t = T-1).
import { type Tensor, Generator, full, tidy, stack } from '../tensor/index.js';
import type { Diffusion } from '../diffusion/index.js';

/** Evenly spaced timesteps from 0 to T-1, `count` of them. */
export function evenlySpaced(T: number, count: number): number[] {
  if (count <= 1) return [0];
  return Array.from({ length: count }, (_, i) => Math.round((i * (T - 1)) / (count - 1)));
}

/** x0 (C, H, W) -> (count, C, H, W): x_t at each t of `ts`, with one noise draw per column. */
export function forwardStrip(d: Diffusion, x0: Tensor, ts: number[], seed = 0): Tensor {
  const gen = new Generator(seed);
  return tidy(() => stack(ts.map((t) => d.qSample(x0.unsqueeze(0), full([1], t, { dtype: 'int64' }), undefined, gen).xt.squeeze(0)), 0));
}
