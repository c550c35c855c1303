// Noise schedules and every term derived from them, precomputed in float64 (JS numbers), named as
// in Ho et al. 2020 and lucidrains/denoising-diffusion-pytorch. Index t runs 0..T-1 as in the
// course notebook (seeds/001: `B = torch.linspace(start, end, T)`), so beta[0] is beta_1 of the paper.
import { ArgumentError } from '../tensor/index.js';

export interface ScheduleTerms {
  readonly T: number;
  /** beta_t */
  readonly beta: Float64Array;
  /** alpha_t = 1 - beta_t */
  readonly alpha: Float64Array;
  /** alphabar_t = prod_{s<=t} alpha_s */
  readonly alphaBar: Float64Array;
  /** alphabar_{t-1}, with alphabar_{-1} = 1 */
  readonly alphaBarPrev: Float64Array;
  /** sqrt(alphabar_t): the signal coefficient of q(x_t | x_0) */
  readonly sqrtAlphaBar: Float64Array;
  /** sqrt(1 - alphabar_t): the noise coefficient of q(x_t | x_0) */
  readonly sqrtOneMinusAlphaBar: Float64Array;
  /** 1 / sqrt(alpha_t): the notebook's sqrt_a_inv */
  readonly sqrtRecipAlpha: Float64Array;
  /** 1 / sqrt(alphabar_t) */
  readonly sqrtRecipAlphaBar: Float64Array;
  /** sqrt(1 / alphabar_t - 1) */
  readonly sqrtRecipM1AlphaBar: Float64Array;
  /** beta_t / sqrt(1 - alphabar_t): the notebook's pred_noise_coeff */
  readonly predNoiseCoeff: Float64Array;
  /** beta~_t = beta_t (1 - alphabar_{t-1}) / (1 - alphabar_t): variance of q(x_{t-1} | x_t, x_0) */
  readonly posteriorVariance: Float64Array;
  /** log(beta~_t) with beta~_0 replaced by beta~_1 (it is 0 at t = 0) */
  readonly posteriorLogVarianceClipped: Float64Array;
  /** beta_t sqrt(alphabar_{t-1}) / (1 - alphabar_t): weight of x_0 in the posterior mean */
  readonly posteriorMeanCoef1: Float64Array;
  /** (1 - alphabar_{t-1}) sqrt(alpha_t) / (1 - alphabar_t): weight of x_t in the posterior mean */
  readonly posteriorMeanCoef2: Float64Array;
}

/** torch.linspace(start, end, T) in float64. */
export function linearBetas(T: number, start = 1e-4, end = 0.02): Float64Array {
  checkT(T);
  const b = new Float64Array(T);
  for (let i = 0; i < T; i++) b[i] = T === 1 ? start : start + ((end - start) * i) / (T - 1);
  return b;
}

function checkT(T: number): void {
  if (!Number.isInteger(T) || T < 1) throw new ArgumentError(`schedule: the number of timesteps T must be an integer >= 1, got ${T}`);
}

/** Derives every term from the betas; refuses betas outside (0, 1). */
export function scheduleFromBetas(betas: ArrayLike<number>): ScheduleTerms {
  const T = betas.length;
  checkT(T);
  const map = (f: (i: number) => number): Float64Array => Float64Array.from({ length: T }, (_, i) => f(i));
  const beta = Float64Array.from(betas);
  beta.forEach((b, i) => {
    if (!(b > 0 && b < 1)) throw new ArgumentError(`schedule: beta at t=${i} is ${b}; every beta must lie in (0, 1)`);
  });
  const alpha = map((i) => 1 - beta[i]!);
  const alphaBar = new Float64Array(T);
  let prod = 1;
  for (let i = 0; i < T; i++) alphaBar[i] = prod *= alpha[i]!;
  const alphaBarPrev = map((i) => (i === 0 ? 1 : alphaBar[i - 1]!));
  const posteriorVariance = map((i) => (beta[i]! * (1 - alphaBarPrev[i]!)) / (1 - alphaBar[i]!));
  return {
    T,
    beta,
    alpha,
    alphaBar,
    alphaBarPrev,
    sqrtAlphaBar: map((i) => Math.sqrt(alphaBar[i]!)),
    sqrtOneMinusAlphaBar: map((i) => Math.sqrt(1 - alphaBar[i]!)),
    sqrtRecipAlpha: map((i) => 1 / Math.sqrt(alpha[i]!)),
    sqrtRecipAlphaBar: map((i) => 1 / Math.sqrt(alphaBar[i]!)),
    sqrtRecipM1AlphaBar: map((i) => Math.sqrt(1 / alphaBar[i]! - 1)),
    predNoiseCoeff: map((i) => beta[i]! / Math.sqrt(1 - alphaBar[i]!)),
    posteriorVariance,
    posteriorLogVarianceClipped: map((i) => Math.log(i === 0 ? (T > 1 ? posteriorVariance[1]! : beta[0]!) : posteriorVariance[i]!)),
    posteriorMeanCoef1: map((i) => (beta[i]! * Math.sqrt(alphaBarPrev[i]!)) / (1 - alphaBar[i]!)),
    posteriorMeanCoef2: map((i) => ((1 - alphaBarPrev[i]!) * Math.sqrt(alpha[i]!)) / (1 - alphaBar[i]!)),
  };
}

export interface LinearScheduleConfig { kind: 'linear'; T: number; betaStart: number; betaEnd: number }
export type ScheduleConfig = LinearScheduleConfig;

export function makeSchedule(c: ScheduleConfig): ScheduleTerms {
  switch (c.kind) {
    case 'linear': return scheduleFromBetas(linearBetas(c.T, c.betaStart, c.betaEnd));
    default: throw new ArgumentError(`schedule: unknown kind ${JSON.stringify((c as { kind: unknown }).kind)}; expected "linear"`);
  }
}
