// The training loop of the course notebook (seeds/001, "Complete training loop"): for each batch,
// t ~ U{0..T-1}, x_t ~ q(x_t | x_0), loss = MSE(eps, eps_theta(x_t, t)), Adam step. After each
// epoch: a sample grid and a checkpoint in the run folder. A checkpoint holds everything needed to
// continue as if never stopped (weights, optimizer moments, data position, generator states).
import path from 'node:path';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { removeDirAtomic } from '../io/atomic.js';
import {
  Generator, tidy, noGrad, releaseCachedMemory, manualSeed, ArgumentError, setNumThreads, getNumThreads, rand, tensor, drawShare, type Tensor, type BatchShare, type Device,
} from '../tensor/index.js';
import { Adam, BatchNorm2d, clipGradNorm, type Module } from '../nn/index.js';
import { Diffusion, makeSchedule, diffusionLoss } from '../diffusion/index.js';
import { createModel, type DiffusionUNet } from '../models/index.js';
import { assertFinite, oneHot } from '../samplers/index.js';
import type { LocateOptions } from '../data/fashion-mnist.js';
import { openDataset, datasetSpec, type Dataset } from '../data/dataset.js';
import { BatchLoader } from '../data/loader.js';
import { RunFolder } from '../io/run.js';
import { writePng } from '../io/png.js';
import { tensorGrid } from '../viz/tensor-grid.js';
import { type ProcessGroup, GradientAverager, broadcastCoalesced } from '../distributed/index.js';
import { checkRunConfig, runObjective, runNumClasses, runLearnVariance, type RunConfig } from './config.js';
import { checkpointFiles, restoreTraining } from './checkpoint.js';
import { EMA } from './ema.js';
import { lrAt, validateLrSchedule, type LrSchedule } from './lr-schedule.js';
import { sampleGrid, checkGridSampling } from './sample-grid.js';

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
  onStart?(info: { images: number; stepsPerEpoch: number; totalSteps: number; dataDir: string; resumedAt: number }): void;
  onStep?(info: StepInfo): void;
  onEpoch?(info: EpochInfo): void;
  /** A step skipped because its loss or gradient norm was not finite. */
  onSkip?(info: { step: number; reason: string; inARow: number }): void;
  onCheckpoint?(dir: string): void;
}

export interface TrainOptions {
  /**
   * Where the model, its EMA, the optimizer's state and each batch live (default cpu). t and noise are
   * still drawn on the CPU generators and moved, so every device trains on the same numbers;
   * checkpoints are written from CPU copies.
   */
  device?: Device;
  /** libtorch's threads for this run, given back when train() returns; absent: as the process has them (configureRuntime). */
  threads?: number;
  /** Where to look for Fashion-MNIST (see data/fashion-mnist.ts for the search order). */
  data?: LocateOptions;
  hooks?: TrainHooks;
  /** Stops after the current step when aborted (a checkpoint is still written). */
  signal?: AbortSignal;
  /** Continue from this checkpoint folder (checkpoints/step-N) of `run`. */
  resumeFrom?: string;
  /**
   * `run` already holds this run's config.json and no checkpoint (it was killed before its first):
   * train it from step 0 in that folder. Its old log.jsonl is kept beside the new one, renamed.
   */
  restart?: boolean;
  /** Also checkpoint every N steps (0: only at the end of each epoch). */
  checkpointEvery?: number;
  /** Keep only the newest N checkpoints (0: keep all). */
  keep?: number;
  /** Stop after this many steps in a row were skipped for non-finite values. */
  maxBadSteps?: number;
  /** Write the per-epoch sample grids. */
  sampleGrids?: boolean;
  /** Stop (with a checkpoint) once this many steps are done, mid-epoch if need be. */
  maxSteps?: number;
  /** Train on these images (and labels) instead of loading config.train's dataset: the library's way in for in-memory data. */
  dataset?: TrainingData;
  /**
   * Data parallel over this process group, as PyTorch's DistributedDataParallel: rank 0's weights
   * broadcast at the start, each rank computes its rows of every global batch (batchSize each),
   * gradients averaged by bucketed allreduce, BatchNorm buffers broadcast from rank 0 before each
   * forward, and a NaN on any rank or a stop asked of any rank acted on by all. Rank 0 alone writes
   * the run folder; the others wait at a barrier.
   */
  distributed?: ProcessGroup;
  /** Resume a run with a different number of processes (the data order changes from there on). */
  reshard?: boolean;
  /** Data parallel: BatchNorm with the global batch's statistics (torch.nn.SyncBatchNorm) instead of each process's own. */
  syncBn?: boolean;
}

