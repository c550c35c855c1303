// The simple objective of Ho et al. 2020 (eq. 14): || eps - eps_theta(x_t, t) ||^2, averaged.
import { type Tensor, type Generator, randint, mseLoss, tidy } from '../tensor/index.js';
import type { Diffusion } from './process.js';

export type NoisePredictor = (xt: Tensor, t: Tensor) => Tensor;

/** One training loss: t ~ U{0..T-1}, x_t ~ q(x_t | x_0), MSE between the noise and its prediction. */
export function simpleLoss(diffusion: Diffusion, model: NoisePredictor, x0: Tensor, generator?: Generator): Tensor {
  return tidy(() => {
    const t = randint(0, diffusion.T, [x0.shape[0]!], generator ? { generator } : {}); // (B,)
    const { xt, noise } = diffusion.qSample(x0, t, undefined, generator);
    return mseLoss(model(xt, t), noise);
  });
}
