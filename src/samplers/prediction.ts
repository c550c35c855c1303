// What every sampler does with one model call, written once over the array interface: the batch
// classifier-free guidance runs (Ho & Salimans 2022, as the course's notebook 04: the batch doubled,
// its second half without classes), the guided output, its reading as both predictions (eps_hat,
// x0_hat) through diffusion/objectives.ts, and the x_0 processing of lucidrains'
// denoising-diffusion-pytorch. Tensor-free: ONNX Runtime and the web page run it on host arrays.
import { tidy } from '../tensor/scope.js';
import { ArgumentError } from '../tensor/check.js';
import type { NdArray } from '../tensor/ndarray.js';
import { type Objective, predictionsFromOutput, epsFromX0, x0FromEps } from '../diffusion/objectives.js';
import { type ScheduleTerms, coefsAt } from '../diffusion/schedule.js';
import type { ArrayOps } from './array.js';

/**
 * What is done to x0_hat before it is used:
 *   none:    as predicted (the course notebook);
 *   clip:    clamp to the data range [-1, 1] (Ho et al. 2020's sampler, lucidrains' clip_denoised);
 *   dynamic: dynamic thresholding (Saharia et al. 2022, "Imagen", section 2.3).
 */
export const X0_PROCESSINGS = ['none', 'clip', 'dynamic'] as const;
export type X0Processing = (typeof X0_PROCESSINGS)[number];

/** Saharia et al.'s percentile p: s is the p-quantile of |x0_hat| per sample. */
export const DYNAMIC_THRESHOLD_PERCENTILE = 0.995;

/**
 * Dynamic thresholding (Saharia et al. 2022, as lucidrains' `maybe_clip`): per sample
 * s = max(quantile(|x0|, p), 1), then x0 = clamp(x0, -s, s) / s, so a sample inside [-1, 1] is kept
 * as is and one that overshoots is pulled back into range instead of saturating.
 */
export function dynamicThreshold<A extends NdArray<A>>(x0: A, percentile = DYNAMIC_THRESHOLD_PERCENTILE): A {
  return tidy(() => {
    const b = x0.shape[0]!;
    const s = x0.reshape([b, -1]).abs().quantile(percentile, 1).clamp(1, null).reshape([b, ...new Array<number>(x0.rank - 1).fill(1)]); // (B, 1, 1, 1)
    return x0.maximum(s.neg()).minimum(s).div(s);
  });
}

function refuseX0Processing(processing: unknown): never {
  throw new ArgumentError(`x0 processing must be one of ${X0_PROCESSINGS.join(', ')}, got ${JSON.stringify(processing)}`);
}

export function checkX0Processing(processing: string): X0Processing {
  if (!(X0_PROCESSINGS as readonly string[]).includes(processing)) refuseX0Processing(processing);
  return processing as X0Processing;
}

export function processX0<A extends NdArray<A>>(x0: A, processing: X0Processing): A {
  switch (processing) {
    case 'none': return x0;
    case 'clip': return x0.clamp(-1, 1);
    case 'dynamic': return dynamicThreshold(x0);
    default: return refuseX0Processing(processing);
  }
}

/**
 * One network evaluation: x (B', C, H, W) at timestep t for every row, and one class index per row
 * (-1: no class) or null for an unconditional call. The ONNX file contract takes exactly this
 * (x_t, t, class_labels); the libtorch driver turns the labels into one-hot rows.
 */
export interface ModelCall<A> {
  x: A;
  t: number;
  labels: readonly number[] | null;
}

/** The call for (x, t, labels) with guidance w: the batch doubled, its second half "dropped" (-1), when guiding. */
export function guidedCall<A extends NdArray<A>>(ops: ArrayOps<A>, x: A, t: number, labels: readonly number[] | null, w: number): ModelCall<A> {
  if (labels === null || w === 0) return { x, t, labels };
  return { x: ops.cat([x, x], 0), t, labels: [...labels, ...new Array<number>(labels.length).fill(-1)] }; // (2B, C, H, W)
}

/** The guided output from the call's output: (1 + w) out(x, c) - w out(x, no class) when guiding. */
export function guidedCombine<A extends NdArray<A>>(out: A, batch: number, guided: boolean, w: number, learned?: LearnedChannels<A>): A {
  if (!guided) return out;
  return tidy(() => {
    const cond = out.narrow(0, 0, batch);
    const uncond = out.narrow(0, batch, batch);
    // Guidance on the raw output is exact for every objective: eps and x0 are affine in it for fixed x_t.
    if (!learned) return cond.mul(1 + w).sub(uncond.mul(w));
    // A learned variance is not guided: the conditional model's own, as GLIDE's guided sampler (Nichol et al. 2022) keeps it.
    const c = learned.channels;
    return learned.cat([cond.narrow(1, 0, c).mul(1 + w).sub(uncond.narrow(1, 0, c).mul(w)), cond.narrow(1, c, c)], 1);
  });
}

