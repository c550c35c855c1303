// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): the multistep second-order solver of
// the diffusion ODE in its data-prediction form, as diffusers' DPMSolverMultistepScheduler with
// algorithm_type "dpmsolver++", solver_order 2, solver_type "midpoint", lower_order_final and
// final_sigmas_type "zero". The exact choices:
//   - alpha_t = sqrt(alphabar_t), sigma_t = sqrt(1 - alphabar_t), lambda_t = log(alpha_t / sigma_t);
//   - K model timesteps round(linspace(0, T - 1, K + 1)) reversed without 0 (timesteps.ts), then one
//     more step to the clean image (alpha = 1, sigma = 0);
//   - the first step is first order (no earlier x0_hat), so is the last: with sigma_next = 0 it
//     returns x0_hat exactly; the steps between are second order with D1 = (m0 - m1) / r0;
//   - the x0_hat used is the processed one (clipped / thresholded), as diffusers' convert_model_output.
// exp(-h) is computed as (sigma_t alpha_s) / (alpha_t sigma_s), which stays finite at a zero terminal
// SNR (alpha_{T-1} = 0, lambda = -inf): it is 0 there, the first step gives alpha_t x0_hat + sigma_t x_T
// (x_T is pure noise), and the second step's D1 weight 1 / r0 is 0.
import { tidy } from '../tensor/scope.js';
import type { NdArray } from './array.js';
import type { PlannedStep } from './step.js';

function alphaSigma(ab: number): { alpha: number; sigma: number; lambda: number } {
  const alpha = Math.sqrt(ab);
  const sigma = Math.sqrt(1 - ab);
  return { alpha, sigma, lambda: Math.log(alpha) - Math.log(sigma) };
}

/**
 * One DPM-Solver++(2M) step from p.t to p.tPrev. `m1` and `abLast` are the previous step's x0_hat and
 * alphabar (null at the first step, which is then first order).
 */
export function dpmSolver2mStep<A extends NdArray<A>>(p: PlannedStep, x: A, m0: A, m1: A | null, abLast: number | null): { x: A; order: 1 | 2 } {
  if (p.tPrev < 0) return { x: tidy(() => m0.clone()), order: 1 }; // sigma_next = 0: x_0 = x0_hat
  const s = alphaSigma(p.abT);
  const n = alphaSigma(p.abPrev);
  const ratio = n.sigma / s.sigma; // sigma_t / sigma_s
  const expMinusH = (n.sigma * s.alpha) / (n.alpha * s.sigma); // exp(-(lambda_t - lambda_s))
  const c0 = n.alpha * (expMinusH - 1); // alpha_t (exp(-h) - 1)
  if (m1 === null || abLast === null) {
    // First order (DDIM with eta = 0 in data-prediction form): x_t = (sigma_t / sigma_s) x - alpha_t (e^-h - 1) x0_hat.
    return { x: tidy(() => x.mul(ratio).sub(m0.mul(c0))), order: 1 };
  }
  const h = n.lambda - s.lambda;
  const h0 = s.lambda - alphaSigma(abLast).lambda;
  const r0 = h0 / h;
  const c1 = (0.5 * c0) / r0; // 0.5 alpha_t (e^-h - 1) / r0; 0 when h0 is infinite (a zero-SNR previous step)
  // x_t = (sigma_t / sigma_s) x - alpha_t (e^-h - 1) D0 - 0.5 alpha_t (e^-h - 1) D1, D0 = m0, D1 = (m0 - m1) / r0.
  return { x: tidy(() => x.mul(ratio).sub(m0.mul(c0)).sub(m0.sub(m1).mul(c1))), order: 2 };
}
