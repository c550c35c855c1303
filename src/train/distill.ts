// Progressive distillation (Salimans & Ho 2022, Algorithm 2): each round, a student that starts from
// the teacher's weights learns to take in one DDIM step what the teacher takes in two; then the
// student becomes the teacher and the step count halves. The loop is the trainer's (trainer.ts):
// the same session, optimisation step, checkpoints, resume, log and grids; only the loss and the
// round boundaries are distillation's.
//
// Round r covers steps (r I, (r + 1) I] of I iterations. At its start the student and the teacher
// both take the previous round's final weights (its EMA when kept), Adam and the EMA start afresh
// and the learning rate decays linearly to 0 over the round. Every checkpoint holds the current
// teacher too (teacher.safetensors), so a resume mid-round continues bit for bit without the
// teacher's run.
import path from 'node:path';
import { existsSync } from 'node:fs';
import {
  Generator, noGrad, setNumThreads, getNumThreads, randint, randn, tensor, type Tensor,
} from '../tensor/index.js';
import { Adam } from '../nn/index.js';
import {
  Diffusion, makeSchedule, distillationTarget, distillationWeight, distillationLoss, predictionsFromOutput, type Objective, type DistillWeighting,
} from '../diffusion/index.js';
import { createModel, inferencePredictor, type DiffusionUNet, type InferencePredictor } from '../models/index.js';
import { openDataset, datasetSpec } from '../data/dataset.js';
import { BatchLoader } from '../data/loader.js';
import type { RunFolder } from '../io/run.js';
import { loadTensors, serializeTensors } from '../io/tensors.js';
import { checkRunConfig, runObjective, type RunConfig, type DistillSettings } from './config.js';
import { restoreTraining } from './checkpoint.js';
import { EMA } from './ema.js';
import { buildModel, optimizerStep, classInput, stepSettings, saveCheckpoint, writeSampleGrid, mean, type TrainingSession, type TrainOptions } from './trainer.js';
import { twoStepTimesteps, largestPowerOfTwo, distillRounds, checkTeacherSteps, type TwoStepTimesteps } from './distill-plan.js';
import type { StudentObjective } from './distill-options.js';

export interface DistillStepInfo {
  step: number; totalSteps: number; round: number; rounds: number; steps: number;
  loss: number; smoothedLoss: number; imagesPerSecond: number; elapsedSeconds: number;
}
export interface RoundInfo { round: number; steps: number; step: number; meanLoss: number; grid: string | null; checkpoint: string }

export interface DistillHooks {
  onStart?(info: { images: number; totalSteps: number; dataDir: string; resumedAt: number }): void;
  onStep?(info: DistillStepInfo): void;
  /** A round is done: its student is checkpointed (and its grid drawn at its step count). */
  onRound?(info: RoundInfo): void;
  onSkip?(info: { step: number; reason: string; inARow: number }): void;
  onCheckpoint?(dir: string): void;
}

/** What a distillation shares with a training run (trainer.ts's TrainOptions), and what it counts in rounds. */
export type DistillOptions = Pick<TrainOptions, 'threads' | 'data' | 'signal' | 'resumeFrom' | 'restart' | 'keep' | 'maxBadSteps' | 'dataset'> & {
  hooks?: DistillHooks;
  /** Also checkpoint every N steps (0: only at the end of each round). */
  checkpointEvery?: number;
  /** Draw a grid with each round's student at its step count. */
  sampleGrids?: boolean;
  /** Stop (with a checkpoint) once this many steps are done, mid-round if need be. */
  maxSteps?: number;
};

export interface DistillSummary { steps: number; finalLoss: number; seconds: number; imagesPerSecond: number; checkpoint: string; skipped: number }

/** What `ddpm distill` needs besides the teacher's config. */
export interface DistillPlan {
  /** The teacher's run folder and the weights file its first round starts from. */
  teacherRun: string;
  teacherCheckpoint: string;
  /** The last round's student step count (a power of two). */
  steps: number;
  /** The DDIM step count the teacher is read at (a power of two <= T; absent: the largest, or a distilled teacher's own). */
  teacherSteps?: number;
  iterations: number;
  objective: StudentObjective;
  weighting: DistillWeighting;
  batchSize?: number;
  lr: number;
  emaDecay: number;
  seed: number;
  /** Distil on the first N images (absent: the teacher's limit). */
  limit?: number;
}

