// POST /api/train and /api/generate bodies to job inputs: every field checked for type and range
// (validate.ts), then the library's own checks (checkRunConfig, createModel, resolveSampling) run
// here, on the server, so a bad combination is a 400 before any process starts.
import path from 'node:path';
import { existsSync } from 'node:fs';
import { presetDefaults, checkRunConfig, runNumClasses, runObjective, runSampling, runLearnVariance, setLearnVariance, type RunConfig } from '../train/config.js';
import { createModel } from '../models/index.js';
import { Diffusion, makeSchedule, scheduleLength, scheduleOfKind } from '../diffusion/index.js';
import * as z from 'zod';
import { TRAIN_OPTIONS as T, type TrainOptionName } from '../train/options.js';
import { SAMPLER_OPTIONS as O, resolveSampling, samplerDefaults, checkInterpolationSampler } from '../samplers/index.js';
import { RUN_OPTIONS as R } from '../samplers/run-options.js';
import { FASHION_MNIST_CLASSES } from '../data/fashion-mnist.js';
import type { RunFolder } from '../io/run.js';
import { LIMITS } from './protocol.js';
import type { GenerateJobInput } from './ipc.js';
import { Fields, RequestError, badRequest } from './validate.js';
import { chosenCheckpoint, readRunConfig, runFolder } from './runs.js';
import { checkClassifierFits, DEFAULT_CLASSIFIER_SCALE } from '../train/classifier.js';

/** Schedules a request may name ('custom' needs a list of betas, which the page does not send). */
export { TRAIN_SCHEDULES } from '../train/options.js';
/** Fashion-MNIST's training set: a larger limit would mean "all" anyway. */
const MAX_LIMIT = 60000;

/**
 * The `ddpm train` options a studio train request may set, by their declarations (train/options.ts),
 * narrowed to what the studio allows: a request's fields are these and its run's name, nothing else.
 */
const STUDIO_TRAIN = {
  preset: T.preset.schema,
  epochs: T.epochs.schema.max(LIMITS.maxEpochs),
  batchSize: T.batchSize.schema.max(LIMITS.maxBatchSize),
  lr: T.lr.schema.max(1),
  seed: T.seed.schema.max(LIMITS.maxSeed),
  limit: T.limit.schema.max(MAX_LIMIT),
  schedule: T.schedule.schema,
  timesteps: T.timesteps.schema.min(2).max(LIMITS.maxTimesteps),
  objective: T.objective.schema,
  lossWeight: T.lossWeight.schema,
  emaDecay: T.emaDecay.schema,
  classCond: T.classCond.schema,
  learnVariance: T.learnVariance.schema,
  imageSize: T.imageSize.schema.min(8).max(LIMITS.maxImageSize),
} satisfies Partial<Record<TrainOptionName, z.ZodType>>;
const TRAIN_FIELDS = ['name', ...Object.keys(STUDIO_TRAIN)];

/** A library refusal (ArgumentError and friends) as a 400 naming the field it concerns. */
function asBadRequest<T>(field: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof RequestError) throw e;
    return badRequest((e as Error).message, field);
  }
}

