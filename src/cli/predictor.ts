// The network a sampling command runs: the run's model, BatchNorm folded, optionally split across
// model replicas on their own threads (models/data-parallel.ts), with the thread counts it needs.
import { setNumThreads, setBlasThreads } from '../tensor/index.js';
import type { DiffusionUNet, InferencePredictor, ModelConfig } from '../models/index.js';
import { dataParallelPredictor } from '../models/data-parallel.js';
import { positiveInt } from './args.js';

export const REPLICAS_HELP = 'split each sampling batch across N model replicas, one thread each when --threads allows (data parallel: the same images up to float rounding, faster on 2+ cores)';
export const parseReplicas = positiveInt('--replicas');

/**
 * The predictor to sample with, on `threads` libtorch threads in all: one replica on all of them, or
 * `replicas` with threads / replicas each (at least one) until dispose().
 */
export function samplingPredictor(model: DiffusionUNet, config: ModelConfig, o: { threads: number; replicas: number }): InferencePredictor {
  // DESIGN.md: one model call on big batches is fastest with two OpenBLAS threads here.
  const blas = Math.min(2, o.threads);
  setNumThreads(o.threads);
  setBlasThreads(blas);
  if (o.replicas === 1) return dataParallelPredictor(model, config, { replicas: 1 });
  const perReplica = Math.max(1, Math.floor(o.threads / o.replicas));
  // Replicas call OpenBLAS at the same time, each on its own threads.
  setBlasThreads(perReplica);
  const p = dataParallelPredictor(model, config, { replicas: o.replicas, threadsPerReplica: perReplica });
  return { forward: (x, t, c) => p.forward(x, t, c), dispose: () => { p.dispose(); setBlasThreads(blas); } };
}
