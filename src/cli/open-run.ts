// What the commands that evaluate a trained run share: opening it for inference, the evaluation
// images it is measured on, and a progress line for long evaluations.
import type { Command } from 'commander';
import { loadFashionMnist } from '../data/fashion-mnist.js';
import { prepareImages } from '../data/transforms.js';
import { runObjective, runNumClasses, type RunConfig } from '../train/config.js';
import { loadRun, type LoadedRun } from '../train/checkpoint.js';
import { loadTrainingImages } from '../train/trainer.js';
import { inferencePredictor, type InferencePredictor } from '../models/index.js';
import { type Tensor, setNumThreads, tidy, keep } from '../tensor/index.js';
import type { ConditionalModelFn } from '../samplers/index.js';
import { quantize8bit } from '../eval/nll.js';
import { defaultThreads, nonNegativeInt, positiveInt } from './args.js';

export interface RunFlags { run: string; checkpoint?: string; ema: boolean; threads: number; seed: number }

export function addRunOptions(c: Command): Command {
  return c
    .requiredOption('--run <dir>', 'run folder written by `ddpm train`')
    .option('--checkpoint <path>', 'a checkpoints/step-N folder or model.safetensors (default: the latest)')
    .option('--no-ema', 'use the trained weights, not their EMA, when the checkpoint has both')
    .option('--threads <n>', 'libtorch threads', positiveInt('--threads'), defaultThreads())
    .option('--seed <n>', 'seed of the noise', nonNegativeInt('--seed'), 0);
}

export interface OpenRun extends LoadedRun { predictor: InferencePredictor; fn: ConditionalModelFn; numClasses: number; objective: ReturnType<typeof runObjective> }

export function openRun(f: RunFlags): OpenRun {
  setNumThreads(f.threads);
  const loaded = loadRun(f.run, f.checkpoint, { ema: f.ema });
  const predictor = inferencePredictor(loaded.model);
  return { ...loaded, predictor, fn: (x, t, c) => predictor.forward(x, t, c), numClasses: runNumClasses(loaded.config), objective: runObjective(loaded.config) };
}

/** The first n evaluation images of a run (8-bit levels in [-1, 1]) and their labels: Fashion-MNIST's test split, or the run's image folder. */
export function evalImages(config: RunConfig, n: number, data?: string): { x: Tensor; labels: number[]; what: string } {
  const size = config.model.imageSize;
  if ((config.train.dataset ?? 'fashion-mnist') === 'folder') {
    const d = loadTrainingImages({ ...config, train: { ...config.train, limit: n } }, data !== undefined ? { dir: data } : {});
    const x = keep(tidy(() => quantize8bit(d.images)));
    const labels = d.labels ? d.labels.toArray() : new Array<number>(x.shape[0]!).fill(0);
    d.images.dispose();
    d.labels?.dispose();
    if (x.shape[0]! < n) process.stderr.write(`the image folder has ${x.shape[0]} images; using all of them\n`);
    return { x, labels, what: `the first ${x.shape[0]} images of ${d.dataDir} (the folder has no test split)` };
  }
  const ds = loadFashionMnist('test', data !== undefined ? { dir: data } : {});
  if (n > ds.count) throw new Error(`-n ${n} exceeds the ${ds.count} images of the Fashion-MNIST test set`);
  const px = ds.height * ds.width;
  // Resizing (28 -> 16 for dli02) leaves the 8-bit grid; the bound is of 8-bit images, so round back to it.
  const x = keep(tidy(() => quantize8bit(prepareImages(ds.images.subarray(0, n * px), { n, c: 1, h: ds.height, w: ds.width }, size))));
  return { x, labels: Array.from(ds.labels.subarray(0, n)), what: `the first ${n} Fashion-MNIST test images at ${size}x${size}, 8-bit` };
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
