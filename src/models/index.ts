// Presets by name. Each preset is a U-Net predicting the noise eps_theta(x_t, t).
import type { Tensor } from '../tensor/index.js';
import type { Module } from '../nn/index.js';
import { ArgumentError } from '../tensor/index.js';
import { Dli02UNet, DLI02_DEFAULTS, type Dli02Config } from './dli02.js';

export { Dli02UNet, DLI02_DEFAULTS, type Dli02Config } from './dli02.js';

export const PRESETS = ['dli02'] as const;
export type PresetName = (typeof PRESETS)[number];

export interface DiffusionUNet extends Module {
  forward(x: Tensor, t: Tensor): Tensor;
  /** An eval-only predictor with BatchNorm folded into the convolutions, where the preset has one. */
  foldedForInference?(): InferencePredictor;
}

export interface InferencePredictor { forward(x: Tensor, t: Tensor): Tensor; dispose(): void }

/** The fastest eval-mode noise predictor for a model: BatchNorm-folded when possible (same outputs). */
export function inferencePredictor(model: DiffusionUNet): InferencePredictor {
  if (model.training) throw new ArgumentError('inferencePredictor: put the model in eval mode first (model.eval())');
  return model.foldedForInference?.() ?? { forward: (x, t) => model.forward(x, t), dispose: () => {} };
}

export interface ModelConfig { preset: PresetName; imageChannels: number; imageSize: number; T: number }

export function createModel(c: ModelConfig): DiffusionUNet {
  switch (c.preset) {
    case 'dli02': {
      const cfg: Dli02Config = { ...DLI02_DEFAULTS, imageChannels: c.imageChannels, imageSize: c.imageSize, T: c.T };
      return new Dli02UNet(cfg);
    }
    default:
      throw new ArgumentError(`unknown preset ${JSON.stringify(c.preset)}; expected one of ${PRESETS.join(', ')}`);
  }
}
