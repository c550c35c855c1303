// The `ddpm train-classifier` options, declared once. Most are `ddpm train`'s own declarations
// (train/options.ts) with the classifier's defaults (CLASSIFIER_TRAIN_DEFAULTS); --run is new. The
// command line (cli/train-classifier.ts) makes its flags from these in this order, and a resume
// compares the 'run'-scoped ones with the classifier's config.json through `config`.
import * as z from 'zod';
import { TRAIN_OPTIONS as T, type TrainOptionDecl } from './options.js';
import { CLASSIFIER_TRAIN_DEFAULTS as D } from './classifier.js';
import { DEVICE_HELP } from '../samplers/options.js';

export const CLASSIFIER_OPTIONS = {
  run: {
    scope: 'run', name: 'run', flag: '--run <dir>', schema: z.string().min(1), config: (c) => c.classifier?.run,
    help: 'the diffusion run (of `ddpm train`) to guide: the classifier takes its schedule, image size, channels, data and classes (Fashion-MNIST has 10 even when the run is unconditional); required unless --resume',
  },
  out: { ...T.out, help: 'classifier run folder to create (e.g. runs/clf); required unless --resume names one' },
  epochs: { ...T.epochs, default: D.epochs },
  batchSize: { ...T.batchSize, default: D.batchSize },
  lr: { ...T.lr, default: D.lr },
  seed: { ...T.seed, default: D.seed },
  limit: T.limit,
  data: { ...T.data, help: "where to find the run's Fashion-MNIST (default: the folder it was trained from)" },
  device: { ...T.device, help: DEVICE_HELP },
  threads: T.threads,
  resume: { ...T.resume, help: 'continue a classifier run exactly: its folder, a checkpoints/step-N folder, or "latest" of --out' },
  checkpointEvery: T.checkpointEvery,
  keep: T.keep,
  maxSteps: T.maxSteps,
} as const satisfies Record<string, TrainOptionDecl>;

export type ClassifierOptionName = keyof typeof CLASSIFIER_OPTIONS;
