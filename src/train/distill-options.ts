// The `ddpm distill` options, declared once: flag, help words, type and range (options/declare.ts).
// The command line (cli/distill.ts) makes its flags from DISTILL_OPTIONS in this order, and
// train/options.ts's DISTILL_CONFIG_SCHEMA, whose leaves these flags share, checks the `distill` block
// of a config.json whenever a distilled run is opened. The flags that steer a process (threads, checkpoints, resume) are
// `ddpm train`'s own declarations, shared rather than copied.
import * as z from 'zod';
import { option } from '../options/declare.js';
import { DISTILL_WEIGHTINGS, OBJECTIVES } from '../diffusion/index.js';
import { STEPS } from '../samplers/index.js';
import { TRAIN_OPTIONS, DISTILL_CONFIG_SCHEMA } from './options.js';

/** The student's objective: v or x_0. Section 4 of the paper: eps cannot be read at SNR near 0, which a few-step sampler's first step is. */
export const STUDENT_OBJECTIVES = OBJECTIVES.filter((o): o is Exclude<(typeof OBJECTIVES)[number], 'eps'> => o !== 'eps');

export type StudentObjective = (typeof STUDENT_OBJECTIVES)[number];

export const DISTILL_OPTIONS = {
  run: option({ name: 'run', flag: '--run <dir>', help: 'the teacher: a run folder written by `ddpm train` (or by `ddpm distill`, to distil further)', schema: z.string().min(1) }),
  checkpoint: option({ name: 'checkpoint', flag: '--checkpoint <path>', help: "the teacher's checkpoints/step-N folder or weights file (a folder's EMA weights when it has them)", defaultHelp: 'the latest', schema: z.string().min(1) }),
  out: option({ name: 'out', flag: '--out <dir>', help: 'run folder to create for the student (e.g. runs/dli02-distilled); required unless --resume names a run', schema: z.string().min(1) }),
  steps: option({ name: 'steps', flag: '--steps <k>', help: "the student's DDIM step count, a power of two: each round halves the teacher's, from the largest power of two <= T", defaultHelp: '8', schema: STEPS }),
  teacherSteps: option({ name: 'teacherSteps', flag: '--teacher-steps <n>', help: "the DDIM step count the teacher is read at, a power of two <= T; the first round's student takes half", defaultHelp: "the largest power of two <= T, or a distilled teacher's own", schema: STEPS }),
  iterations: option({ name: 'iterations', flag: '--iterations <n>', help: 'optimizer steps per round (the learning rate decays linearly to 0 over each)', defaultHelp: '500', schema: DISTILL_CONFIG_SCHEMA.shape.iterations }),
  objective: option({ name: 'objective', flag: '--objective <kind>', help: `what the student predicts: ${STUDENT_OBJECTIVES.join(', ')} (an eps teacher's output is converted)`, defaultHelp: 'v', schema: z.enum(STUDENT_OBJECTIVES) }),
  lossWeight: option({ name: 'lossWeight', flag: '--loss-weight <kind>', help: `weight of the x0 error: ${DISTILL_WEIGHTINGS.join(', ')} (max(SNR, 1), or SNR + 1: the v loss)`, defaultHelp: 'truncated-snr', schema: DISTILL_CONFIG_SCHEMA.shape.weighting }),
  batchSize: option({ ...TRAIN_OPTIONS.batchSize, defaultHelp: "the teacher's" }),
  lr: option({ name: 'lr', flag: '--lr <x>', help: 'Adam learning rate at the start of each round', defaultHelp: '0.0005', schema: TRAIN_OPTIONS.lr.schema }),
  emaDecay: option({ ...TRAIN_OPTIONS.emaDecay, help: "EMA decay of the student's weights, 0 for none; the next round's teacher and sampling use the EMA", defaultHelp: '0' }),
  seed: option({ ...TRAIN_OPTIONS.seed, help: 'seed for the data order and noise', defaultHelp: '0' }),
  limit: option({ ...TRAIN_OPTIONS.limit, help: 'distil on the first N training images only' }),
  data: TRAIN_OPTIONS.data,
  threads: TRAIN_OPTIONS.threads,
  resume: option({ ...TRAIN_OPTIONS.resume, help: 'continue a distillation exactly: its run folder, a checkpoints/step-N folder, or "latest" of --out' }),
  checkpointEvery: option({ ...TRAIN_OPTIONS.checkpointEvery, help: "also checkpoint every N steps, 0 for only at the end of each round" }),
  keep: TRAIN_OPTIONS.keep,
  maxSteps: TRAIN_OPTIONS.maxSteps,
  sampleGrids: option({ ...TRAIN_OPTIONS.sampleGrids, help: 'skip the sample grid after each round' }),
} as const;

export type DistillOptionName = keyof typeof DISTILL_OPTIONS;

/** The defaults a run does not decide. */
export const DISTILL_DEFAULTS = { steps: 8, iterations: 500, objective: 'v', lossWeight: 'truncated-snr', lr: 5e-4, emaDecay: 0, seed: 0 } as const;
