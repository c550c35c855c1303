// DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), with the reverse variance selectable:
//   notebook: sigma_t^2 = beta_{t-1}, as the course notebook's reverse_q writes it (seeds/001)
//   beta:     sigma_t^2 = beta_t, the paper's "fixed large" choice
//   posterior: sigma_t^2 = beta~_t, the paper's "fixed small" choice (the true posterior variance)
//   learned: Sigma_theta from the model's second C output channels v (Nichol & Dhariwal 2021, eq. 15):
//            log Sigma = frac log beta_t + (1 - frac) log beta~_t, frac = (v + 1) / 2, per element
//            (diffusion/variance.ts); only for a model trained with --learn-variance.
// No noise is added at the last step (t = 0) in all of them.
// With K < T steps it runs on the respaced schedule of improved-diffusion's SpacedDiffusion (Nichol &
// Dhariwal 2021, section 4): for the visited tau_1 < ... < tau_K, beta'_i = 1 - alphabar_{tau_i} /
// alphabar_{tau_{i-1}}, and the variances are read from beta' the same way (improved-diffusion's
// SpacedDiffusion interpolates the learned one between the respaced beta' and beta~' too).
import { tidy } from '../tensor/scope.js';
import { ArgumentError } from '../tensor/check.js';
import type { ScheduleTerms } from '../diffusion/schedule.js';
import { learnedLogVariance } from '../diffusion/variance.js';
import type { NdArray, NoiseLike } from './array.js';
import type { PlannedStep } from './step.js';

export const VARIANCES = ['notebook', 'beta', 'posterior', 'learned'] as const;
export type Variance = (typeof VARIANCES)[number];

/** The learned variance is the model's, per element: it has no one sigma per step. */
function refuseLearned(where: string): never {
  throw new ArgumentError(`${where}: the learned variance comes from the model's output (its second C channels), not from the schedule; pass the model's v to ancestralStep`);
}

export function checkVariance(variance: string): Variance {
  if (!(VARIANCES as readonly string[]).includes(variance)) throw new ArgumentError(`reverse variance must be one of ${VARIANCES.join(', ')}, got ${JSON.stringify(variance)}`);
  return variance as Variance;
}

export function reverseSigma(d: { terms: ScheduleTerms }, t: number, variance: Variance): number {
  if (t === 0) return 0;
  const { beta, posteriorVariance } = d.terms;
  switch (variance) {
    case 'notebook': return Math.sqrt(beta[t - 1]!);
    case 'beta': return Math.sqrt(beta[t]!);
    case 'posterior': return Math.sqrt(posteriorVariance[t]!);
    case 'learned': return refuseLearned('reverseSigma');
    default: throw new ArgumentError(`reverse variance must be one of ${VARIANCES.join(', ')}, got ${JSON.stringify(variance)}`);
  }
}

/** One reverse step p(x_{t-1} | x_t) in the notebook's form: mean 1/sqrt(alpha_t) (x_t - beta_t/sqrt(1-alphabar_t) eps), plus sigma_t z. */
export function ddpmStep<A extends NdArray<A>>(d: { terms: ScheduleTerms }, eps: A, xt: A, t: number, variance: Variance, noise: NoiseLike<A>): { x: A; mean: A; sigma: number } {
  const sigma = reverseSigma(d, t, variance);
  return tidy(() => {
    const mean = xt.sub(eps.mul(d.terms.predNoiseCoeff[t]!)).mul(d.terms.sqrtRecipAlpha[t]!);
    const x = sigma === 0 ? mean : mean.add(noise(xt).mul(sigma));
    return { x, mean, sigma };
  });
}

/** sigma of a (possibly respaced) step from t to tPrev; 0 at the last step. */
export function respacedSigma(p: PlannedStep, variance: Variance): number {
  if (p.tPrev < 0) return 0;
  const betaP = 1 - p.abT / p.abPrev; // beta'_t = 1 - alphabar_t / alphabar_tPrev
  switch (variance) {
    case 'notebook': return Math.sqrt(1 - p.abPrev / p.abPrevPrev); // beta' one step later, the notebook's beta_{t-1}
    case 'beta': return Math.sqrt(betaP);
    case 'posterior': return Math.sqrt((betaP * (1 - p.abPrev)) / (1 - p.abT)); // beta~' = beta' (1 - alphabar_tPrev) / (1 - alphabar_t)
    case 'learned': return refuseLearned('respacedSigma');
    default: throw new ArgumentError(`reverse variance must be one of ${VARIANCES.join(', ')}, got ${JSON.stringify(variance)}`);
  }
}

/**
 * The learned sigma of a (possibly respaced) step, elementwise: exp(log Sigma / 2) with log Sigma
 * between log beta' and log beta~' (learnedLogVariance). Only for tPrev >= 0: the last step adds no noise.
 */
export function learnedSigma<A extends NdArray<A>>(p: PlannedStep, v: A): A {
  const betaP = 1 - p.abT / p.abPrev;
  const logBetaTilde = Math.log((betaP * (1 - p.abPrev)) / (1 - p.abT)); // log beta~', > -inf for tPrev >= 0
  return tidy(() => learnedLogVariance(v, Math.log(betaP), logBetaTilde).mul(0.5).exp());
}

/**
 * One ancestral step in the posterior-mean form mu = coef1 x0_hat + coef2 x_t (Ho et al. 2020, eq. 7),
 * on the respaced schedule. It has no 1/sqrt(alpha) term, so it also runs at a zero terminal SNR
 * (alphabar_{T-1} = 0: coef2 = 0 there and x0_hat alone sets the mean).
 */
export function ancestralStep<A extends NdArray<A>>(p: PlannedStep, x: A, x0: A, variance: Variance, noise: NoiseLike<A>, v?: A): { x: A; mean: A; sigma: number } {
  if (variance === 'learned' && v === undefined) throw new ArgumentError('ancestralStep: the learned variance needs the model\'s v output (a model trained with --learn-variance)');
  const learned = variance === 'learned' && p.tPrev >= 0 ? learnedSigma(p, v!) : null;
  const sigma = variance === 'learned' ? 0 : respacedSigma(p, variance);
  const betaP = 1 - p.abT / p.abPrev;
  const coef1 = (betaP * Math.sqrt(p.abPrev)) / (1 - p.abT); // beta' sqrt(alphabar_tPrev) / (1 - alphabar_t)
  const coef2 = ((1 - p.abPrev) * Math.sqrt(p.abT / p.abPrev)) / (1 - p.abT); // (1 - alphabar_tPrev) sqrt(alpha') / (1 - alphabar_t)
  return tidy(() => {
    const mean = x0.mul(coef1).add(x.mul(coef2));
    if (learned !== null) {
      // StepResult's sigma is one number, for display: the learned sigma's mean over the batch's elements.
      const size = learned.shape.reduce((a, b) => a * b, 1);
      return { x: mean.add(noise(x).mul(learned)), mean, sigma: learned.reshape([size]).sum(0).item() / size };
    }
    const next = sigma === 0 ? mean : mean.add(noise(x).mul(sigma));
    return { x: next, mean, sigma };
  });
}
