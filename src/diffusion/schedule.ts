// Noise schedules and every term derived from them, precomputed in float64 (JS numbers), named as
// in Ho et al. 2020 and lucidrains/denoising-diffusion-pytorch. Index t runs 0..T-1 as in the
// course notebook (seeds/001: `B = torch.linspace(start, end, T)`), so beta[0] is beta_1 of the paper.
import { ArgumentError } from '../tensor/check.js';

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
  /** SNR(t) = alphabar_t / (1 - alphabar_t) (Kingma et al. 2021) */
  readonly snr: Float64Array;
  /** log SNR(t) = log(alphabar_t) - log(1 - alphabar_t); -Infinity at a zero terminal SNR */
  readonly logSnr: Float64Array;
}

/** torch.linspace(start, end, T) in float64: the schedule of Ho et al. 2020 (1e-4 to 0.02 at T = 1000). */
export function linearBetas(T: number, start = 1e-4, end = 0.02): Float64Array {
  checkT(T);
  checkOrder('linear', start, end);
  const b = new Float64Array(T);
  for (let i = 0; i < T; i++) b[i] = T === 1 ? start : start + ((end - start) * i) / (T - 1);
  return b;
}

/** linspace(sqrt(start), sqrt(end), T)^2: diffusers' "scaled_linear" (Stable Diffusion's 0.00085 to 0.012). */
export function scaledLinearBetas(T: number, start = 0.00085, end = 0.012): Float64Array {
  checkT(T);
  checkOrder('scaled-linear', start, end);
  if (!(start >= 0)) throw new ArgumentError(`schedule: scaled-linear betaStart must be >= 0, got ${start}`);
  const a = Math.sqrt(start);
  const z = Math.sqrt(end);
  return Float64Array.from({ length: T }, (_, i) => (T === 1 ? a : a + ((z - a) * i) / (T - 1)) ** 2);
}

/** The largest beta of the cosine and sigmoid schedules (Nichol & Dhariwal 2021: "to prevent singularities near t = T"). */
export const MAX_BETA = 0.999;

/** Betas from an alphabar curve f on [0, 1]: beta_i = min(1 - f((i+1)/T) / f(i/T), 0.999), with f normalised by f(0). */
function betasFromAlphaBar(T: number, f: (u: number) => number): Float64Array {
  const f0 = f(0);
  return Float64Array.from({ length: T }, (_, i) => Math.min(Math.max(1 - (f((i + 1) / T) / f0) / (f(i / T) / f0), 0), MAX_BETA));
}

/** Improved DDPM's cosine schedule (Nichol & Dhariwal 2021, eq. 17): alphabar(t) = cos^2(((t/T + s)/(1 + s)) pi/2), s = 0.008. */
export function cosineBetas(T: number, s = 0.008): Float64Array {
  checkT(T);
  if (!(s >= 0 && Number.isFinite(s))) throw new ArgumentError(`schedule: cosine offset s must be a finite number >= 0, got ${s}`);
  return betasFromAlphaBar(T, (u) => Math.cos((((u + s) / (1 + s)) * Math.PI) / 2) ** 2);
}

/** The sigmoid schedule of Jabri et al. 2022 (as lucidrains' sigmoid_beta_schedule): start -3, end 3, tau 1. */
export function sigmoidBetas(T: number, start = -3, end = 3, tau = 1): Float64Array {
  checkT(T);
  if (!(start < end) || !Number.isFinite(start) || !Number.isFinite(end)) throw new ArgumentError(`schedule: sigmoid start must be below end, got start ${start} and end ${end}`);
  if (!(tau > 0 && Number.isFinite(tau))) throw new ArgumentError(`schedule: sigmoid tau must be a finite number > 0, got ${tau}`);
  const sig = (x: number): number => 1 / (1 + Math.exp(-x));
  const vStart = sig(start / tau);
  const vEnd = sig(end / tau);
  return betasFromAlphaBar(T, (u) => (-sig((u * (end - start) + start) / tau) + vEnd) / (vEnd - vStart));
}

/**
 * Lin et al. 2023 ("Common Diffusion Noise Schedules and Sample Steps are Flawed", Algorithm 1):
 * shift and scale sqrt(alphabar) so that alphabar_{T-1} = 0 (zero terminal SNR) and alphabar_0 is
 * unchanged. The last beta becomes exactly 1; a model for it must predict v or x_0, not noise.
 */
export function rescaleZeroTerminalSnr(betas: ArrayLike<number>): Float64Array {
  const T = betas.length;
  if (T < 2) throw new ArgumentError(`schedule: zero-terminal-SNR rescaling needs T >= 2, got ${T}`);
  const sqrtAb = new Float64Array(T);
  let prod = 1;
  for (let i = 0; i < T; i++) sqrtAb[i] = Math.sqrt(prod *= 1 - betas[i]!);
  const a0 = sqrtAb[0]!;
  const aT = sqrtAb[T - 1]!;
  const ab = sqrtAb.map((v) => ((v - aT) * a0) / (a0 - aT)).map((v) => v * v);
  return Float64Array.from({ length: T }, (_, i) => 1 - (i === 0 ? ab[0]! : ab[i]! / ab[i - 1]!));
}

function checkT(T: number): void {
  if (!Number.isInteger(T) || T < 1) throw new ArgumentError(`schedule: the number of timesteps T must be an integer >= 1, got ${T}`);
}

function checkOrder(kind: string, start: number, end: number): void {
  if (start > end) throw new ArgumentError(`schedule: ${kind} betas must not decrease, got betaStart ${start} > betaEnd ${end}`);
}

