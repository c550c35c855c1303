// The network a sampling command runs: the run's model, BatchNorm folded, optionally split across
// model replicas on their own threads (models/data-parallel.ts), with the thread counts it needs.
import { setNumThreads } from '../tensor/index.js';
import type { DiffusionUNet, InferencePredictor, ModelConfig } from '../models/index.js';
import { dataParallelPredictor, threadsPerReplica } from '../models/data-parallel.js';

/**
 * The predictor to sample with, on `threads` libtorch threads in all: one replica on all of them, or
 * `replicas` with threads / replicas each (at least one) until dispose().
 */
export function samplingPredictor(model: DiffusionUNet, config: ModelConfig, o: { threads: number; replicas: number }): InferencePredictor {
  if (o.replicas === 1) {
    setNumThreads(o.threads);
    return dataParallelPredictor(model, config, { replicas: 1 });
  }
  const perReplica = threadsPerReplica(o.threads, o.replicas);
  // This thread goes straight to one replica's threads: one that first ran on more libtorch threads
  // sampled its first 150 steps about 10% slower here (measured; the cause was not found).
  setNumThreads(perReplica);
  return dataParallelPredictor(model, config, { replicas: o.replicas, threadsPerReplica: perReplica });
}
