// Checkpoints: writing a training session's full state, continuing it exactly, and loading a
// trained model back for sampling. Weights and optimizer moments are safetensors; the rest JSON.
import path from 'node:path';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { keep, noGrad, tidy } from '../tensor/index.js';
import { RunFolder } from '../io/run.js';
import { loadTensors, serializeTensors } from '../io/tensors.js';
import { createModel, type DiffusionUNet } from '../models/index.js';
import type { Module } from '../nn/index.js';
import { Diffusion, makeSchedule } from '../diffusion/index.js';
import type { LoaderPosition } from '../data/loader.js';
import { readRunConfig, type RunConfig } from './config.js';
import type { TrainingSession } from './trainer.js';
import type { EmaMeta } from './ema.js';

/** What a checkpoint's state.json holds beside the safetensors files. */
export interface TrainState {
  step: number;
  epoch: number;
  loader: LoaderPosition;
  /** The generator drawing t and eps, base64 of its state bytes. */
  noiseGenerator: string;
  optimizer: { step: number; lr: number };
  loss: number;
  /** Decay and update count of the EMA, when the run keeps one (its weights are ema.safetensors). */
  ema?: EmaMeta;
  /** Images per step over all processes (absent: train.batchSize, a one-process run). */
  globalBatchSize?: number;
}

/** The files of a checkpoint folder; refuses to produce one from non-finite weights. */
export function checkpointFiles(s: TrainingSession<Module>, loss: number): Record<string, Uint8Array | string> {
  const weights = s.model.stateDict();
  const ema = s.ema?.stateDict() ?? null;
  for (const [what, dict] of [['', weights], ['EMA ', ema ?? new Map<string, never>()]] as const) {
    for (const [k, t] of dict) {
      if (t.dtype.startsWith('float') && !tidy(() => t.isfinite().all().item())) {
        throw new Error(`refusing to write checkpoint step-${s.step}: ${what}${k} has non-finite values (training diverged; try a lower --lr)`);
      }
    }
  }
  const opt = s.optimizer.stateDict();
  const state: TrainState = {
    step: s.step,
    epoch: s.loader.epoch,
    loader: s.loader.position(),
    noiseGenerator: Buffer.from(s.noiseGen.getState()).toString('base64'),
    optimizer: { step: opt.step, lr: opt.lr },
    loss,
    ...(s.ema ? { ema: s.ema.meta() } : {}),
    globalBatchSize: s.loader.globalBatchSize,
  };
  return {
    'model.safetensors': serializeTensors(weights, { format: 'pt', producer: 'ddpm-ts' }),
    ...(ema ? { 'ema.safetensors': serializeTensors(ema, { format: 'pt', producer: 'ddpm-ts', decay: String(s.ema!.decay) }) } : {}),
    'optimizer.safetensors': serializeTensors(opt.tensors, { step: String(opt.step) }),
    'state.json': `${JSON.stringify(state, null, 2)}\n`,
  };
}

function readState(file: string): TrainState {
  let state: TrainState;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as TrainState;
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  const ok = Number.isInteger(state.step) && state.step >= 0 && Number.isInteger(state.epoch) && state.loader && Array.isArray(state.loader.epochState)
    && typeof state.noiseGenerator === 'string' && state.optimizer && Number.isInteger(state.optimizer.step);
  if (!ok) throw new Error(`${file} is not a ddpm-ts training state (step, epoch, loader, noiseGenerator, optimizer expected)`);
  return state;
}

/**
 * Loads a checkpoint folder into a freshly built session so training continues exactly where it
 * stopped. Everything is read and checked before anything changes.
 */
export function restoreTraining(s: TrainingSession<Module>, dir: string, globalBatchSize?: number): void {
  for (const f of ['model.safetensors', 'optimizer.safetensors', 'state.json']) {
    if (!existsSync(path.join(dir, f))) throw new Error(`checkpoint ${dir} is incomplete: ${f} is missing`);
  }
  const state = readState(path.join(dir, 'state.json'));
  if (s.ema && !existsSync(path.join(dir, 'ema.safetensors'))) throw new Error(`checkpoint ${dir} is incomplete: the run keeps an EMA but ema.safetensors is missing`);
  if (!s.ema && existsSync(path.join(dir, 'ema.safetensors'))) throw new Error(`checkpoint ${dir} has EMA weights but the run's config has no EMA (train.emaDecay is 0)`);
  const weights = loadTensors(path.join(dir, 'model.safetensors')).tensors;
  const moments = loadTensors(path.join(dir, 'optimizer.safetensors')).tensors;
  const emaWeights = s.ema ? loadTensors(path.join(dir, 'ema.safetensors')).tensors : new Map<string, never>();
  // Each part checks itself whole, but a later part can still refuse (a damaged optimizer file, a
  // generator state of the wrong size): undo the earlier ones then. The optimizer goes last, as
  // the one part that is not undone (its own load changes nothing when it refuses).
  const undo = {
    loader: s.loader.position(),
    noise: s.noiseGen.getState(),
    weights: noGrad(() => new Map([...s.model.stateDict()].map(([k, t]) => [k, keep(t.clone())]))),
    ema: s.ema ? noGrad(() => new Map([...s.ema!.stateDict()].map(([k, t]) => [k, keep(t.clone())]))) : null,
    emaMeta: s.ema?.meta(),
  };
  // --reshard: a position counted in batches of another global size continues at the first batch
  // not yet fully seen (the generator state is the epoch's start, so the epoch's permutation repeats).
  const savedGlobal = state.globalBatchSize ?? s.loader.o.batchSize;
  const position = globalBatchSize !== undefined && savedGlobal !== globalBatchSize
    ? { ...state.loader, batch: Math.floor((state.loader.batch * savedGlobal) / globalBatchSize) }
    : state.loader;
  try {
    s.loader.restore(position);
    s.noiseGen.setState(new Uint8Array(Buffer.from(state.noiseGenerator, 'base64')));
    s.model.loadStateDict(weights, path.join(dir, 'model.safetensors'));
    s.ema?.loadStateDict(emaWeights, state.ema, path.join(dir, 'ema.safetensors'));
    s.optimizer.loadStateDict({ tensors: moments, step: state.optimizer.step, lr: state.optimizer.lr }, path.join(dir, 'optimizer.safetensors'));
  } catch (e) {
    s.model.loadStateDict(undo.weights);
    if (undo.ema) s.ema!.loadStateDict(undo.ema, undo.emaMeta);
    s.noiseGen.setState(undo.noise);
    s.loader.restore(undo.loader);
    throw e;
  } finally {
    for (const t of [...weights.values(), ...moments.values(), ...emaWeights.values(), ...undo.weights.values(), ...(undo.ema?.values() ?? [])]) t.dispose();
  }
  s.step = state.step;
}