/**
 * Derives every term from the betas; refuses betas outside (0, 1). With `allowTerminalOne`, the
 * last beta may be exactly 1 (a zero-terminal-SNR schedule).
 */
export function scheduleFromBetas(betas: ArrayLike<number>, o: { allowTerminalOne?: boolean } = {}): ScheduleTerms {
  const T = betas.length;
  checkT(T);
  const map = (f: (i: number) => number): Float64Array => Float64Array.from({ length: T }, (_, i) => f(i));
  const beta = Float64Array.from(betas);
  beta.forEach((b, i) => {
    if (o.allowTerminalOne && i === T - 1 && b === 1) return;
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
    snr: map((i) => alphaBar[i]! / (1 - alphaBar[i]!)),
    logSnr: map((i) => Math.log(alphaBar[i]!) - Math.log1p(-alphaBar[i]!)),
  };
}

export const SCHEDULES = ['linear', 'scaled-linear', 'cosine', 'sigmoid', 'custom'] as const;
export type ScheduleKind = (typeof SCHEDULES)[number];

interface ScheduleCommon {
  /** Rescale to zero terminal SNR (Lin et al. 2023); needs the v or x0 objective. */
  zeroTerminalSnr?: boolean;
}
export interface LinearScheduleConfig extends ScheduleCommon { kind: 'linear'; T: number; betaStart: number; betaEnd: number }
export interface ScaledLinearScheduleConfig extends ScheduleCommon { kind: 'scaled-linear'; T: number; betaStart: number; betaEnd: number }
export interface CosineScheduleConfig extends ScheduleCommon { kind: 'cosine'; T: number; s: number }
export interface SigmoidScheduleConfig extends ScheduleCommon { kind: 'sigmoid'; T: number; start: number; end: number; tau: number }
export interface CustomScheduleConfig extends ScheduleCommon { kind: 'custom'; betas: number[] }
export type ScheduleConfig = LinearScheduleConfig | ScaledLinearScheduleConfig | CosineScheduleConfig | SigmoidScheduleConfig | CustomScheduleConfig;

/**
 * A `kind` schedule of T steps: `base`'s own parameters when it is of that kind, else the kind's
 * usual ones (Ho et al.'s linear 1e-4..0.02, Stable Diffusion's scaled-linear 0.00085..0.012,
 * Nichol & Dhariwal's cosine s = 0.008, sigmoid -3..3 with tau 1). Zero-terminal-SNR is not carried over.
 */
export function scheduleOfKind(kind: Exclude<ScheduleKind, 'custom'>, T: number, base?: ScheduleConfig): ScheduleConfig {
  switch (kind) {
    case 'linear':
    case 'scaled-linear': {
      const [betaStart, betaEnd] = base?.kind === kind ? [base.betaStart, base.betaEnd] : kind === 'linear' ? [1e-4, 0.02] : [0.00085, 0.012];
      return { kind, T, betaStart, betaEnd };
    }
    case 'cosine': return { kind, T, s: base?.kind === 'cosine' ? base.s : 0.008 };
    case 'sigmoid': return base?.kind === 'sigmoid' ? { kind, T, start: base.start, end: base.end, tau: base.tau } : { kind, T, start: -3, end: 3, tau: 1 };
  }
}

/** The betas a configuration describes (before any zero-terminal-SNR rescaling). */
export function scheduleBetas(c: ScheduleConfig): Float64Array {
  switch (c.kind) {
    case 'linear': return linearBetas(c.T, c.betaStart, c.betaEnd);
    case 'scaled-linear': return scaledLinearBetas(c.T, c.betaStart, c.betaEnd);
    case 'cosine': return cosineBetas(c.T, c.s);
    case 'sigmoid': return sigmoidBetas(c.T, c.start, c.end, c.tau);
    case 'custom': {
      if (!Array.isArray(c.betas)) throw new ArgumentError('schedule: a custom schedule needs a list of betas');
      for (let i = 1; i < c.betas.length; i++) {
        if (c.betas[i]! < c.betas[i - 1]!) throw new ArgumentError(`schedule: custom betas must not decrease, but beta at t=${i} (${c.betas[i]}) is below beta at t=${i - 1} (${c.betas[i - 1]})`);
      }
      return Float64Array.from(c.betas);
    }
    default: throw new ArgumentError(`schedule: unknown kind ${JSON.stringify((c as { kind: unknown }).kind)}; expected one of ${SCHEDULES.join(', ')}`);
  }
}

/** The number of timesteps of a configuration. */
export function scheduleLength(c: ScheduleConfig): number { return c.kind === 'custom' ? c.betas.length : c.T; }

export function makeSchedule(c: ScheduleConfig): ScheduleTerms {
  const betas = scheduleBetas(c);
  if (c.zeroTerminalSnr) return scheduleFromBetas(rescaleZeroTerminalSnr(betas), { allowTerminalOne: true });
  return scheduleFromBetas(betas);
}

/** a = sqrt(alphabar_t) and s = sqrt(1 - alphabar_t) at one integer t; t = -1 is the clean end (a = 1, s = 0). */
export function coefsAt(terms: ScheduleTerms, t: number): { a: number; s: number } {
  if (t === -1) return { a: 1, s: 0 };
  const ab = terms.alphaBar[t];
  if (!Number.isInteger(t) || ab === undefined) throw new ArgumentError(`diffusion: t=${t} is outside [-1, ${terms.T - 1}]`);
  return { a: Math.sqrt(ab), s: Math.sqrt(1 - ab) };
}
