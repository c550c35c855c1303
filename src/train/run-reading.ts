// What sampling and the models read of a run's config: its objective, learned variance, classes and its
// own sampler. Types only are imported, so the exported page (onnxruntime-web, no libtorch) fills in a
// model's defaults with the same functions as `ddpm sample`.
import type { RunConfig } from './config.js';
import type { Objective } from '../diffusion/objectives.js';
import type { RunSampling } from '../samplers/options.js';

/** The objective of a run (eps for runs written before objectives existed). */
export function runObjective(c: RunConfig): Objective { return c.objective ?? 'eps'; }

/**
 * What the samplers need to know of a run to fill in its defaults (samplers/options.ts). A distilled
 * run's checkpoint at `step` samples at its own round's step count (round r ends at step (r + 1) x iterations).
 */
export function runSampling(c: RunConfig, step?: number | null): RunSampling {
  const { sampler, variance } = c.samples;
  const d = c.distill;
  const steps = d && step ? d.rounds[Math.min(Math.floor((step - 1) / d.iterations), d.rounds.length - 1)] : c.samples.steps;
  return { T: c.model.T, objective: runObjective(c), grid: { ...(sampler ? { sampler } : {}), ...(steps !== undefined ? { steps } : {}), variance }, learnVariance: runLearnVariance(c) };
}

/** Whether a run's model learned its reverse variance (--learn-variance; absent in older runs: no). */
export function runLearnVariance(c: RunConfig): boolean { return c.model.learnVariance ?? false; }

/** The number of classes a run's model is conditioned on (0: unconditional). */
export function runNumClasses(c: RunConfig): number { return c.model.numClasses ?? 0; }
