// DDIM (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", eq. 12):
//   x_prev = sqrt(alphabar_prev) x0_hat + sqrt(1 - alphabar_prev - sigma^2) eps_hat + sigma z,
//   sigma  = eta sqrt((1 - alphabar_prev) / (1 - alphabar_t)) sqrt(1 - alphabar_t / alphabar_prev) (eq. 16).
// eta = 0 is deterministic given x_T; eta = 1 is DDPM's posterior variance on the same steps.
// tPrev is the next entry of the step list (Song et al.'s reference code, `seq_next`); the last step
// goes to alphabar_prev = 1 (diffusers' set_alpha_to_one), so it returns x0_hat. diffusers instead
// takes tPrev = t - T // K, which is the same list for leading and trailing spacing when K divides T.
import * as z from 'zod';
import { tidy } from '../tensor/scope.js';
import { ArgumentError } from '../tensor/check.js';
import { refusal } from '../options/declare.js';
import type { NdArray, NoiseLike } from './array.js';
import type { PlannedStep } from './step.js';

/** eta's range (eq. 16): 0 is deterministic DDIM, 1 DDPM's posterior variance. The --eta declaration (options.ts) is this schema. */
export const ETA = z.number().min(0).max(1);

export function checkEta(eta: number): number {
  const r = refusal(ETA, eta, 'ddim: eta');
  if (r !== null) throw new ArgumentError(`${r} (0: deterministic DDIM, 1: DDPM's posterior variance)`);
  return eta;
}

export function ddimSigma(p: PlannedStep, eta: number): number {
  return eta * Math.sqrt((1 - p.abPrev) / (1 - p.abT)) * Math.sqrt(1 - p.abT / p.abPrev);
}

export function ddimStep<A extends NdArray<A>>(p: PlannedStep, eps: A, x0: A, eta: number, noise: NoiseLike<A>): { x: A; mean: A; sigma: number } {
  const sigma = ddimSigma(p, eta);
  // max(0, .) only guards rounding: sigma^2 <= 1 - alphabar_prev for eta <= 1.
  const dir = Math.sqrt(Math.max(0, 1 - p.abPrev - sigma * sigma)); // sqrt(1 - alphabar_prev - sigma^2)
  return tidy(() => {
    const mean = x0.mul(Math.sqrt(p.abPrev)).add(eps.mul(dir));
    const x = sigma === 0 ? mean : mean.add(noise(x0).mul(sigma));
    return { x, mean, sigma };
  });
}
