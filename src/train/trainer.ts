// The training loop of the course notebook (seeds/001, "Complete training loop"): for each batch,
// t ~ U{0..T-1}, x_t ~ q(x_t | x_0), loss = MSE(eps, eps_theta(x_t, t)), Adam step. After each
// epoch: a sample grid and a checkpoint in the run folder.
import path from 'node:path';
import {
  Generator, tidy, noGrad, manualSeed, setNumThreads, setBlasThreads, type Tensor,
} from '../tensor/index.js';
import { Adam } from '../nn/index.js';
import { Diffusion, makeSchedule, simpleLoss } from '../diffusion/index.js';
import { createModel, type DiffusionUNet } from '../models/index.js';
import { ddpmSample, assertFinite } from '../samplers/index.js';
import { loadFashionMnist, type LocateOptions } from '../data/fashion-mnist.js';
import { prepareImages } from '../data/transforms.js';
import { BatchLoader, type LoaderPosition } from '../data/loader.js';
import { RunFolder } from '../io/run.js';
import { serializeTensors } from '../io/tensors.js';
import { writePng } from '../io/png.js';
import { tensorGrid } from '../viz/tensor-grid.js';
import type { RunConfig } from './config.js';

export interface StepInfo {
  epoch: number;
  /** Steps done so far (1-based after the first step). */
  step: number;
  stepInEpoch: number;
  stepsPerEpoch: number;
  totalSteps: number;
  loss: number;
  smoothedLoss: number;
  imagesPerSecond: number;
  elapsedSeconds: number;
}

export interface EpochInfo { epoch: number; step: number; meanLoss: number; grid: string; checkpoint: string }

export interface TrainHooks {
  onStart?(info: { images: number; stepsPerEpoch: number; totalSteps: number; dataDir: string }): void;
  onStep?(info: StepInfo): void;
  onEpoch?(info: EpochInfo): void;
}

export interface TrainOptions {
  threads: number;
  /** Where to look for Fashion-MNIST (see data/fashion-mnist.ts for the search order). */
  data?: LocateOptions;
  hooks?: TrainHooks;
  /** Stops after the current step when aborted (a checkpoint is still written). */
  signal?: AbortSignal;
}

export interface TrainSummary { steps: number; epochs: number; finalLoss: number; seconds: number; imagesPerSecond: number; checkpoint: string }

/** The training state that a checkpoint's state.json holds beside the safetensors files. */
export interface TrainState {
  step: number;
  epoch: number;
  loader: LoaderPosition;
  /** The generator drawing t and eps, base64 of its state bytes. */
  noiseGenerator: string;
  optimizer: { step: number; lr: number };
  loss: number;
}

export function loadTrainingImages(config: RunConfig, data: LocateOptions = {}): { images: Tensor; dataDir: string } {
  const ds = loadFashionMnist('train', data);
  const n = config.train.limit === null ? ds.count : Math.min(config.train.limit, ds.count);
  const images = prepareImages(ds.images.subarray(0, n * ds.height * ds.width), { n, c: 1, h: ds.height, w: ds.width }, config.model.imageSize);
  return { images, dataDir: ds.dir };
}

