// A run's configuration: what config.json holds. Each default carries its reason.
import type { ModelConfig, PresetName } from '../models/index.js';
import { scheduleLength, makeSchedule, type ScheduleConfig, type Objective, type LossWeighting, type DistillWeighting } from '../diffusion/index.js';
import { ArgumentError } from '../tensor/index.js';
import type { RunFolder } from '../io/run.js';
import { checkConfigJson } from './options.js';
import type { Variance, SamplerName } from '../samplers/index.js';
import { runObjective, runLearnVariance } from './run-reading.js';
export { runObjective, runSampling, runLearnVariance, runNumClasses } from './run-reading.js';

export interface TrainSettings {
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** Train on the first N images only (null: all). */
  limit: number | null;
  /** Folder the data came from (recorded for the record; `ddpm sample` does not need it). */
  data: string;
  /** Random horizontal flips, as the notebook's transforms. */
  flip: boolean;
  /** Write a log.jsonl line every this many steps. */
  logEvery: number;
  /** Where the images come from: Fashion-MNIST IDX files, or a folder of PNG/JPEG files. */
  dataset?: 'fashion-mnist' | 'folder';
  /** EMA decay of the weights (0: no EMA); sampling and checkpoints use the EMA weights when present. */
  emaDecay?: number;
  /** Learning-rate schedule: warm-up then constant or cosine decay to minLr. */
  lrSchedule?: { kind: 'constant' | 'cosine'; warmupSteps: number; minLr: number };
  /** Clip the global gradient norm to this (0: off). */
  gradClip?: number;
  /** Probability of dropping the class label during training (classifier-free guidance, Ho & Salimans 2022). */
  condDropProb?: number;
}

export interface LossSettings {
  weighting: LossWeighting;
  /** gamma of min-SNR-gamma (Hang et al. 2023). */
  minSnrGamma: number;
  /** Offset-noise strength (0: off). */
  offsetNoise: number;
}

export interface RunConfig {
  version: 1;
  model: ModelConfig;
  schedule: ScheduleConfig;
  /** What the network predicts; absent in runs written before it existed, which predict eps. */
  objective?: Objective;
  loss?: LossSettings;
  train: TrainSettings;
  /** The per-epoch sample grids. */
  samples: SampleGridSettings;
  /** Data-parallel runs: how many processes trained it, each with train.batchSize images of a global batch. */
  distributed?: { worldSize: number; globalBatchSize: number; syncBn?: boolean };
  /**
   * A noise-aware classifier's run (`ddpm train-classifier`), not a diffusion model's: model.numClasses
   * is then the classes it tells apart, and schedule, image size and channels are those of `run`.
   */
  classifier?: ClassifierSettings;
  /** A run written by `ddpm distill`: its teacher and rounds (its student's objective is `objective`, its step count samples.steps). */
  distill?: DistillSettings;
}

/** What makes a run folder a classifier's (train/classifier.ts). */
export interface ClassifierSettings {
  /** The diffusion run it was trained for (absolute path when it was trained). */
  run: string;
  /** guided-diffusion's EncoderUNetModel from the `ddpm` preset's blocks, with its pool="adaptive" head. */
  architecture: 'ddpm-encoder';
  pool: 'adaptive';
}

/** What `ddpm distill` records of a progressive distillation (Salimans & Ho 2022, Algorithm 2). */
export interface DistillSettings {
  /** The run distilled: its folder, the weights file its first round started from, its objective and the DDIM step count it was read at. */
  teacher: { run: string; checkpoint: string; objective: Objective; steps: number };
  /** The student's DDIM step count in each round, halving: [64, 32, 16, 8] from a 128-step teacher. */
  rounds: number[];
  /** Optimizer steps per round; round r covers steps (r * iterations, (r + 1) * iterations]. */
  iterations: number;
  /** The weight of the x_0 error: max(SNR, 1) or SNR + 1 (the v loss). */
  weighting: DistillWeighting;
}

export interface SampleGridSettings {
  count: number;
  seed: number;
  variance: Variance;
  /** Sampler and steps of the per-epoch grids (default: DDPM over all T steps). */
  sampler?: SamplerName;
  steps?: number;
}

/** A run's config.json, read and checked field by field (train/options.ts) whenever a run is opened or resumed. */
export function readRunConfig(run: RunFolder): RunConfig {
  return checkConfigJson(run.readConfig<unknown>(), run.configPath);
}

/**
 * Makes `c` a learned-variance run (--learn-variance, Nichol & Dhariwal 2021): the U-Net's output
 * channels double, and its sample grids (ddpm, pc) use the learned variance, the default of such a run.
 */
export function setLearnVariance(c: RunConfig): void {
  c.model.learnVariance = true;
  c.samples.variance = 'learned';
}