/**
 * Classifier guidance (Dhariwal & Nichol 2021, section 4): a noise-aware classifier p_phi(y | x_t)
 * steers every image toward its class. The samplers take it through the prediction, whatever the
 * sampler (classifierGuidedEps), so the guided eps_hat and the x0_hat it implies drive every update.
 */
export interface ClassifierGuidance<A> {
  /** The guidance scale s (0: no guidance). */
  scale: number;
  /** The classes the classifier tells apart. */
  numClasses: number;
  /** The class each image is guided toward (one per image of the sampling). */
  labels: readonly number[];
  /** grad_x log p_phi(y | x_t, t) for x (B, C, H, W) at integer t and one class per row: (B, C, H, W). */
  gradLogProb(x: A, t: number, labels: readonly number[]): A;
}

/**
 * eps_tilde = eps_theta - s sqrt(1 - alphabar_t) grad_x log p_phi(y | x_t) (Dhariwal & Nichol 2021,
 * eq. 14 and Algorithm 2): the score of p(x_t) p(y | x_t)^s, since eps = -sqrt(1 - alphabar_t) grad log p(x_t).
 * For DDPM's ancestral step this is their Algorithm 1's mean shift s Sigma grad written through eps
 * (the shift it gives is beta_t / sqrt(alpha_t) s grad, Sigma = beta_t to first order); one formula
 * for every sampler. `sigma` is sqrt(1 - alphabar_t).
 */
export function classifierGuidedEps<A extends NdArray<A>>(eps: A, gradLogProb: A, scale: number, sigma: number): A {
  return tidy(() => eps.sub(gradLogProb.mul(scale * sigma)));
}

/** For a model with a learned variance: its image channels C (the output has 2C) and the engine's cat. */
export interface LearnedChannels<A> {
  channels: number;
  cat(parts: A[], dim: number): A;
}

/** What the model predicts at (x_t, t): the raw (guided) output and both predictions it implies. */
export interface Prediction<A> {
  /** The model output after guidance, before any x_0 processing. */
  out: A;
  /** eps_hat; re-derived from the processed x0_hat when that was clipped or thresholded. */
  eps: A;
  /** x0_hat after processing. */
  x0: A;
  /** A learned-variance model's v (B, C, H, W), its second C output channels (diffusion/variance.ts). */
  v?: A;
}

/**
 * The guided output `out` at (x, t) read as both predictions, with x0_hat processed. With
 * `learnVariance` the output has 2C channels: the first C are read for the objective, the second C are v.
 * With `classifier` (grad log p_phi(y | x_t) and its scale), eps_hat is classifier-guided
 * (classifierGuidedEps) after any classifier-free guidance of `out`, and x0_hat is the one that guided
 * eps implies at x_t.
 */
export function denoisedFrom<A extends NdArray<A>>(
  terms: ScheduleTerms, objective: Objective, processing: X0Processing, out: A, x: A, t: number, learnVariance = false, classifier?: { grad: A; scale: number } | null,
): Prediction<A> {
  const c = x.shape[1]!;
  const want = [x.shape[0]!, learnVariance ? 2 * c : c, ...x.shape.slice(2)];
  if (out.shape.join() !== want.join()) {
    const shape = `denoiser: the model's output at t=${t} has shape [${out.shape.join(', ')}]`;
    if (learnVariance) throw new ArgumentError(`${shape}, expected [${want.join(', ')}] (${c} channels of the mean and ${c} of the learned variance)`);
    const hint = out.shape[1] === 2 * c ? '; a 2C output is a learned-variance model: sample it with learnVariance (its run\'s model.learnVariance)' : '';
    throw new ArgumentError(`${shape}, expected x's [${want.join(', ')}]${hint}`);
  }
  return tidy(() => {
    const { a, s } = coefsAt(terms, t);
    const mean = learnVariance ? out.narrow(1, 0, c) : out;
    const v = learnVariance ? { v: out.narrow(1, c, c) } : {};
    let { eps, x0 } = predictionsFromOutput(objective, mean, x, a, s);
    if (classifier) {
      eps = classifierGuidedEps(eps, classifier.grad, classifier.scale, s);
      // Where alphabar = 0 (zero terminal SNR) x_t holds nothing of x_0 and the model's x0_hat stands.
      if (a > 0) x0 = x0FromEps(x, eps, a, s);
    }
    if (processing === 'none') return { out, eps, x0, ...v };
    // lucidrains' rederive_pred_noise: the noise consistent with the processed x0 at this x_t.
    const x0p = processX0(x0, processing);
    return { out, eps: epsFromX0(x, x0p, a, s), x0: x0p, ...v };
  });
}