/**
 * The student run's config: the teacher's model and schedule, the student's objective, the
 * distillation's optimiser settings in `train`, DDIM at the last round's step count in `samples` (so
 * `ddpm sample` and `ddpm eval` use it by default), and the teacher and rounds in `distill`. A
 * distilled teacher is distilled further from its own step count.
 */
export function distilledConfig(teacher: RunConfig, o: DistillPlan): RunConfig {
  const own = teacher.distill ? teacher.distill.rounds[teacher.distill.rounds.length - 1]! : null;
  const from = o.teacherSteps ?? own ?? largestPowerOfTwo(teacher.model.T);
  checkTeacherSteps(from, teacher.model.T, own, o.teacherRun);
  const rounds = distillRounds(from, o.steps, `the teacher ${o.teacherRun}`);
  const { loss: _loss, distributed: _distributed, distill: _distill, ...rest } = teacher;
  const { lrSchedule: _lrSchedule, ...train } = teacher.train;
  return {
    ...rest,
    objective: o.objective,
    train: { ...train, batchSize: o.batchSize ?? train.batchSize, lr: o.lr, seed: o.seed, emaDecay: o.emaDecay, limit: o.limit ?? train.limit },
    samples: { ...teacher.samples, sampler: 'ddim', steps: o.steps },
    distill: {
      teacher: { run: o.teacherRun, checkpoint: o.teacherCheckpoint, objective: runObjective(teacher), steps: from },
      rounds, iterations: o.iterations, weighting: o.weighting,
    },
  };
}

/** The round (0-based) that the step after `done` steps belongs to. */
export function roundOfStep(done: number, iterations: number): number { return Math.floor(done / iterations); }

/** The grid settings of a round's student: DDIM (eta 0, trailing) at its step count. */
export function roundSampling(config: RunConfig, steps: number): RunConfig {
  return { ...config, samples: { ...config.samples, sampler: 'ddim', steps } };
}

