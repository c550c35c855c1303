// What the commands that evaluate a trained run share: opening it for inference, the evaluation
// images it is measured on, and a progress line for long evaluations.
import type { Command } from 'commander';
import { openDataset, datasetSpec } from '../data/dataset.js';
import { runObjective, runNumClasses, runLearnVariance, type RunConfig } from '../train/config.js';
import { loadRun, type LoadedRun } from '../train/checkpoint.js';
import { inferencePredictor, type InferencePredictor } from '../models/index.js';
import { type Tensor, setNumThreads, tidy, keep } from '../tensor/index.js';
import type { ConditionalModelFn } from '../samplers/index.js';
import { quantize8 } from '../eval/reference.js';
import { RUN_OPTIONS as R } from '../samplers/run-options.js';
import { declared, defaultThreads } from './args.js';

export interface RunFlags { run: string; checkpoint?: string; ema: boolean; threads: number; seed: number }

export function addRunOptions(c: Command): Command {
  return c
    .addOption(declared(R.run).makeOptionMandatory())
    .addOption(declared(R.checkpoint))
    .addOption(declared(R.ema))
    .addOption(declared(R.threads, { default: defaultThreads() }))
    .addOption(declared(R.seed, { help: 'seed of the noise', default: 0 }));
}

export interface OpenRun extends LoadedRun {
  predictor: InferencePredictor; fn: ConditionalModelFn; numClasses: number; objective: ReturnType<typeof runObjective>;
  /** The model's output has 2C channels, the second C its learned variance (--learn-variance). */
  learnVariance: boolean;
}

export function openRun(f: RunFlags): OpenRun {
  setNumThreads(f.threads);
  const loaded = loadRun(f.run, f.checkpoint, { ema: f.ema });
  const predictor = inferencePredictor(loaded.model);
  return { ...loaded, predictor, fn: (x, t, c) => predictor.forward(x, t, c), numClasses: runNumClasses(loaded.config), objective: runObjective(loaded.config), learnVariance: runLearnVariance(loaded.config) };
}

/** The first n evaluation images of a run (8-bit levels in [-1, 1]) and their labels: Fashion-MNIST's test split, or the run's image folder. */
export function evalImages(config: RunConfig, n: number, data?: string): { x: Tensor; labels: number[]; what: string } {
  const spec = { ...datasetSpec(config), limit: n };
  const d = openDataset(spec, 'test', data !== undefined ? { dir: data } : {});
  const got = d.images.shape[0]!;
  // Resizing (28 -> 16 for dli02) leaves the 8-bit grid; the bound is of 8-bit images, so round back to it.
  const x = keep(tidy(() => quantize8(d.images)));
  const labels = d.labels ? d.labels.toArray() : new Array<number>(got).fill(0);
  d.images.dispose();
  d.labels?.dispose();
  if (spec.kind === 'folder') {
    if (got < n) process.stderr.write(`the image folder has ${got} images; using all of them\n`);
    return { x, labels, what: `the first ${got} images of ${d.dataDir} (the folder has no test split)` };
  }
  if (got < n) {
    x.dispose();
    throw new Error(`-n ${n} exceeds the ${got} images of the Fashion-MNIST test set`);
  }
  return { x, labels, what: `the first ${n} Fashion-MNIST test images at ${spec.imageSize}x${spec.imageSize}, 8-bit` };
}

/** A stderr line at every tenth of the work (long evaluations). */
export function progress(what: string): (done: number, total: number) => void {
  let last = -1;
  const t0 = performance.now();
  return (done, total) => {
    const tenth = Math.floor((10 * done) / total);
    if (tenth === last) return;
    last = tenth;
    const s = (performance.now() - t0) / 1000;
    process.stderr.write(`${what}: ${Math.round((100 * done) / total)}% (${s.toFixed(0)} s${done < total && done > 0 ? `, ~${((s * (total - done)) / done).toFixed(0)} s left` : ''})\n`);
  };
}
