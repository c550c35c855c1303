// The sample grid a run draws after each epoch: config.samples' count, seed, sampler and steps,
// through the fastest eval-mode predictor. A class-conditional run draws one row per class (the
// course's notebook 04 grids), conditional only (guidance 0), so the rows show what the labels learnt.
import { Generator, type Tensor } from '../tensor/index.js';
import type { Diffusion } from '../diffusion/index.js';
import { inferencePredictor, type DiffusionUNet } from '../models/index.js';
import { sample } from '../samplers/index.js';
import { runObjective, runNumClasses, type RunConfig } from './config.js';

export function sampleGrid(model: DiffusionUNet, diffusion: Diffusion, config: RunConfig): { images: Tensor; nrow: number } {
  const { count, seed, variance, sampler = 'ddpm', steps } = config.samples;
  const c = config.model.imageChannels;
  const size = config.model.imageSize;
  const k = runNumClasses(config);
  const perRow = k > 0 ? Math.max(1, Math.ceil(count / k)) : Math.ceil(Math.sqrt(count));
  const n = k > 0 ? perRow * k : count;
  const predictor = inferencePredictor(model);
  try {
    const images = sample({
      model: (x, t, cond) => predictor.forward(x, t, cond),
      diffusion,
      objective: runObjective(config),
      shape: [n, c, size, size],
      sampler,
      ...(steps !== undefined ? { steps } : {}),
      ...(sampler === 'ddpm' || sampler === 'pc' ? { variance } : {}),
      ...(k > 0 ? { numClasses: k, labels: Array.from({ length: n }, (_, i) => Math.floor(i / perRow)) } : {}),
      generator: new Generator(seed),
    });
    return { images, nrow: perRow };
  } finally {
    predictor.dispose();
  }
}