/** A TrainRequest to the new run's folder and config; 409 when the name is taken. */
export function parseTrainRequest(body: Record<string, unknown>, runsDir: string): { name: string; runDir: string; config: RunConfig } {
  const f = new Fields(body, TRAIN_FIELDS);
  const name = f.name('name');
  const S = STUDIO_TRAIN;
  const preset = f.choice('preset', S.preset.options);
  const c = presetDefaults(preset);
  c.train.epochs = f.declared('epochs', S.epochs) ?? c.train.epochs;
  c.train.batchSize = f.declared('batchSize', S.batchSize) ?? c.train.batchSize;
  c.train.lr = f.declared('lr', S.lr) ?? c.train.lr;
  c.train.seed = f.declared('seed', S.seed) ?? c.train.seed;
  if (body['limit'] !== null) c.train.limit = f.declared('limit', S.limit) ?? c.train.limit;
  const limit = c.train.limit;
  if (limit !== null && limit < c.train.batchSize) {
    badRequest(`limit must be at least batchSize (${c.train.batchSize}) so an epoch holds a whole batch, got ${limit}`, 'limit');
  }
  c.model.imageSize = f.declared('imageSize', S.imageSize) ?? c.model.imageSize;
  if (f.has('schedule') || f.has('timesteps')) {
    const base = c.schedule;
    const kind = f.declared('schedule', S.schedule) ?? (base.kind === 'custom' ? 'linear' : base.kind);
    const steps = f.declared('timesteps', S.timesteps) ?? scheduleLength(base);
    c.schedule = scheduleOfKind(kind, steps, base);
    c.model.T = steps;
  }
  c.objective = f.declared('objective', S.objective) ?? c.objective;
  const weighting = f.declared('lossWeight', S.lossWeight);
  if (weighting !== undefined) c.loss = { ...(c.loss ?? { weighting, minSnrGamma: 5, offsetNoise: 0 }), weighting };
  c.train.emaDecay = f.declared('emaDecay', S.emaDecay) ?? c.train.emaDecay;
  if (f.declared('classCond', S.classCond) === true) c.model.numClasses = FASHION_MNIST_CLASSES.length;
  if (f.declared('learnVariance', S.learnVariance) === true) setLearnVariance(c);
  asBadRequest(undefined, () => checkRunConfig(c));
  // The U-Net refuses image sizes its poolings cannot halve; building it (no data) asks it.
  asBadRequest('imageSize', () => createModel(c.model).dispose());
  const runDir = path.join(runsDir, name);
  if (existsSync(runDir)) throw new RequestError(409, `name "${name}" is taken: ${runDir} already exists; choose another name`, 'name');
  return { name, runDir, config: c };
}

const GENERATE_FIELDS = ['run', 'checkpoint', 'sampler', 'steps', 'eta', 'guidance', 'class', 'classifier', 'classifierScale', 'seed', 'count', 'interpolateTo'] as const;

