// `ddpm train-classifier`'s library side: the noise-aware classifier of classifier guidance
// (Dhariwal & Nichol 2021, section 4) as a training task of the same loop, run folder, checkpoints
// and resume as `ddpm train` (trainer.ts), its config.json made from the diffusion run it serves, and
// the checks that a classifier fits the run it is asked to guide.
import path from 'node:path';
import { existsSync } from 'node:fs';
import { manualSeed, ArgumentError, type Tensor, type Device } from '../tensor/index.js';
import { classifierGradient, type ClassifierGuidance } from '../samplers/index.js';
import { classifierLoss } from '../diffusion/index.js';
import { NoisyClassifier, noisyClassifierConfig } from '../models/noisy-classifier.js';
import { loadTensors } from '../io/tensors.js';
import { RunFolder } from '../io/run.js';
import { readRunConfig, type RunConfig } from './config.js';
import { resolveCheckpoint } from './checkpoint.js';
import type { TrainingTask } from './trainer.js';

/**
 * guided-diffusion's classifier_train.py defaults where they carry over: Adam at 3e-4 (it uses
 * AdamW with weight decay 0.05), no EMA, a constant rate; batch 128 and 2 epochs fit a 2-core CPU.
 */
export const CLASSIFIER_TRAIN_DEFAULTS = { epochs: 2, batchSize: 128, lr: 3e-4, seed: 0 } as const;

/** What `ddpm train-classifier` chose: the settings the flags give, over CLASSIFIER_TRAIN_DEFAULTS. */
export interface ClassifierTrainChoice {
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  limit: number | null;
}

/**
 * A classifier run's config.json for diffusion run `runDir` (config `r`) and `numClasses` classes
 * (the run's own when it is conditional, else the data's): the run's schedule, image size, channels,
 * data and flips, with its own optimisation settings.
 */
export function classifierRunConfig(r: RunConfig, runDir: string, numClasses: number, c: ClassifierTrainChoice): RunConfig {
  if (r.classifier) throw new ArgumentError(`--run ${runDir} is itself a classifier's run; give the diffusion run it was trained for (${r.classifier.run})`);
  return {
    version: 1,
    model: { ...r.model, numClasses },
    schedule: structuredClone(r.schedule),
    ...(r.objective !== undefined ? { objective: r.objective } : {}),
    train: {
      epochs: c.epochs, batchSize: c.batchSize, lr: c.lr, seed: c.seed, limit: c.limit, data: r.train.data, flip: r.train.flip, logEvery: r.train.logEvery,
      ...(r.train.dataset !== undefined ? { dataset: r.train.dataset } : {}),
      emaDecay: 0, lrSchedule: { kind: 'constant', warmupSteps: 0, minLr: 0 }, gradClip: 0, condDropProb: 0,
    },
    samples: structuredClone(r.samples),
    classifier: { run: path.resolve(runDir), architecture: 'ddpm-encoder', pool: 'adaptive' },
  };
}

/** The classifier of a classifier run's config. */
export function buildClassifier(config: RunConfig): NoisyClassifier {
  const { imageChannels, imageSize, T } = config.model;
  return new NoisyClassifier(noisyClassifierConfig({ imageChannels, imageSize, T, numClasses: config.model.numClasses ?? 0 }));
}

/** The noise-aware classifier as a training task: cross-entropy on x_t at uniform t (classifierLoss). */
export const CLASSIFYING: TrainingTask<NoisyClassifier> = {
  build(config) {
    manualSeed(config.train.seed);
    return buildClassifier(config);
  },
  check(config) {
    if (!config.classifier) throw new ArgumentError("this run's config.json describes a diffusion model, not a classifier; continue it with `ddpm train --resume`");
  },
  labels: () => true,
  loss(s, batch, diffusion) {
    if (!batch.y) throw new ArgumentError('train-classifier: the batch has no labels');
    const share = s.loader.share;
    return classifierLoss(diffusion, (xt, t) => s.model.forward(xt, t), batch.x0, batch.y, { generator: s.noiseGen, ...(share ? { share } : {}) });
  },
};

