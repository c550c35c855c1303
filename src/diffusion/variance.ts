// The learned reverse variance of Nichol & Dhariwal 2021 (section 3.1), the one formula the hybrid
// loss (loss.ts), the samplers (samplers/ddpm.ts) and the bound of `ddpm eval --nll` read.
// Tensor-free: the samplers run it on host arrays for ONNX Runtime and the web page.
import { tidy } from '../tensor/scope.js';
import type { NdArray } from '../tensor/ndarray.js';

/**
 * log Sigma_theta of a learned variance (Nichol & Dhariwal 2021, eq. 15; improved-diffusion's
 * LEARNED_RANGE): with frac = (v + 1) / 2, log Sigma = frac log beta_t + (1 - frac) log beta~_t, so
 * v = 1 gives "fixed large" and v = -1 "fixed small". v is the network's raw output, unclamped as
 * theirs is. logBeta and logBetaTilde are numbers (one t) or arrays broadcasting over v (one t per example);
 * logBetaTilde is the clipped one (posteriorLogVarianceClipped: beta~_1 at t = 0, where beta~ is 0).
 */
export function learnedLogVariance<A extends NdArray<A>>(v: A, logBeta: number | A, logBetaTilde: number | A): A {
  return tidy(() => {
    const frac = v.add(1).mul(0.5);
    return frac.mul(logBeta).add(frac.neg().add(1).mul(logBetaTilde));
  });
}
