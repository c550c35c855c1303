// The sample grid a run draws after each epoch: config.samples' count, seed, sampler and steps,
// through the fastest eval-mode predictor. A class-conditional run draws one row per class (the
// course's notebook 04 grids), conditional only (guidance 0), so the rows show what the labels learnt.
import { Generator, type Tensor, type Device } from '../tensor/index.js';
import type { Diffusion } from '../diffusion/index.js';
import { inferencePredictor, type DiffusionUNet } from '../models/index.js';
import { sample, modelOn, defaultX0Processing, resolveSampling, type SamplerOptions } from '../samplers/index.js';
import { runObjective, runNumClasses, runLearnVariance, type RunConfig } from './config.js';

/** The sampler options of a run's grids (without the model), checked by the samplers' own validation. */
export function gridSampling(diffusion: Diffusion, config: RunConfig): Omit<SamplerOptions, 'model'> & { nrow: number } {
  const { count, seed, variance, sampler = 'ddpm', steps } = config.samples;
  const c = config.model.imageChannels;
  const size = config.model.imageSize;
  const k = runNumClasses(config);
  const perRow = k > 0 ? Math.max(1, Math.ceil(count / k)) : Math.ceil(Math.sqrt(count));
  const n = k > 0 ? perRow * k : count;
  const objective = runObjective(config);
  return {
    diffusion,
    objective,
    shape: [n, c, size, size],
    sampler,
    ...(steps !== undefined ? { steps } : {}),
    ...(sampler === 'ddpm' || sampler === 'pc' ? { variance } : {}),
    ...(runLearnVariance(config) ? { learnVariance: true } : {}),
    // As `ddpm sample`: none for eps (the notebook), clip to [-1, 1] for x0 and v.
    x0Processing: defaultX0Processing(objective),
    ...(k > 0 ? { numClasses: k, labels: Array.from({ length: n }, (_, i) => Math.floor(i / perRow)) } : {}),
    generator: new Generator(seed),
    nrow: perRow,
  };
}

/** Refuses a run whose grid settings the samplers would refuse, before the first epoch rather than after it. */
export function checkGridSampling(diffusion: Diffusion, config: RunConfig): void {
  const { nrow: _nrow, ...o } = gridSampling(diffusion, config);
  resolveSampling({ ...o, model: () => { throw new Error('unreachable'); } });
}

export function sampleGrid(model: DiffusionUNet, diffusion: Diffusion, config: RunConfig, device: Device = 'cpu'): { images: Tensor; nrow: number } {
  const { nrow, ...o } = gridSampling(diffusion, config);
  const predictor = inferencePredictor(model);
  try {
    return { images: sample({ ...o, model: modelOn((x, t, cond) => predictor.forward(x, t, cond), device) }), nrow };
  } finally {
    predictor.dispose();
  }
}