export interface TrainSummary { steps: number; epochs: number; finalLoss: number; seconds: number; imagesPerSecond: number; checkpoint: string; skipped: number }

/** In-memory training data: what openDataset gives for a run's config. */
export type TrainingData = Dataset;

export function buildModel(config: RunConfig): DiffusionUNet {
  // Seeding torch's default generator first gives the notebook's initial weights for this seed.
  manualSeed(config.train.seed);
  return createModel(config.model);
}

/** One batch as trainStep hands it to a task: images on the session's device, labels (B,) int64 on the CPU. */
export interface TaskBatch { x0: Tensor; y: Tensor | null }

/**
 * What a run trains: its network and the loss of a batch. The loop, checkpoints, resume, logs and
 * progress around them are the same for every task: the denoising U-Net of `ddpm train` (DENOISING)
 * and the noise-aware classifier of `ddpm train-classifier` (train/classifier.ts).
 */
export interface TrainingTask<M extends Module = Module> {
  /** The network of a run's config, with the default generator seeded from train.seed first. */
  build(config: RunConfig): M;
  /** Refuses a config this task cannot train (before anything is written). */
  check(config: RunConfig): void;
  /** Whether the loss reads the data's class labels. */
  labels(config: RunConfig): boolean;
  /** The loss of one batch; t, noise and any other draw come from s.noiseGen. */
  loss(s: TrainingSession<M>, batch: TaskBatch, diffusion: Diffusion, o: StepSettings): Tensor;
  /** The picture drawn after each epoch (absent: none). */
  sampleGrid?: { check(diffusion: Diffusion, config: RunConfig): void; write(s: TrainingSession<M>, diffusion: Diffusion, config: RunConfig, file: string): void };
}

/** The parts of a training run that a checkpoint captures. */
export interface TrainingSession<M extends Module = DiffusionUNet> {
  model: M;
  optimizer: Adam;
  loader: BatchLoader;
  /** Draws t and eps for the loss (and the label drops of class-conditional training). */
  noiseGen: Generator;
  /** Where the model and each batch compute (TrainOptions.device); absent: cpu. */
  device?: Device;
  /** Steps taken (batches consumed, skipped ones included). */
  step: number;
  /** The EMA of the weights, when the run keeps one. */
  ema: EMA | null;
  /** Data parallel: the process group, its gradient buckets, and the stop that all ranks agree on. */
  dist?: { group: ProcessGroup; averager: GradientAverager; stopAsked: boolean; stopAgreed: boolean };
}

/** What trainStep needs besides the session: the run's objective, loss, schedule and conditioning settings. */
export interface StepSettings {
  objective: ReturnType<typeof runObjective>;
  loss: NonNullable<RunConfig['loss']>;
  numClasses: number;
  /** The hybrid loss of a learned-variance model (Nichol & Dhariwal 2021). */
  learnVariance: boolean;
  condDropProb: number;
  gradClip: number;
  baseLr: number;
  lrSchedule: LrSchedule;
  /** What the step trains (default DENOISING). */
  task?: TrainingTask;
}

