// The denoiser every sampler calls: the network's output at (x_t, t) read as both predictions
// (eps_hat, x0_hat) through the one conversion layer (diffusion/objectives.ts), with classifier-free
// guidance and the x_0 processing of lucidrains' denoising-diffusion-pytorch applied on the way.
import { type Tensor, ArgumentError, cat, full, tensor, zeros, tidy } from '../tensor/index.js';
import { type Diffusion, type Objective, predictionsFromOutput, epsFromX0 } from '../diffusion/index.js';

/**
 * A network's output for (x_t, t, c): t (B,) int64; c (B, numClasses) float one-hot rows, a zero row
 * meaning "no class" (the course's notebook 04), or null for an unconditional call. A function of
 * (x, t) alone (an unconditional model) fits this type too.
 */
export type ConditionalModelFn = (x: Tensor, t: Tensor, c: Tensor | null) => Tensor;

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
export function dynamicThreshold(x0: Tensor, percentile = DYNAMIC_THRESHOLD_PERCENTILE): Tensor {
  return tidy(() => {
    const b = x0.shape[0]!;
    const s = x0.reshape([b, -1]).abs().quantile(percentile, 1).clamp(1, null).reshape([b, ...new Array<number>(x0.rank - 1).fill(1)]); // (B, 1, 1, 1)
    return x0.maximum(s.neg()).minimum(s).div(s);
  });
}

export function processX0(x0: Tensor, processing: X0Processing): Tensor {
  switch (processing) {
    case 'none': return x0;
    case 'clip': return x0.clamp(-1, 1);
    case 'dynamic': return dynamicThreshold(x0);
    default: throw new ArgumentError(`x0 processing must be one of ${X0_PROCESSINGS.join(', ')}, got ${JSON.stringify(processing)}`);
  }
}

/** Class indices to the (B, K) float32 one-hot rows the models take; -1 gives a zero row (no class). */
export function oneHot(labels: readonly number[], numClasses: number): Tensor {
  const data = new Float32Array(labels.length * numClasses);
  labels.forEach((l, i) => {
    if (!Number.isInteger(l) || l < -1 || l >= numClasses) throw new ArgumentError(`oneHot: label ${i} is ${l}; expected an integer in [0, ${numClasses - 1}] (or -1 for no class)`);
    if (l >= 0) data[i * numClasses + l] = 1;
  });
  return tensor(data, [labels.length, numClasses]);
}

export interface DenoiserOptions {
  model: ConditionalModelFn;
  diffusion: Diffusion;
  objective: Objective;
  x0Processing?: X0Processing;
  /**
   * Classifier-free guidance weight w (Ho & Salimans 2022) as notebook 04 writes it:
   * out = (1 + w) out(x, c) - w out(x, no class). 0: the conditional output alone. Negative w is allowed
   * (notebook 04 shows w = -2 .. 2).
   */
  guidance?: number;
}

/** What the model predicts at (x_t, t): the raw (guided) output and both predictions it implies. */
export interface Denoised {
  /** The model output after guidance, before any x_0 processing. */
  out: Tensor;
  /** eps_hat; re-derived from the processed x0_hat when that was clipped or thresholded. */
  eps: Tensor;
  /** x0_hat after processing. */
  x0: Tensor;
}

/** (x_t (B, C, H, W), integer t, class rows c (B, K) or null) -> the model's predictions. */
export type Denoise = (x: Tensor, t: number, c?: Tensor | null) => Denoised;

/** The model's raw output at (x, t, c), guided when c is given and w != 0 (one batched forward). */
export function guidedOutput(model: ConditionalModelFn, x: Tensor, t: number, c: Tensor | null, w: number): Tensor {
  return tidy(() => {
    const b = x.shape[0]!;
    if (c === null || w === 0) return model(x, full([b], t, { dtype: 'int64' }), c);
    // Notebook 04: double the batch, the second half with its class rows zeroed ("dropped"), one forward.
    const both = model(cat([x, x], 0), full([2 * b], t, { dtype: 'int64' }), cat([c, zeros(c.shape)], 0)); // (2B, C, H, W)
    const cond = both.narrow(0, 0, b);
    const uncond = both.narrow(0, b, b);
    // Guidance on the raw output is exact for every objective: eps and x0 are affine in it for fixed x_t.
    return cond.mul(1 + w).sub(uncond.mul(w));
  });
}

/** A denoiser over the model; its results live in the caller's scope. */
export function makeDenoiser(o: DenoiserOptions): Denoise {
  const processing = o.x0Processing ?? 'none';
  const w = o.guidance ?? 0;
  if (!(X0_PROCESSINGS as readonly string[]).includes(processing)) throw new ArgumentError(`x0 processing must be one of ${X0_PROCESSINGS.join(', ')}, got ${JSON.stringify(processing)}`);
  if (!Number.isFinite(w)) throw new ArgumentError(`guidance weight must be a finite number, got ${w}`);
  return (x, t, c = null) => tidy(() => {
    const { a, s } = o.diffusion.coefs(t);
    const out = guidedOutput(o.model, x, t, c, w);
    if (out.shape.join() !== x.shape.join()) throw new ArgumentError(`denoiser: the model's output at t=${t} has shape [${out.shape.join(', ')}], expected x's [${x.shape.join(', ')}]`);
    const { eps, x0 } = predictionsFromOutput(o.objective, out, x, a, s);
    if (processing === 'none') return { out, eps, x0 };
    // lucidrains' rederive_pred_noise: the noise consistent with the processed x0 at this x_t.
    const x0p = processX0(x0, processing);
    return { out, eps: epsFromX0(x, x0p, a, s), x0: x0p };
  });
}
