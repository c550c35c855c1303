// Presets by name. Each preset is a U-Net predicting the noise eps_theta(x_t, t[, c]), optionally
// conditioned on a class input c as the course's notebook 04 does it.
import type { Tensor } from '../tensor/index.js';
import type { Module } from '../nn/index.js';
import { ArgumentError, cat, tidy } from '../tensor/index.js';
import { Dli02UNet, DLI02_DEFAULTS, type Dli02Config } from './dli02.js';
import { Dli03UNet, DLI03_DEFAULTS, type Dli03Config } from './dli03.js';
import { DdpmUNet, DDPM_DEFAULTS, type DdpmUNetConfig } from './ddpm-unet.js';

export { Dli02UNet, DLI02_DEFAULTS, type Dli02Config } from './dli02.js';
export { Dli03UNet, DLI03_DEFAULTS, type Dli03Config } from './dli03.js';
export { DdpmUNet, DDPM_DEFAULTS, type DdpmUNetConfig } from './ddpm-unet.js';

export const PRESETS = ['dli02', 'dli03', 'ddpm'] as const;
export type PresetName = (typeof PRESETS)[number];

export interface DiffusionUNet extends Module {
  /** Classes the model is conditioned on; 0 = unconditional (it then refuses a class input). */
  readonly numClasses: number;
  /**
   * x (B, C, S, S) float32, t (B,) int64, c (B, numClasses) float32: one-hot rows already multiplied by
   * the drop mask, a zero row meaning "no class" (notebook 04). A conditional model given no c treats
   * every row as "no class"; an unconditional one given a c throws.
   */
  forward(x: Tensor, t: Tensor, c?: Tensor | null): Tensor;
  /** An eval-only predictor with BatchNorm folded into the convolutions, where the preset has one. */
  foldedForInference?(): InferencePredictor;
  /** Floats per image of the model's widest activation, where it can outgrow malloc's mmap threshold. */
  readonly widestActivation?: number;
}

/**
 * glibc's mmap threshold as the `ddpm` command raises it (configureRuntime): a block above it is
 * mapped on allocation and unmapped on free, so every model call page-faults it in afresh. The ddpm
 * preset's DDIM step at batch 256 with guidance (512 rows) took 439,000 minor faults against 2,700
 * at batch 64 (README, Speed).
 */
const MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024;

/** Rows per model call in sampling: as many as keep the model's widest activation under the mmap threshold. */
export function inferenceRows(model: DiffusionUNet): number {
  return model.widestActivation ? Math.max(1, Math.floor(MMAP_THRESHOLD_BYTES / (4 * model.widestActivation))) : Infinity;
}

export interface InferencePredictor { forward(x: Tensor, t: Tensor, c?: Tensor | null): Tensor; dispose(): void }

/** The fastest eval-mode noise predictor for a model: BatchNorm-folded when possible (same outputs). */
export function inferencePredictor(model: DiffusionUNet): InferencePredictor {
  if (model.training) throw new ArgumentError('inferencePredictor: put the model in eval mode first (model.eval())');
  const inner = model.foldedForInference?.() ?? { forward: (x, t, c) => model.forward(x, t, c), dispose: () => {} };
  const rows = inferenceRows(model);
  // Every row is computed on its own (GroupNorm and attention are per image), so a large batch is
  // run in chunks of `rows`: the same outputs, without the mmap page faults.
  const forward = (x: Tensor, t: Tensor, c?: Tensor | null): Tensor => {
    const b = x.shape[0]!;
    if (b <= rows) return inner.forward(x, t, c);
    const size = Math.ceil(b / Math.ceil(b / rows)); // equal chunks: 512 rows at 167 a call run as 4 x 128
    const parts: Tensor[] = [];
    for (let i = 0; i < b; i += size) {
      const m = Math.min(size, b - i);
      parts.push(tidy(() => inner.forward(x.narrow(0, i, m), t.narrow(0, i, m), c ? c.narrow(0, i, m) : c)));
    }
    const out = cat(parts, 0); // (B, C, S, S)
    for (const p of parts) p.dispose();
    return out;
  };
  return { forward, dispose: () => inner.dispose() };
}

export interface ModelConfig {
  preset: PresetName;
  imageChannels: number;
  imageSize: number;
  T: number;
  /** Classes for class conditioning (Fashion-MNIST: 10); 0 or absent = unconditional. */
  numClasses?: number;
  /**
   * Learned reverse variances (Nichol & Dhariwal 2021, section 3.1): the output has 2C channels, the
   * mean's C (eps, x0 or v) then C of v, which interpolates log beta_t and log beta~_t. Absent: false.
   */
  learnVariance?: boolean;
}

/** The channels of a model's output: C, or 2C with a learned variance. */
export function outputChannels(c: Pick<ModelConfig, 'imageChannels' | 'learnVariance'>): number { return c.imageChannels * (c.learnVariance ? 2 : 1); }

export function createModel(c: ModelConfig): DiffusionUNet {
  const numClasses = c.numClasses ?? 0;
  const outChannels = outputChannels(c);
  switch (c.preset) {
    case 'dli02': {
      const cfg: Dli02Config = { ...DLI02_DEFAULTS, imageChannels: c.imageChannels, imageSize: c.imageSize, T: c.T, numClasses, outChannels };
      return new Dli02UNet(cfg);
    }
    case 'dli03': {
      const cfg: Dli03Config = { ...DLI03_DEFAULTS, imageChannels: c.imageChannels, imageSize: c.imageSize, T: c.T, numClasses, outChannels };
      return new Dli03UNet(cfg);
    }
    case 'ddpm': {
      const cfg: DdpmUNetConfig = { ...DDPM_DEFAULTS, imageChannels: c.imageChannels, imageSize: c.imageSize, T: c.T, numClasses, outChannels };
      return new DdpmUNet(cfg);
    }
    default:
      throw new ArgumentError(`unknown preset ${JSON.stringify(c.preset)}; expected one of ${PRESETS.join(', ')}`);
  }
}