export interface LoadedClassifier { config: RunConfig; classifier: NoisyClassifier; checkpoint: string }

/** A classifier run's weights (the latest checkpoint, or `checkpoint`), in eval mode with its parameters frozen. */
export function loadClassifier(dir: string, checkpoint?: string): LoadedClassifier {
  if (!existsSync(path.join(dir, 'config.json'))) throw new ArgumentError(`--classifier ${dir} is not a run folder (no config.json); train one with \`ddpm train-classifier --run RUN --out ${dir}\``);
  const run = new RunFolder(dir);
  const config = readRunConfig(run);
  if (!config.classifier) throw new ArgumentError(`--classifier ${dir} is a diffusion model's run, not a classifier's; train one with \`ddpm train-classifier --run ${dir} --out DIR\``);
  const file = resolveCheckpoint(run, checkpoint);
  const classifier = buildClassifier(config);
  const { tensors } = loadTensors(file);
  try {
    classifier.loadStateDict(tensors, file);
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  classifier.eval();
  // Guidance differentiates with respect to x_t only (guided-diffusion's cond_fn): no gradients for the weights.
  for (const p of classifier.parameters()) p.requiresGrad_(false);
  return { config, classifier, checkpoint: file };
}

/**
 * Refuses a classifier trained for other images or another noise process than run `runDir`'s:
 * its gradient at x_t is only meaningful for the x_t of the same schedule at the same size.
 */
export function checkClassifierFits(clf: RunConfig, clfDir: string, r: RunConfig, runDir: string): void {
  const fail = (what: string, theirs: unknown, ours: unknown): never => {
    throw new ArgumentError(`--classifier ${clfDir} was trained on ${what} ${JSON.stringify(theirs)}, but --run ${runDir} has ${JSON.stringify(ours)}; ` +
      `train a classifier for this run: ddpm train-classifier --run ${runDir} --out DIR`);
  };
  if (JSON.stringify(clf.schedule) !== JSON.stringify(r.schedule)) fail('the schedule', clf.schedule, r.schedule);
  if (clf.model.imageSize !== r.model.imageSize) fail('image size', clf.model.imageSize, r.model.imageSize);
  if (clf.model.imageChannels !== r.model.imageChannels) fail('channels', clf.model.imageChannels, r.model.imageChannels);
  const k = r.model.numClasses ?? 0;
  if (k > 0 && clf.model.numClasses !== k) fail('a class count of', clf.model.numClasses, k);
}

/** The scale when classifier guidance is asked for without one: the classifier's own p(y | x_t), unsharpened. */
export const DEFAULT_CLASSIFIER_SCALE = 1;

export interface OpenClassifier {
  numClasses: number;
  scale: number;
  checkpoint: string;
  /** The samplers' guidance toward `labels` (one per image). */
  guidance(labels: readonly number[]): ClassifierGuidance<Tensor>;
  dispose(): void;
}

/**
 * The classifier run in `dir` ready to guide diffusion run `runDir` (config `r`) at `scale`: loaded,
 * refused when it was trained for other images or another schedule (checkClassifierFits), on `device`.
 */
export function openClassifier(dir: string, r: RunConfig, runDir: string, scale = DEFAULT_CLASSIFIER_SCALE, device: Device = 'cpu'): OpenClassifier {
  const { config, classifier, checkpoint } = loadClassifier(dir);
  try {
    checkClassifierFits(config, dir, r, runDir);
  } catch (e) {
    classifier.dispose();
    throw e;
  }
  if (device !== 'cpu') classifier.to(device);
  const gradLogProb = classifierGradient((x, t) => classifier.forward(x, t), device);
  const numClasses = classifier.numClasses;
  return { numClasses, scale, checkpoint, guidance: (labels) => ({ scale, numClasses, labels, gradLogProb }), dispose: () => classifier.dispose() };
}