export interface LoadedRun { config: RunConfig; model: DiffusionUNet; diffusion: Diffusion; checkpoint: string; step: number | null }

/** Resolves `checkpoint` (a step-N folder or a model.safetensors file) or the run's latest one. */
export function resolveCheckpoint(run: RunFolder, checkpoint?: string): string {
  if (checkpoint === undefined) {
    const latest = run.latestCheckpoint();
    if (!latest) throw new Error(`${run.root} has no complete checkpoint under checkpoints/ (was training stopped before the first epoch ended?)`);
    return path.join(latest.dir, 'model.safetensors');
  }
  if (!existsSync(checkpoint)) throw new Error(`checkpoint ${checkpoint} does not exist`);
  const file = statSync(checkpoint).isDirectory() ? path.join(checkpoint, 'model.safetensors') : checkpoint;
  if (!existsSync(file)) throw new Error(`checkpoint folder ${checkpoint} has no model.safetensors`);
  return file;
}

/**
 * The run folder and checkpoint folder that `--resume X` names: a checkpoint folder, a run folder, or
 * "latest" of `out`. A run killed before its first checkpoint has config.json and no checkpoint:
 * `checkpoint` is then undefined and the run starts again from step 0 with its saved configuration
 * (nothing of it was kept but the config and log lines, so this loses nothing and leaves no dead end).
 */
export function resolveResume(resume: string, out?: string): { run: RunFolder; checkpoint: string | undefined } {
  if (resume === 'latest') {
    if (!out) throw new Error('--resume latest needs --out RUN to say which run to continue');
    const run = new RunFolder(out);
    readRunConfig(run);
    return { run, checkpoint: run.latestCheckpoint()?.dir };
  }
  if (!existsSync(resume)) throw new Error(`--resume ${resume}: no such run or checkpoint folder (a resume never starts a fresh run)`);
  if (existsSync(path.join(resume, 'config.json'))) return resolveResume('latest', resume);
  if (existsSync(path.join(resume, 'state.json'))) {
    const root = path.dirname(path.dirname(path.resolve(resume)));
    const run = new RunFolder(root);
    readRunConfig(run);
    if (out && path.resolve(out) !== root) throw new Error(`--resume ${resume} belongs to run ${root}, not --out ${out}`);
    return { run, checkpoint: resume };
  }
  throw new Error(`--resume ${resume}: neither a run folder (config.json) nor a checkpoint folder (state.json)`);
}

/**
 * A trained model for sampling: the checkpoint's EMA weights when it has them (as diffusers and
 * lucidrains sample from the EMA), unless `ema` is false or a weights file is named directly.
 */
export function loadRun(runDir: string, checkpoint?: string, o: { ema?: boolean } = {}): LoadedRun {
  const run = new RunFolder(runDir);
  const config = readRunConfig(run);
  if (config.classifier) throw new Error(`${runDir} holds a noise-aware classifier (ddpm train-classifier), not a diffusion model; sample from its diffusion run with --run ${config.classifier.run} --classifier ${runDir}`);
  let file = resolveCheckpoint(run, checkpoint);
  const namedFile = checkpoint !== undefined && existsSync(checkpoint) && !statSync(checkpoint).isDirectory();
  const emaFile = path.join(path.dirname(file), 'ema.safetensors');
  if (!namedFile && (o.ema ?? true) && existsSync(emaFile)) file = emaFile;
  const model = createModel(config.model);
  const { tensors } = loadTensors(file);
  try {
    model.loadStateDict(tensors, file);
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  model.eval();
  const m = /step-(\d+)/.exec(path.basename(path.dirname(file)));
  return { config, model, diffusion: new Diffusion(makeSchedule(config.schedule)), checkpoint: file, step: m ? Number(m[1]) : null };
}