export async function train(config: RunConfig, run: RunFolder, o: TrainOptions): Promise<TrainSummary> {
  setNumThreads(o.threads);
  // DESIGN.md: OpenBLAS's own threads fight libtorch's when training; one BLAS thread is fastest here.
  setBlasThreads(1);
  const { images, dataDir } = loadTrainingImages(config, o.data);
  const trainCfg = config.train;
  run.writeConfig({ ...config, train: { ...trainCfg, data: dataDir } });

  const diffusion = new Diffusion(makeSchedule(config.schedule));
  const model = buildModel(config);
  const optimizer = new Adam(model.namedParameters(), { lr: trainCfg.lr });
  const loader = new BatchLoader(images, null, { batchSize: trainCfg.batchSize, seed: trainCfg.seed + 1, flip: trainCfg.flip });
  const noiseGen = new Generator(trainCfg.seed + 2);
  const totalSteps = loader.batchesPerEpoch * trainCfg.epochs;
  o.hooks?.onStart?.({ images: images.shape[0]!, stepsPerEpoch: loader.batchesPerEpoch, totalSteps, dataDir });

  const start = performance.now();
  let step = 0;
  let smoothed = NaN;
  let lastLoss = NaN;
  let logLosses: number[] = [];
  let logStart = performance.now();
  let checkpoint = '';
  model.train();
  for (let epoch = 0; epoch < trainCfg.epochs && !o.signal?.aborted; epoch++) {
    let epochLossSum = 0;
    let epochSteps = 0;
    for (;;) {
      const loss = tidy(() => {
        const batch = loader.next();
        if (batch === null) return null;
        const l = simpleLoss(diffusion, (xt, t) => model.forward(xt, t), batch.x, noiseGen);
        optimizer.zeroGrad();
        l.backward();
        optimizer.step();
        return l.item();
      });
      if (loss === null) break;
      step += 1;
      epochSteps += 1;
      epochLossSum += loss;
      lastLoss = loss;
      smoothed = Number.isNaN(smoothed) ? loss : 0.98 * smoothed + 0.02 * loss;
      logLosses.push(loss);
      const elapsed = (performance.now() - start) / 1000;
      const ips = (step * trainCfg.batchSize) / elapsed;
      o.hooks?.onStep?.({
        epoch, step, stepInEpoch: loader.batchIndex, stepsPerEpoch: loader.batchesPerEpoch, totalSteps,
        loss, smoothedLoss: smoothed, imagesPerSecond: ips, elapsedSeconds: elapsed,
      });
      if (step % trainCfg.logEvery === 0 || loader.batchIndex === loader.batchesPerEpoch) {
        const now = performance.now();
        run.appendLog({
          step, epoch, loss: mean(logLosses), lr: optimizer.lr,
          imagesPerSecond: (logLosses.length * trainCfg.batchSize) / ((now - logStart) / 1000),
          time: new Date().toISOString(),
        });
        logLosses = [];
        logStart = now;
      }
      if (o.signal?.aborted) break;
      // Let timers (progress bar, a server's requests) run between steps.
      if (step % 4 === 0) await new Promise((r) => setImmediate(r));
    }
    // A stop mid-epoch leaves the loader where it is, so the checkpoint records that position.
    if (loader.batchIndex === 0 && loader.epoch === epoch) loader.next();
    const grid = path.join(run.samplesDir, `epoch-${String(epoch + 1).padStart(3, '0')}.png`);
    writeSampleGrid(model, diffusion, config, grid, o.threads);
    checkpoint = saveCheckpoint(run, model, optimizer, loader, noiseGen, step, loader.epoch, lastLoss);
    o.hooks?.onEpoch?.({ epoch, step, meanLoss: epochLossSum / Math.max(epochSteps, 1), grid, checkpoint });
  }
  const seconds = (performance.now() - start) / 1000;
  images.dispose();
  return { steps: step, epochs: trainCfg.epochs, finalLoss: lastLoss, seconds, imagesPerSecond: (step * trainCfg.batchSize) / seconds, checkpoint };
}

export function buildModel(config: RunConfig): DiffusionUNet {
  // Seeding torch's default generator first gives the notebook's initial weights for this seed.
  manualSeed(config.train.seed);
  return createModel(config.model);
}

function mean(xs: number[]): number { return xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1); }

function writeSampleGrid(model: DiffusionUNet, diffusion: Diffusion, config: RunConfig, file: string, threads: number): void {
  model.eval();
  setBlasThreads(Math.min(2, threads));
  noGrad(() => tidy(() => {
    const { count, seed, variance } = config.samples;
    const c = config.model.imageChannels;
    const s = config.model.imageSize;
    const x = ddpmSample((xt, t) => model.forward(xt, t), diffusion, { shape: [count, c, s, s], variance, generator: new Generator(seed) });
    assertFinite(x, 'sample grid');
    writePng(file, tensorGrid(x, { nrow: Math.ceil(Math.sqrt(count)), scale: 4 }));
  }));
  setBlasThreads(1);
  model.train();
}

function saveCheckpoint(run: RunFolder, model: DiffusionUNet, optimizer: Adam, loader: BatchLoader, noiseGen: Generator, step: number, epoch: number, loss: number): string {
  const opt = optimizer.stateDict();
  const state: TrainState = {
    step, epoch, loader: loader.position(),
    noiseGenerator: Buffer.from(noiseGen.getState()).toString('base64'),
    optimizer: { step: opt.step, lr: opt.lr }, loss,
  };
  for (const [k, t] of model.stateDict()) {
    if (t.dtype.startsWith('float')) {
      const ok = tidy(() => t.isfinite().all().item());
      if (!ok) throw new Error(`refusing to write checkpoint step-${step}: parameter ${k} has non-finite values (training diverged; try a lower --lr)`);
    }
  }
  return run.writeCheckpoint(step, {
    'model.safetensors': serializeTensors(model.stateDict(), { format: 'pt', preset: 'ddpm-ts' }),
    'optimizer.safetensors': serializeTensors(opt.tensors, { step: String(opt.step) }),
    'state.json': `${JSON.stringify(state, null, 2)}\n`,
  });
}

/** A uint8 tensor of the generator state decoded from base64 (for resume). */
export function decodeGeneratorState(b64: string): Uint8Array {
  return new Uint8Array(Buffer.from(b64, 'base64'));
}