export function stepSettings(config: RunConfig, totalSteps: number): StepSettings {
  const ls = config.train.lrSchedule ?? { kind: 'constant', warmupSteps: 0, minLr: 0 };
  return {
    objective: runObjective(config),
    loss: config.loss ?? { weighting: 'simple', minSnrGamma: 5, offsetNoise: 0 },
    numClasses: runNumClasses(config),
    learnVariance: runLearnVariance(config),
    condDropProb: config.train.condDropProb ?? 0.1,
    gradClip: config.train.gradClip ?? 0,
    baseLr: config.train.lr,
    lrSchedule: { ...ls, totalSteps: Math.max(totalSteps, ls.warmupSteps, 1) },
  };
}

/**
 * The denoising U-Net of the course notebook: t ~ U{0..T-1}, x_t ~ q(x_t | x_0), the loss of the
 * run's objective, with class labels dropped for classifier-free guidance in conditional runs.
 */
export const DENOISING: TrainingTask<DiffusionUNet> = {
  build: buildModel,
  check(config) {
    if (config.classifier) throw new ArgumentError(`this run's config.json describes a noise-aware classifier (of ${config.classifier.run}); continue it with \`ddpm train-classifier --resume\`, not \`ddpm train\``);
  },
  labels: (config) => runNumClasses(config) > 0,
  loss(s, batch, diffusion, o) {
    // Classifier-free guidance training (Ho & Salimans 2022; the course's notebook 04): one-hot
    // labels, each dropped to the zero "null" label with probability condDropProb.
    // Data parallel: t, noise and label drops are drawn for the global batch and this rank takes its rows.
    const share = s.loader.share;
    const c = classInput(s, batch, o);
    return diffusionLoss(diffusion, (xt, t) => s.model.forward(xt, t, c), batch.x0, {
      objective: o.objective, weighting: o.loss.weighting, minSnrGamma: o.loss.minSnrGamma, offsetNoise: o.loss.offsetNoise, generator: s.noiseGen,
      ...(share ? { share } : {}), ...(o.learnVariance ? { learnVariance: true } : {}),
    });
  },
  sampleGrid: { check: checkGridSampling, write: writeSampleGrid },
};

export async function train(config: RunConfig, run: RunFolder, o: TrainOptions): Promise<TrainSummary> {
  return trainTask(DENOISING, config, run, o);
}

/** train() for any task: the same loop, run folder, checkpoints and resume. */
export async function trainTask<M extends Module>(task: TrainingTask<M>, config: RunConfig, run: RunFolder, o: TrainOptions): Promise<TrainSummary> {
  if (o.threads === undefined) return trainRun(task, config, run, o);
  // libtorch's thread count is process-wide: this run's count holds only while it runs.
  const callerThreads = getNumThreads();
  setNumThreads(o.threads);
  try {
    return await trainRun(task, config, run, o);
  } finally {
    setNumThreads(callerThreads);
  }
}