/** The teacher of the round being distilled, as an eval-mode predictor of x_0. */
class Teacher {
  readonly model: DiffusionUNet;
  #predictor: InferencePredictor | null = null;
  constructor(config: RunConfig) {
    this.model = createModel(config.model);
    this.model.eval();
  }
  load(state: Map<string, Tensor>, source: string): void {
    this.#predictor?.dispose();
    this.model.loadStateDict(state, source);
    this.#predictor = inferencePredictor(this.model);
  }
  forward(x: Tensor, t: Tensor, c: Tensor | null): Tensor { return this.#predictor!.forward(x, t, c); }
  dispose(): void {
    this.#predictor?.dispose();
    this.model.dispose();
  }
}

export async function distill(config: RunConfig, run: RunFolder, o: DistillOptions): Promise<DistillSummary> {
  if (o.threads === undefined) return distillRun(config, run, o);
  const callerThreads = getNumThreads();
  setNumThreads(o.threads);
  try {
    return await distillRun(config, run, o);
  } finally {
    setNumThreads(callerThreads);
  }
}

async function distillRun(config: RunConfig, run: RunFolder, o: DistillOptions): Promise<DistillSummary> {
  checkRunConfig(config);
  const d: DistillSettings | undefined = config.distill;
  if (!d) throw new Error(`distill: the config of ${run.root} has no distill block (it was written by \`ddpm train\`; distil it with \`ddpm distill --run ${run.root} --out NEW\`)`);
  const diffusion = new Diffusion(makeSchedule(config.schedule));
  const { images, labels, dataDir } = o.dataset ?? openDataset(datasetSpec(config), 'train', o.data);
  const tc = config.train;
  const I = d.iterations;
  const totalSteps = d.rounds.length * I;
  const teacher = new Teacher(config);
  const model = buildModel(config);
  const settings = stepSettings(config, totalSteps);
  const s: TrainingSession = {
    model,
    optimizer: new Adam(model.namedParameters(), { lr: tc.lr }),
    loader: new BatchLoader(images, settings.numClasses > 0 ? labels : null, { batchSize: tc.batchSize, seed: tc.seed + 1, flip: tc.flip }),
    noiseGen: new Generator(tc.seed + 2),
    step: 0,
    ema: null,
  };
  const newEma = (): EMA | null => ((tc.emaDecay ?? 0) > 0 ? new EMA(model, { decay: tc.emaDecay! }) : null);
  if (o.resumeFrom) {
    s.ema = newEma();
    restoreTraining(s, o.resumeFrom);
    const file = path.join(o.resumeFrom, 'teacher.safetensors');
    if (!existsSync(file)) throw new Error(`checkpoint ${o.resumeFrom} is incomplete: teacher.safetensors is missing (a distillation checkpoint holds its round's teacher)`);
    loadInto(file, (w) => teacher.load(w, file));
    run.dropTornLogLine();
  } else {
    // The first round's student and teacher: the teacher run's weights.
    loadInto(d.teacher.checkpoint, (w) => {
      teacher.load(w, d.teacher.checkpoint);
      model.loadStateDict(w, d.teacher.checkpoint);
    });
    s.ema = newEma();
    // Only once the data and the teacher have loaded: a refusal leaves no run folder behind.
    run.create(o.restart ?? false);
    if (o.restart) run.setAsideLog();
    const epochs = Math.max(1, Math.ceil(totalSteps / s.loader.batchesPerEpoch));
    run.writeConfig({ ...config, train: { ...tc, data: dataDir, epochs } });
  }
  const resumedAt = s.step;
  // The round whose teacher is loaded: the round of the last step done.
  let loaded = resumedAt === 0 ? 0 : roundOfStep(resumedAt - 1, I);
  let plan: TwoStepTimesteps[] = twoStepTimesteps(config.model.T, d.rounds[loaded]!);
  const teacherObjective = (round: number): Objective => (round === 0 ? d.teacher.objective : runObjective(config));
  const beginRound = (round: number): void => {
    // Algorithm 2: the student becomes the teacher, and the new student starts from it.
    noGrad(() => {
      const weights = s.ema ? s.ema.stateDict() : model.stateDict();
      teacher.load(weights, `round ${round}'s student`);
      if (s.ema) model.loadStateDict(weights, `round ${round}'s student (EMA)`);
    });
    s.optimizer = new Adam(model.namedParameters(), { lr: tc.lr });
    s.ema?.dispose();
    s.ema = newEma();
    plan = twoStepTimesteps(config.model.T, d.rounds[round]!);
  };
  o.hooks?.onStart?.({ images: images.shape[0]!, totalSteps, dataDir, resumedAt });

  const snr = diffusion.terms.snr;
  const lossOf = (batch: { x: Tensor; y: Tensor | null }, round: number): Tensor => {
    const c = classInput(s, batch, settings);
    const x0 = batch.x; // (B, C, H, W)
    const b = x0.shape[0]!;
    const [, ...chw] = x0.shape;
    // Algorithm 2: i ~ U{1..N}, then eps ~ N(0, I), both from the session's generator (so a resume repeats them).
    const steps = Array.from(randint(0, plan.length, [b], { generator: s.noiseGen }).toArray() as ArrayLike<number | bigint>, Number);
    const noise = randn([b, ...chw], { generator: s.noiseGen }); // (B, C, H, W)
    const at: TwoStepTimesteps[] = steps.map((i) => plan[i]!);
    const col = (f: (p: TwoStepTimesteps) => number): Tensor => tensor(Float32Array.from(at, f), [b, 1, 1, 1]); // (B, 1, 1, 1)
    const coef = (t: number): { a: number; s: number } => diffusion.coefs(t);
    const k = {
      a: col((p) => coef(p.t).a), s: col((p) => coef(p.t).s),
      aMid: col((p) => coef(p.mid).a), sMid: col((p) => coef(p.mid).s),
      aNext: col((p) => coef(p.next).a), sNext: col((p) => coef(p.next).s),
    };
    const t = tensor(BigInt64Array.from(at, (p) => BigInt(p.t)), [b], { dtype: 'int64' });
    const tMid = tensor(BigInt64Array.from(at, (p) => BigInt(p.mid)), [b], { dtype: 'int64' });
    const zt = x0.mul(k.a).add(noise.mul(k.s)); // (B, C, H, W)
    const tObj = teacherObjective(round);
    const target = noGrad(() => distillationTarget(
      (z, mid) => predictionsFromOutput(tObj, teacher.forward(z, mid ? tMid : t, c), z, mid ? k.aMid : k.a, mid ? k.sMid : k.s).x0, zt, k));
    const xHat = predictionsFromOutput(runObjective(config), model.forward(zt, t, c), zt, k.a, k.s).x0;
    const w = tensor(Float32Array.from(at, (p) => distillationWeight(snr[p.t]!, d.weighting)), [b]);
    return distillationLoss(xHat, target, w);
  };

  const maxBad = o.maxBadSteps ?? 20;
  const keep = o.keep ?? 0;
  const start = performance.now();
  let smoothed = NaN;
  let lastLoss = NaN;
  let logLosses: number[] = [];
  let logStart = performance.now();
  let roundLosses: number[] = [];
  let checkpoint = '';
  let badInRow = 0;
  let skipped = 0;
  const save = (): void => {
    // A stop that lands on a round's end has already saved this step.
    if (existsSync(run.checkpointDir(s.step))) return;
    const teacherFile = noGrad(() => serializeTensors(teacher.model.stateDict(), { format: 'pt', producer: 'ddpm-ts' }));
    checkpoint = saveCheckpoint(run, s, lastLoss, keep, { 'teacher.safetensors': teacherFile });
    o.hooks?.onCheckpoint?.(checkpoint);
  };
  const stopEarly = (): boolean => (o.signal?.aborted ?? false) || (o.maxSteps !== undefined && s.step >= o.maxSteps);
  model.train();
  while (s.step < totalSteps && !stopEarly()) {
    const round = roundOfStep(s.step, I);
    if (round !== loaded) {
      beginRound(round);
      loaded = round;
    }
    s.optimizer.lr = tc.lr * (1 - (s.step - round * I) / I);
    const r = optimizerStep(s, settings, (batch) => lossOf(batch, round));
    // The data is exhausted: the loader starts its next epoch at the next call.
    if (r === 'end-of-epoch') continue;
    s.step += 1;
    if (typeof r === 'string') {
      badInRow += 1;
      skipped += 1;
      o.hooks?.onSkip?.({ step: s.step, reason: r, inARow: badInRow });
      if (badInRow >= maxBad) {
        throw new Error(`stopping at step ${s.step}: ${badInRow} steps in a row were skipped (${r}). ` +
          `The last good checkpoint is kept${checkpoint ? ` (${checkpoint})` : ''}; lower --lr`);
      }
    } else {
      badInRow = 0;
      lastLoss = r.loss;
      smoothed = Number.isNaN(smoothed) ? r.loss : 0.98 * smoothed + 0.02 * r.loss;
      logLosses.push(r.loss);
      roundLosses.push(r.loss);
    }
    const elapsed = (performance.now() - start) / 1000;
    const steps = d.rounds[round]!;
    o.hooks?.onStep?.({
      step: s.step, totalSteps, round, rounds: d.rounds.length, steps, loss: lastLoss, smoothedLoss: smoothed,
      imagesPerSecond: ((s.step - resumedAt) * tc.batchSize) / elapsed, elapsedSeconds: elapsed,
    });
    const roundDone = s.step % I === 0;
    if (logLosses.length > 0 && (s.step % tc.logEvery === 0 || roundDone)) {
      const now = performance.now();
      run.appendLog({
        step: s.step, epoch: s.loader.epoch, round: round + 1, steps, loss: mean(logLosses), lr: s.optimizer.lr,
        imagesPerSecond: (logLosses.length * tc.batchSize) / ((now - logStart) / 1000), time: new Date().toISOString(),
      });
      logLosses = [];
      logStart = now;
    }
    if (roundDone) {
      let grid: string | null = null;
      if (o.sampleGrids ?? true) {
        grid = path.join(run.samplesDir, `round-${round + 1}-steps-${String(steps).padStart(3, '0')}.png`);
        writeSampleGrid(s, diffusion, roundSampling(config, steps), grid);
      }
      save();
      o.hooks?.onRound?.({ round, steps, step: s.step, meanLoss: mean(roundLosses), grid, checkpoint });
      roundLosses = [];
    } else if (o.checkpointEvery && s.step % o.checkpointEvery === 0) {
      save();
    }
    if (s.step % 4 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  if (stopEarly() && s.step > resumedAt) save();
  const seconds = (performance.now() - start) / 1000;
  if (!o.dataset) {
    images.dispose();
    labels?.dispose();
  }
  s.ema?.dispose();
  teacher.dispose();
  return { steps: s.step, finalLoss: lastLoss, seconds, skipped, imagesPerSecond: ((s.step - resumedAt) * tc.batchSize) / seconds, checkpoint };
}

/** Reads a safetensors file and hands its tensors to `use`, freeing them after. */
function loadInto(file: string, use: (w: Map<string, Tensor>) => void): void {
  const { tensors } = loadTensors(file);
  try {
    use(tensors);
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