/** Each preset's settings: the course notebooks' for dli02 and dli03, Ho et al.-style for ddpm. */
export function presetDefaults(preset: PresetName): RunConfig {
  switch (preset) {
    case 'dli02':
      return {
        version: 1,
        // 16x16 grey so a CPU trains it in minutes; T = 150 as the notebook.
        model: { preset, imageChannels: 1, imageSize: 16, T: 150, numClasses: 0 },
        // Linear betas 1e-4 .. 0.02 (Ho et al. use T = 1000; the notebook keeps the endpoints at T = 150).
        schedule: { kind: 'linear', T: 150, betaStart: 1e-4, betaEnd: 0.02 },
        objective: 'eps',
        loss: { weighting: 'simple', minSnrGamma: 5, offsetNoise: 0 },
        // Adam 1e-3, batch 128, 3 epochs: the notebook's loop, which makes garments recognisable. No EMA, no schedule.
        train: { ...NOTEBOOK_TRAIN },
        // 64 images make an 8x8 grid; the notebook's own reverse variance (beta_{t-1}).
        samples: { count: 64, seed: 0, variance: 'notebook' },
      };
    case 'dli03': {
      // Notebook 03 keeps notebook 02's data, T, schedule and training loop; only the U-Net changes.
      const c = presetDefaults('dli02');
      return { ...c, model: { ...c.model, preset } };
    }
    case 'ddpm':
      return {
        version: 1,
        // Full-size Fashion-MNIST; T = 1000 as Ho et al.
        model: { preset, imageChannels: 1, imageSize: 28, T: 1000, numClasses: 0 },
        // The cosine schedule (Nichol & Dhariwal 2021) wastes fewer steps on near-pure noise at small sizes.
        schedule: { kind: 'cosine', T: 1000, s: 0.008 },
        // v-prediction with min-SNR-5 weighting (Salimans & Ho 2022; Hang et al. 2023), as lucidrains' current default.
        objective: 'v',
        loss: { weighting: 'min-snr', minSnrGamma: 5, offsetNoise: 0 },
        // Adam 1e-3 with 100 warm-up steps, cosine decay, EMA 0.995 and clipping at 1 (lucidrains' Trainer).
        train: {
          ...NOTEBOOK_TRAIN, epochs: 2,
          emaDecay: 0.995, lrSchedule: { kind: 'cosine', warmupSteps: 100, minLr: 1e-5 }, gradClip: 1, condDropProb: 0.1,
        },
        // DDIM with 50 steps draws the per-epoch grid in seconds rather than minutes.
        samples: { count: 64, seed: 0, variance: 'posterior', sampler: 'ddim', steps: 50 },
      };
    default:
      throw new Error(`no defaults for preset ${String(preset)}`);
  }
}

const NOTEBOOK_TRAIN: TrainSettings = {
  epochs: 3, batchSize: 128, lr: 1e-3, seed: 0, limit: null, data: '', flip: true, logEvery: 10,
  dataset: 'fashion-mnist', emaDecay: 0, lrSchedule: { kind: 'constant', warmupSteps: 0, minLr: 0 }, gradClip: 0, condDropProb: 0.1,
};

/**
 * Refuses configurations that cannot train, naming the field and why. Checked before a run folder
 * is written, so nothing is created for a bad configuration.
 */
export function checkRunConfig(c: RunConfig): void {
  const fail = (m: string): never => { throw new ArgumentError(`config: ${m}`); };
  makeSchedule(c.schedule); // refuses bad betas, naming the step
  const T = scheduleLength(c.schedule);
  if (c.model.T !== T) fail(`model.T is ${c.model.T} but the schedule has ${T} timesteps; they must agree`);
  const objective = runObjective(c);
  if (c.schedule.zeroTerminalSnr && objective === 'eps') {
    fail('a zero-terminal-SNR schedule cannot be trained with the eps objective: at t = T-1 the image is pure noise, so x_0 cannot be recovered from a noise prediction (Lin et al. 2023); use --objective v (or x0)');
  }
  if (c.samples.variance === 'learned' && !runLearnVariance(c)) {
    fail('samples.variance is learned, but model.learnVariance is not set: only a model trained with --learn-variance predicts a variance; use notebook, beta or posterior');
  }
  const t = c.train;
  const prob = t.condDropProb ?? 0.1;
  if (!(prob >= 0 && prob < 1)) fail(`train.condDropProb must lie in [0, 1), got ${prob}`);
  const ema = t.emaDecay ?? 0;
  if (!(ema >= 0 && ema < 1)) fail(`train.emaDecay must lie in [0, 1) (0 turns EMA off), got ${ema}`);
  const clip = t.gradClip ?? 0;
  if (!(clip >= 0 && Number.isFinite(clip))) fail(`train.gradClip must be a finite number >= 0 (0 turns clipping off), got ${clip}`);
  const loss = c.loss;
  if (loss && !(loss.offsetNoise >= 0 && loss.offsetNoise < 1)) fail(`loss.offsetNoise must lie in [0, 1), got ${loss.offsetNoise}`);
  if (loss && !(loss.minSnrGamma > 0 && Number.isFinite(loss.minSnrGamma))) fail(`loss.minSnrGamma must be a finite number > 0, got ${loss.minSnrGamma}`);
  const lr = t.lrSchedule;
  if (lr && lr.minLr > t.lr) fail(`train.lrSchedule.minLr ${lr.minLr} is above the learning rate ${t.lr}`);
  if (c.model.numClasses !== undefined && !(Number.isInteger(c.model.numClasses) && c.model.numClasses >= 0)) fail(`model.numClasses must be an integer >= 0, got ${c.model.numClasses}`);
}
