// The denoiser on libtorch tensors, for callers that hold one-hot class rows (the visualisations,
// the tests): the network's output at (x_t, t) read as both predictions through prediction.ts, the
// one copy of guidance and x_0 processing the samplers use.
import { type Tensor, ArgumentError, cat, full, tensor, zeros, tidy } from '../tensor/index.js';
import type { Diffusion } from '../diffusion/index.js';
import type { Objective } from '../diffusion/objectives.js';
import { type Prediction, type X0Processing, type LearnedChannels, checkX0Processing, denoisedFrom, guidedCombine } from './prediction.js';

/**
 * A network's output for (x_t, t, c): t (B,) int64; c (B, numClasses) float one-hot rows, a zero row
 * meaning "no class" (the course's notebook 04), or null for an unconditional call. A function of
 * (x, t) alone (an unconditional model) fits this type too.
 */
export type ConditionalModelFn = (x: Tensor, t: Tensor, c: Tensor | null) => Tensor;

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
  /** The model's output has 2C channels, the second C a learned variance (Prediction.v). */
  learnVariance?: boolean;
}

export type Denoised = Prediction<Tensor>;

/** (x_t (B, C, H, W), integer t, class rows c (B, K) or null) -> the model's predictions. */
export type Denoise = (x: Tensor, t: number, c?: Tensor | null) => Denoised;

/** The model's raw output at (x, t, c), guided when c is given and w != 0 (one batched forward). */
export function guidedOutput(model: ConditionalModelFn, x: Tensor, t: number, c: Tensor | null, w: number, learned?: LearnedChannels<Tensor>): Tensor {
  return tidy(() => {
    const b = x.shape[0]!;
    if (c === null || w === 0) return model(x, full([b], t, { dtype: 'int64' }), c);
    // Notebook 04: double the batch, the second half with its class rows zeroed ("dropped"), one forward.
    const both = model(cat([x, x], 0), full([2 * b], t, { dtype: 'int64' }), cat([c, zeros(c.shape)], 0)); // (2B, C, H, W)
    return guidedCombine(both, b, true, w, learned);
  });
}

/** A denoiser over the model; its results live in the caller's scope. */
export function makeDenoiser(o: DenoiserOptions): Denoise {
  const processing = checkX0Processing(o.x0Processing ?? 'none');
  const w = o.guidance ?? 0;
  if (!Number.isFinite(w)) throw new ArgumentError(`guidance weight must be a finite number, got ${w}`);
  return (x, t, c = null) => tidy(() => {
    o.diffusion.coefs(t); // refuses a t outside the schedule before the model runs
    const learned = o.learnVariance ? { channels: x.shape[1]!, cat } : undefined;
    return denoisedFrom(o.diffusion.terms, o.objective, processing, guidedOutput(o.model, x, t, c, w, learned), x, t, o.learnVariance ?? false);
  });
}