async function trainRun<M extends Module>(task: TrainingTask<M>, config: RunConfig, run: RunFolder, o: TrainOptions): Promise<TrainSummary> {
  checkRunConfig(config);
  task.check(config);
  const diffusion = new Diffusion(makeSchedule(config.schedule));
  const grids = task.sampleGrid && (o.sampleGrids ?? true) ? task.sampleGrid : null;
  grids?.check(diffusion, config);
  const { images, labels, dataDir } = o.dataset ?? openDataset(datasetSpec(config), 'train', o.data);
  const [, ch, hh, ww] = images.shape;
  if (images.rank !== 4 || ch !== config.model.imageChannels || hh !== config.model.imageSize || ww !== config.model.imageSize) {
    throw new Error(`training images have shape [${images.shape.join(', ')}], but the model expects [N, ${config.model.imageChannels}, ${config.model.imageSize}, ${config.model.imageSize}]`);
  }
  const tc = config.train;
  const withLabels = task.labels(config);
  if (withLabels && !labels) throw new Error(`${config.classifier ? 'a classifier' : 'class-conditional training'} needs labels, but ${dataDir} has none (put each class's images in its own subfolder)`);
  if (o.resumeFrom && o.restart) throw new Error('train: resumeFrom and restart exclude each other (a restart has no checkpoint to resume from)');
  const group = o.distributed && o.distributed.worldSize > 1 ? o.distributed : undefined;
  const worldSize = group?.worldSize ?? 1;
  const lead = (group?.rank ?? 0) === 0;
  const trainedBy = config.distributed?.worldSize ?? 1;
  if (o.resumeFrom && trainedBy !== worldSize && !o.reshard) {
    throw new Error(`the run ${run.root} was trained by ${trainedBy} process${trainedBy > 1 ? 'es' : ''} and this resume has ${worldSize}; ` +
      `resume with ${trainedBy} (--nproc-per-node ${trainedBy}), or add --reshard to go on with ${worldSize} (the data order then changes from this step on)`);
  }
  const distConfig = worldSize > 1 || config.distributed
    ? { distributed: { worldSize, globalBatchSize: tc.batchSize * worldSize, ...(o.syncBn ? { syncBn: true } : {}) } } : {};
  // Every rank must run the same training: compare the config (less the data's path, which may differ between machines) before step 1.
  group?.agree('run configurations', { ...config, train: { ...tc, data: '' }, images: images.shape[0], resume: o.resumeFrom ? path.basename(o.resumeFrom) : null, syncBn: o.syncBn ?? false });
  const device = o.device ?? 'cpu';
  const model = task.build(config);
  // Before the optimizer and the EMA are made, so their state is made on the device too.
  if (device !== 'cpu') model.to(device);
  if (group && o.syncBn) {
    const norms = modulesOf(model).filter((m): m is BatchNorm2d => m instanceof BatchNorm2d);
    if (norms.length === 0) throw new Error(`--sync-bn: the ${config.model.preset} model has no BatchNorm layers (only dli02 has; GroupNorm needs no synchronising)`);
    for (const bn of norms) bn.crossProcessSum = (t) => group.allReduceWithGrad(t);
  }
  if (lead && !o.resumeFrom) {
    // Only once the data has loaded: a refused dataset leaves no run folder behind.
    run.create(o.restart ?? false);
    if (o.restart) run.setAsideLog();
    run.writeConfig({ ...config, ...distConfig, train: { ...tc, data: dataDir } });
  } else if (lead && trainedBy !== worldSize) {
    run.writeConfig({ ...config, ...distConfig });
  }

  const s: TrainingSession<M> = {
    model,
    optimizer: new Adam(model.namedParameters(), { lr: tc.lr }),
    loader: new BatchLoader(images, withLabels ? labels : null, {
      batchSize: tc.batchSize, seed: tc.seed + 1, flip: tc.flip, ...(group ? { world: { rank: group.rank, worldSize } } : {}),
    }),
    noiseGen: new Generator(tc.seed + 2),
    device,
    step: 0,
    ema: (tc.emaDecay ?? 0) > 0 ? new EMA(model, { decay: tc.emaDecay! }) : null,
  };
  if (o.resumeFrom) {
    restoreTraining(s, o.resumeFrom, s.loader.globalBatchSize);
    if (lead) run.dropTornLogLine();
  }
  if (group) {
    // DDP's _sync_module_states: every rank starts from rank 0's weights and buffers.
    broadcastCoalesced(group, [...model.parameters(), ...model.namedBuffers().map(([, b]) => b)]);
    s.dist = { group, averager: new GradientAverager(group, model.parameters()), stopAsked: false, stopAgreed: false };
  }
  const hooks = lead ? o.hooks : undefined;
  const resumedAt = s.step;
  const totalSteps = s.loader.batchesPerEpoch * tc.epochs;
  const settings = { ...stepSettings(config, totalSteps), task: task as unknown as TrainingTask };
  if (settings.lrSchedule.kind !== 'constant' || settings.lrSchedule.warmupSteps > 0) validateLrSchedule(tc.lr, settings.lrSchedule, 'train.lrSchedule');
  hooks?.onStart?.({ images: images.shape[0]!, stepsPerEpoch: s.loader.batchesPerEpoch, totalSteps, dataDir, resumedAt });

  const maxBad = o.maxBadSteps ?? 20;
  const start = performance.now();
  let smoothed = NaN;
  let lastLoss = NaN;
  let logLosses: number[] = [];
  let logStart = performance.now();
  let checkpoint = '';
  let badInRow = 0;
  let skipped = 0;
  let epochLossSum = 0;
  let epochSteps = 0;
  const save = (): void => {
    // Every rank's weights must be rank 0's bit for bit; a checkpoint is where that is checked.
    group?.agree(`weights at step ${s.step}`, weightsDigest(model));
    // A stop or a --checkpoint-every that lands on an epoch's last step has already saved this step.
    if (lead && !existsSync(run.checkpointDir(s.step))) {
      checkpoint = saveCheckpoint(run, s, lastLoss, o.keep ?? 0);
      hooks?.onCheckpoint?.(checkpoint);
    }
    // The others wait, so a checkpoint on disk always belongs to one global step of every rank.
    group?.barrier();
  };
  model.train();
  // Data parallel: a stop asked of one rank (Ctrl-C) takes effect on all after the same step.
  const stopAsked = (): boolean => (s.dist ? s.dist.stopAgreed : (o.signal?.aborted ?? false));
  const stopEarly = (): boolean => stopAsked() || (o.maxSteps !== undefined && s.step >= o.maxSteps);
  while (s.loader.epoch < tc.epochs && !stopEarly()) {
    const epoch = s.loader.epoch;
    if (s.dist) s.dist.stopAsked = o.signal?.aborted ?? false;
    const r = trainStep(s, diffusion, settings);
    if (r === 'end-of-epoch') {
      const grid = path.join(run.samplesDir, `epoch-${String(epoch + 1).padStart(3, '0')}.png`);
      if (lead && grids) grids.write(s, diffusion, config, grid);
      save();
      hooks?.onEpoch?.({ epoch, step: s.step, meanLoss: epochLossSum / Math.max(epochSteps, 1), grid, checkpoint });
      epochLossSum = 0;
      epochSteps = 0;
      continue;
    }
    s.step += 1;
    if (typeof r === 'string') {
      badInRow += 1;
      skipped += 1;
      hooks?.onSkip?.({ step: s.step, reason: r, inARow: badInRow });
      if (badInRow >= maxBad) {
        throw new Error(`stopping at step ${s.step}: ${badInRow} steps in a row were skipped (${r}). ` +
          `The last good checkpoint is kept${checkpoint ? ` (${checkpoint})` : ''}; check the data for NaN or infinite values, or lower --lr`);
      }
    } else {
      badInRow = 0;
      const loss = r.loss;
      epochSteps += 1;
      epochLossSum += loss;
      lastLoss = loss;
      smoothed = Number.isNaN(smoothed) ? loss : 0.98 * smoothed + 0.02 * loss;
      logLosses.push(loss);
    }
    const elapsed = (performance.now() - start) / 1000;
    hooks?.onStep?.({
      epoch, step: s.step, stepInEpoch: s.loader.batchIndex, stepsPerEpoch: s.loader.batchesPerEpoch, totalSteps,
      loss: lastLoss, smoothedLoss: smoothed, imagesPerSecond: ((s.step - resumedAt) * s.loader.globalBatchSize) / elapsed, elapsedSeconds: elapsed,
    });
    if (logLosses.length > 0 && (s.step % tc.logEvery === 0 || s.loader.batchIndex === s.loader.batchesPerEpoch)) {
      const now = performance.now();
      if (lead) {
        run.appendLog({
          step: s.step, epoch, loss: mean(logLosses), lr: s.optimizer.lr,
          imagesPerSecond: (logLosses.length * s.loader.globalBatchSize) / ((now - logStart) / 1000),
          ...(group ? { worldSize, globalBatchSize: s.loader.globalBatchSize, allreduceSeconds: s.dist!.averager.seconds } : {}),
          time: new Date().toISOString(),
        });
      }
      logLosses = [];
      logStart = now;
    }
    // The last step of an epoch is saved by the epoch's end, with the epoch boundary as its position.
    const epochDone = s.loader.batchIndex === s.loader.batchesPerEpoch;
    if (o.checkpointEvery && s.step % o.checkpointEvery === 0 && !epochDone) save();
    // Let timers (progress bar, a server's requests) run between steps.
    if (s.step % 4 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  // A stop mid-epoch is saved where it is, so --resume continues from that very batch.
  if (stopEarly() && s.step > resumedAt) save();
  const seconds = (performance.now() - start) / 1000;
  if (!o.dataset) {
    images.dispose();
    labels?.dispose();
  }
  s.ema?.dispose();
  return {
    steps: s.step, epochs: tc.epochs, finalLoss: lastLoss, seconds, skipped,
    imagesPerSecond: ((s.step - resumedAt) * s.loader.globalBatchSize) / seconds, checkpoint,
  };
}

/**
 * One optimisation step. Returns the loss, 'end-of-epoch' when the data is exhausted, or why the
 * step was skipped: a non-finite loss or gradient never reaches the weights, and a skipped step
 * leaves the model's buffers as they were (a train-mode forward of a NaN batch would otherwise
 * write NaN into every BatchNorm's running statistics).
 */
export function trainStep<M extends Module>(s: TrainingSession<M>, diffusion: Diffusion, o: StepSettings): { loss: number } | 'end-of-epoch' | string {
  const task = (o.task ?? DENOISING) as unknown as TrainingTask<M>;
  return optimizerStep(s, o, (batch) => {
    const device = s.device ?? 'cpu';
    const x0 = device === 'cpu' ? batch.x : batch.x.to(device);
    return task.loss(s, { x0, y: batch.y ?? null }, diffusion, o);
  });
}

/** The class input of a batch on the session's device (labels dropped with probability condDropProb), or null for an unconditional model. */
export function classInput<M extends Module>(s: TrainingSession<M>, batch: { y: Tensor | null }, o: Pick<StepSettings, 'numClasses' | 'condDropProb'>): Tensor | null {
  const cCpu = batch.y && o.numClasses > 0 ? dropLabels(oneHot(batch.y.toArray(), o.numClasses), o.condDropProb, s.noiseGen, s.loader.share) : null;
  const device = s.device ?? 'cpu';
  return cCpu && device !== 'cpu' ? cCpu.to(device) : cCpu;
}

/**
 * One optimisation step on the loss `lossOf` computes for the next batch: `ddpm train`'s and
 * `ddpm distill`'s alike. The skips, the gradient averaging, clipping, learning-rate schedule and
 * EMA update are this function's, so every trainer of the package handles them the same way.
 */
export function optimizerStep<M extends Module>(s: TrainingSession<M>, o: StepSettings, lossOf: (batch: { x: Tensor; y: Tensor | null }) => Tensor): { loss: number } | 'end-of-epoch' | string {
  return tidy(() => {
    const batch = s.loader.next();
    if (batch === null) return 'end-of-epoch';
    const buffers = s.model.namedBuffers().map(([, b]) => b);
    // DDP's broadcast_buffers: BatchNorm's running statistics are rank 0's before every forward.
    if (s.dist && buffers.length > 0) broadcastCoalesced(s.dist.group, buffers);
    const saved = noGrad(() => buffers.map((b) => b.clone()));
    const skip = (reason: string): string => {
      s.optimizer.zeroGrad();
      noGrad(() => { buffers.forEach((b, i) => b.copy_(saved[i]!)); });
      return reason;
    };
    const device = s.device ?? 'cpu';
    const l = lossOf(batch);
    let loss = l.item();
    s.optimizer.zeroGrad();
    let reason: string | null = null;
    if (!Number.isFinite(loss)) {
      reason = `loss is ${loss}`;
    } else {
      l.backward();
      const bad = firstNonFiniteGrad(s);
      if (bad) reason = `gradient of ${bad} is not finite`;
    }
    if (s.dist) {
      // One small allreduce decides for every rank: a NaN on any rank skips the step on all (so their
      // weights never part), and a stop asked of any rank stops all after this step. The loss logged
      // is the global batch's: the mean of the ranks' equal-sized means.
      const w = s.dist.group.worldSize;
      // On the model's device: NCCL moves CUDA tensors only.
      const flags = tensor([reason ? 1 : 0, reason ? 0 : loss, s.dist.stopAsked ? 1 : 0], [3], { dtype: 'float64', device });
      s.dist.group.allReduce([flags]);
      const [bad, lossSum, stops] = flags.toArray() as [number, number, number];
      if (stops > 0) s.dist.stopAgreed = true;
      if (bad > 0 && !reason) reason = `a non-finite loss or gradient on ${bad} of ${w} processes`;
      loss = lossSum / w;
    }
    if (reason) return skip(reason);
    // The gradient of the global batch's mean loss: the mean of the ranks' gradients (DDP's allreduce).
    s.dist?.averager.average();
    if (o.gradClip > 0) clipGradNorm(s.model.parameters(), o.gradClip);
    // The notebook's constant rate leaves the optimizer's lr as configured.
    if (o.lrSchedule.kind !== 'constant' || o.lrSchedule.warmupSteps > 0) s.optimizer.lr = lrAt(o.baseLr, s.optimizer.stepCount, o.lrSchedule);
    s.optimizer.step();
    // A skipped step never reaches here, so the EMA only ever averages good weights.
    s.ema?.update(s.model, s.ema.updates);
    return { loss };
  });
}

/** Zeroes each row with probability p (a per-example Bernoulli draw from `generator`). */
function dropLabels(c: Tensor, p: number, generator: Generator, share?: BatchShare): Tensor {
  if (p === 0) return c;
  return tidy(() => c.mul(drawShare(share, c.shape[0]!, (n) => rand([n, 1], { generator })).ge(p).float())); // (B, K)
}

function firstNonFiniteGrad<M extends Module>(s: TrainingSession<M>): string | null {
  return noGrad(() => tidy(() => {
    for (const [name, p] of s.model.namedParameters()) {
      const g = p.grad;
      if (g && !g.isfinite().all().item()) return name;
    }
    return null;
  }));
}

/** SHA-256 of the parameters' bytes, in order (buffers differ between ranks until rank 0's are broadcast). */
function weightsDigest(model: Module): string {
  const h = createHash('sha256');
  noGrad(() => { for (const p of model.parameters()) h.update(new Uint8Array(p.dataSync().buffer)); });
  return h.digest('hex');
}

function modulesOf(m: Module): Module[] {
  return [m, ...m.children().flatMap(([, c]) => modulesOf(c))];
}

export function mean(xs: number[]): number { return xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1); }

export function writeSampleGrid(s: TrainingSession, diffusion: Diffusion, config: RunConfig, file: string): void {
  s.model.eval();
  try {
    const draw = (): void => noGrad(() => tidy(() => {
      const x = sampleGrid(s.model, diffusion, config, s.device);
      assertFinite(x.images, 'sample grid');
      writePng(file, tensorGrid(x.images, { nrow: x.nrow, scale: 4 }));
    }));
    if (s.ema) s.ema.withWeights(s.model, draw);
    else draw();
  } finally {
    s.model.train();
    // The caching allocator would keep the grid's blocks beside training's for the rest of the run.
    releaseCachedMemory();
  }
}

/** Writes the session's checkpoint (with `extra` files beside it), then prunes to the newest `keep`. */
export function saveCheckpoint<M extends Module>(run: RunFolder, s: TrainingSession<M>, loss: number, keep: number, extra: Record<string, Uint8Array> = {}): string {
  const dir = run.writeCheckpoint(s.step, { ...checkpointFiles(s, loss), ...extra });
  if (keep > 0) {
    // Only after the new checkpoint is complete are old ones removed.
    const all = run.listCheckpoints();
    for (const old of all.slice(0, Math.max(0, all.length - keep))) removeDirAtomic(old.dir);
  }
  return dir;
}