/** A GenerateRequest to a generation worker's input (threads filled in by the server). */
export function parseGenerateRequest(body: Record<string, unknown>, runsDir: string): { run: string; input: Omit<GenerateJobInput, 'threads'> } {
  const f = new Fields(body, GENERATE_FIELDS);
  const run: RunFolder = runFolder(runsDir, f.name('run'));
  const config = readRunConfig(run);
  const ckptDir = chosenCheckpoint(run, f.name('checkpoint', true));
  // Interpolation: count frames from seed's x_T to interpolateTo's, one class for all (samplers/interpolate.ts).
  const interpolateTo = f.declared('interpolateTo', R.seed.schema.max(LIMITS.maxSeed));
  // The defaults follow the run: without a sampler, the one its epoch grids use (samplers/options.ts); ddim for an interpolation.
  const def = samplerDefaults(runSampling(config), f.declared('sampler', O.sampler.schema) ?? (interpolateTo !== undefined ? 'ddim' : undefined));
  const sampler = def.sampler;
  const T = config.model.T;
  const steps = f.declared('steps', O.steps.schema.max(Math.min(T, LIMITS.maxSteps))) ?? Math.min(def.steps, LIMITS.maxSteps);
  if (f.has('eta') && sampler !== 'ddim') badRequest(`eta applies to the ddim sampler only (${sampler} has no eta), got eta ${String(body['eta'])} with sampler ${sampler}`, 'eta');
  const eta = f.declared('eta', O.eta.schema);
  const numClasses = runNumClasses(config);
  const clf = generateClassifier(f, runsDir, run, config);
  for (const k of ['guidance', 'class'] as const) {
    if (f.has(k) && numClasses === 0 && !(k === 'class' && clf)) badRequest(`${k} needs a class-conditional run${k === 'class' ? ' or a classifier' : ''}, and ${path.basename(run.root)} was trained without classes; leave ${k} out`, k);
  }
  const guidance = f.declared('guidance', O.guidance.schema.min(0).max(LIMITS.maxGuidance));
  const cls = numClasses > 0 || clf ? f.optInt('class', 0, (numClasses > 0 ? numClasses : clf!.numClasses) - 1) : undefined;
  if (clf && cls === undefined) badRequest('classifier guidance steers every image toward one class; choose a class', 'class');
  const seed = f.declared('seed', R.seed.schema.max(LIMITS.maxSeed)) ?? 0;
  const count = f.int('count', 1, LIMITS.maxCount);
  if (interpolateTo !== undefined) {
    asBadRequest(sampler !== 'ddim' ? 'sampler' : 'eta', () => checkInterpolationSampler(sampler, eta, 'interpolation'));
    if (interpolateTo === seed) badRequest(`interpolateTo is the seed itself (${seed}); the path from a latent to itself is one image, pick another seed`, 'interpolateTo');
    if (count < 2) badRequest(`an interpolation needs at least 2 frames (count), got ${count}`, 'count');
  }
  // Without a class, a class-conditional run draws the classes in turn, one column each (an interpolation: class 0 throughout).
  const labels = numClasses === 0 && !clf ? undefined : Array.from({ length: count }, (_, i) => cls ?? (interpolateTo !== undefined ? 0 : i % numClasses));
  const nrow = interpolateTo !== undefined ? count : numClasses > 0 && cls === undefined ? Math.min(count, numClasses) : Math.ceil(Math.sqrt(count));
  const { imageChannels: c, imageSize: s } = config.model;
  // The samplers' own refusals (e.g. an eps model on a zero-terminal-SNR schedule) as a 400 now, not a failed job later.
  const d = new Diffusion(makeSchedule(config.schedule));
  try {
    asBadRequest(undefined, () => resolveSampling({
      model: () => { throw new Error('not called'); }, diffusion: d, objective: runObjective(config), shape: [count, c, s, s], sampler, steps,
      ...(def.variance !== null ? { variance: def.variance } : {}), ...(runLearnVariance(config) ? { learnVariance: true } : {}),
      ...(eta !== undefined ? { eta } : {}), ...(labels && numClasses > 0 ? { numClasses, labels } : {}), ...(guidance !== undefined ? { guidance } : {}),
      ...(clf && labels ? { classifier: { scale: clf.scale, numClasses: clf.numClasses, labels } } : {}),
    }));
  } finally {
    d.dispose();
  }
  return {
    run: path.basename(run.root),
    input: {
      kind: 'generate', runDir: run.root, checkpointDir: ckptDir, sampler, steps, nrow, seed, count, maxFrames: LIMITS.maxFrames,
      ...(eta !== undefined ? { eta } : {}), ...(def.variance !== null ? { variance: def.variance } : {}), ...(guidance !== undefined ? { guidance } : {}), ...(labels ? { labels } : {}),
      ...(interpolateTo !== undefined ? { interpolateTo } : {}),
      ...(clf ? { classifier: { dir: clf.dir, scale: clf.scale } } : {}),
    },
  };
}

/** The request's classifier run (a folder under --runs trained for `run`) and scale, checked as `ddpm sample --classifier` checks them; null without one. */
function generateClassifier(f: Fields, runsDir: string, run: RunFolder, config: RunConfig): { dir: string; scale: number; numClasses: number } | null {
  const name = f.name('classifier', true);
  const scale = f.declared('classifierScale', O.classifierScale.schema.min(0).max(LIMITS.maxGuidance));
  if (name === undefined) {
    if (scale !== undefined) badRequest('classifierScale needs a classifier run', 'classifierScale');
    return null;
  }
  const dir = runFolder(runsDir, name, 'classifier');
  const c = readRunConfig(dir);
  if (!c.classifier) badRequest(`${name} is a diffusion model's run, not a classifier's (train one with ddpm train-classifier --run ${path.basename(run.root)})`, 'classifier');
  asBadRequest('classifier', () => checkClassifierFits(c, name, config, path.basename(run.root)));
  return { dir: dir.root, scale: scale ?? DEFAULT_CLASSIFIER_SCALE, numClasses: c.model.numClasses ?? 0 };
}
