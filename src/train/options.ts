// The `ddpm train` options, declared once: flag, help words, type and range, and where the value lives
// in a run's config.json (from which each preset's default is read, so the help cannot disagree with
// presetDefaults). The command line (cli/train.ts) makes its flags from TRAIN_OPTIONS in this order,
// the studio (studio/requests.ts) checks its train requests with the same schemas, and readRunConfig
// checks a config.json with them when a run is opened or resumed.
//
// To add a training option (e.g. --nproc-per-node, --backend, --sync-bn): add one entry to
// TRAIN_OPTIONS. Give it `config` if it is stored in config.json (then it is run-defining: a resume
// refuses a different value, and RUN_CONFIG_SCHEMA checks it when a run is opened) and list its path in
// RUN_CONFIG_SCHEMA; leave `config` out for a per-process flag (threads, checkpoints, devices). Then
// read it in cli/train.ts's applyFlags or runTrain. Nothing else needs to change.
import * as z from 'zod';
import { expected, show, type OptionDecl } from '../options/declare.js';
import { PRESETS } from '../models/index.js';
import { SCHEDULES, OBJECTIVES, LOSS_WEIGHTINGS, DISTILL_WEIGHTINGS } from '../diffusion/index.js';
import { SAMPLERS, VARIANCES, STEPS } from '../samplers/index.js';
import { DEVICE_SCHEMA, DEVICE_HELP } from '../samplers/options.js';
import { BACKENDS, DEFAULT_TIMEOUT_MS } from '../distributed/index.js';
import type { RunConfig } from './config.js';

/** A training option: its declaration, whether it defines the run, and where config.json keeps it. */
export interface TrainOptionDecl<S extends z.ZodType = z.ZodType> extends OptionDecl<S> {
  /**
   * 'run': stored in config.json and fixed for the run's life (a resume refuses a different value);
   * 'process': steers this process only (threads, checkpoints, devices) and may differ on --resume.
   */
  scope: 'run' | 'process';
  /** Its value in a run's config: each preset's default for --help, and the saved value a resume refusal names. */
  config?: (c: RunConfig) => unknown;
  /** The default of an option every preset shares (per-preset defaults come from `config`). */
  default?: z.output<S>;
}
const trainOption = <S extends z.ZodType>(o: TrainOptionDecl<S>): TrainOptionDecl<S> => o;

const positiveInt = z.int().min(1);
const nonNegativeInt = z.int().min(0);
const unit = z.number().min(0).lt(1);
const path = z.string().min(1);

export const LR_SCHEDULES = ['constant', 'cosine'] as const;
export const TRAIN_SCHEDULES = SCHEDULES.filter((k): k is Exclude<(typeof SCHEDULES)[number], 'custom'> => k !== 'custom');

export const TRAIN_OPTIONS = {
  out: trainOption({ scope: 'process', name: 'out', flag: '--out <dir>', help: 'run folder to create (e.g. runs/dli02); required unless --resume names a run', schema: path }),
  preset: trainOption({ scope: 'run', name: 'preset', flag: '--preset <name>', help: `model preset: ${PRESETS.join(', ')} (each brings its own defaults below)`, schema: z.enum(PRESETS), default: 'dli02' }),
  epochs: trainOption({ scope: 'process', name: 'epochs', flag: '--epochs <n>', help: 'passes over the data (a resume may raise it)', schema: positiveInt, config: (c) => c.train.epochs }),
  batchSize: trainOption({ scope: 'run', name: 'batchSize', flag: '--batch-size <n>', help: 'images per step', schema: positiveInt, config: (c) => c.train.batchSize }),
  lr: trainOption({ scope: 'run', name: 'lr', flag: '--lr <x>', help: 'Adam learning rate', schema: z.number().gt(0), config: (c) => c.train.lr }),
  seed: trainOption({ scope: 'run', name: 'seed', flag: '--seed <n>', help: 'seed for weights, data order and noise', schema: nonNegativeInt, config: (c) => c.train.seed }),
  device: trainOption({ scope: 'process', name: 'device', flag: '--device <name>', help: `${DEVICE_HELP}; with --nproc-per-node each process takes cuda:LOCAL_RANK`, schema: DEVICE_SCHEMA, default: 'cpu' }),
  threads: trainOption({ scope: 'process', name: 'threads', flag: '--threads <n>', help: 'libtorch threads', schema: positiveInt }),
  limit: trainOption({ scope: 'run', name: 'limit', flag: '--limit <n>', help: 'train on the first N training images only', schema: positiveInt, config: (c) => c.train.limit ?? 'all' }),
  data: trainOption({ scope: 'process', name: 'data', flag: '--data <dir>', help: 'Fashion-MNIST folder, or a folder of PNG/JPEG images (searched recursively; one subfolder per class) (default: $FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist)', schema: path }),
  imageSize: trainOption({ scope: 'run', name: 'imageSize', flag: '--image-size <n>', help: 'side of the square training images', schema: positiveInt, config: (c) => c.model.imageSize }),
  channels: trainOption({ scope: 'run', name: 'channels', flag: '--channels <n>', help: 'image channels, 1 (grey) or 3 (RGB); folders of images are converted', schema: z.literal([1, 3]), config: (c) => c.model.imageChannels }),
  schedule: trainOption({ scope: 'run', name: 'schedule', flag: '--schedule <kind>', help: `noise schedule: ${TRAIN_SCHEDULES.join(', ')}`, schema: z.enum(TRAIN_SCHEDULES), config: (c) => c.schedule.kind }),
  timesteps: trainOption({ scope: 'run', name: 'timesteps', flag: '--timesteps <n>', help: 'diffusion steps T', schema: positiveInt, config: (c) => c.model.T }),
  betaStart: trainOption({ scope: 'run', name: 'betaStart', flag: '--beta-start <x>', help: 'first beta of a linear or scaled-linear schedule (default: 1e-4 linear, 0.00085 scaled-linear)', schema: z.number().gt(0).lt(1), config: (c) => ('betaStart' in c.schedule ? c.schedule.betaStart : 'none') }),
  betaEnd: trainOption({ scope: 'run', name: 'betaEnd', flag: '--beta-end <x>', help: 'last beta of a linear or scaled-linear schedule (default: 0.02 linear, 0.012 scaled-linear)', schema: z.number().gt(0).lt(1), config: (c) => ('betaEnd' in c.schedule ? c.schedule.betaEnd : 'none') }),
  betas: trainOption({ scope: 'run', name: 'betas', flag: '--betas <list|file>', help: 'your own betas: a comma-separated list, or a JSON file holding an array (sets T)', schema: path, config: (c) => (c.schedule.kind === 'custom' ? c.schedule.betas.join(',') : 'none') }),
  zeroTerminalSnr: trainOption({ scope: 'run', name: 'zeroTerminalSnr', flag: '--zero-terminal-snr', help: 'rescale the schedule to zero terminal SNR (Lin et al. 2023); needs --objective v or x0', schema: z.boolean(), config: (c) => c.schedule.zeroTerminalSnr ?? false }),
  objective: trainOption({ scope: 'run', name: 'objective', flag: '--objective <kind>', help: `what the U-Net predicts: ${OBJECTIVES.join(', ')}`, schema: z.enum(OBJECTIVES), config: (c) => c.objective ?? 'eps' }),
  lossWeight: trainOption({ scope: 'run', name: 'lossWeight', flag: '--loss-weight <kind>', help: `loss weighting: ${LOSS_WEIGHTINGS.join(', ')}`, schema: z.enum(LOSS_WEIGHTINGS), config: (c) => c.loss?.weighting ?? 'simple' }),
  minSnrGamma: trainOption({ scope: 'run', name: 'minSnrGamma', flag: '--min-snr-gamma <x>', help: 'gamma of min-SNR weighting (Hang et al. 2023)', schema: z.number().gt(0), config: (c) => c.loss?.minSnrGamma ?? 5 }),
  offsetNoise: trainOption({ scope: 'run', name: 'offsetNoise', flag: '--offset-noise <x>', help: 'offset-noise strength, 0 for off', schema: unit, config: (c) => c.loss?.offsetNoise ?? 0 }),
  learnVariance: trainOption({
    scope: 'run', name: 'learnVariance', flag: '--learn-variance', schema: z.boolean(), config: (c) => c.model.learnVariance ?? false,
    help: "learn the reverse variance (Nichol & Dhariwal 2021): the U-Net's output channels double, the loss becomes L_simple + 0.001 L_vlb, and ddpm/pc sampling and eval --nll use the learned variance",
  }),
  emaDecay: trainOption({ scope: 'run', name: 'emaDecay', flag: '--ema-decay <x>', help: 'EMA decay of the weights, 0 for none; sampling uses the EMA', schema: unit, config: (c) => c.train.emaDecay ?? 0 }),
  lrSchedule: trainOption({ scope: 'run', name: 'lrSchedule', flag: '--lr-schedule <kind>', help: 'learning rate after warm-up: constant or cosine', schema: z.enum(LR_SCHEDULES), config: (c) => c.train.lrSchedule?.kind ?? 'constant' }),
  warmupSteps: trainOption({ scope: 'run', name: 'warmupSteps', flag: '--warmup-steps <n>', help: 'linear learning-rate warm-up steps', schema: nonNegativeInt, config: (c) => c.train.lrSchedule?.warmupSteps ?? 0 }),
  minLr: trainOption({ scope: 'run', name: 'minLr', flag: '--min-lr <x>', help: 'floor of the cosine schedule', schema: z.number().min(0), config: (c) => c.train.lrSchedule?.minLr ?? 0 }),
  gradClip: trainOption({ scope: 'run', name: 'gradClip', flag: '--grad-clip <x>', help: 'clip the gradient norm to this, 0 for none', schema: z.number().min(0), config: (c) => c.train.gradClip ?? 0 }),
  classCond: trainOption({ scope: 'run', name: 'classCond', flag: '--class-cond', help: 'condition on class labels for classifier-free guidance (Fashion-MNIST classes, or one subfolder per class)', schema: z.boolean(), config: (c) => (c.model.numClasses ?? 0) > 0 }),
  condDropProb: trainOption({ scope: 'run', name: 'condDropProb', flag: '--cond-drop-prob <x>', help: 'probability of dropping the label during training', schema: unit, config: (c) => c.train.condDropProb ?? 0.1 }),
  resume: trainOption({ scope: 'process', name: 'resume', flag: '--resume <dir|latest>', help: 'continue a run exactly: a run folder, a checkpoints/step-N folder, or "latest" of --out (a run with no checkpoint yet starts again from step 0)', schema: path }),
  checkpointEvery: trainOption({ scope: 'process', name: 'checkpointEvery', flag: '--checkpoint-every <n>', help: 'also checkpoint every N steps, 0 for only at the end of each epoch', schema: nonNegativeInt, default: 0 }),
  keep: trainOption({ scope: 'process', name: 'keep', flag: '--keep <n>', help: 'keep only the newest N checkpoints, 0 for all', schema: nonNegativeInt, default: 0 }),
  maxSteps: trainOption({ scope: 'process', name: 'maxSteps', flag: '--max-steps <n>', help: 'stop after N steps in all (a checkpoint is written there; --resume continues)', schema: positiveInt }),
  sampleGrids: trainOption({ scope: 'process', name: 'sampleGrids', flag: '--no-sample-grids', help: 'skip the sample grid after each epoch', schema: z.boolean() }),
  // Data parallel (src/distributed/): where the processes are and how they talk. Per process: the same
  // run may be resumed with other machines (a different world size needs --reshard).
  nprocPerNode: trainOption({ scope: 'process', name: 'nprocPerNode', flag: '--nproc-per-node <n>', help: 'data parallel: start N worker processes here, each with --batch-size images of every step and --threads/N threads (torchrun --standalone)', schema: positiveInt }),
  nnodes: trainOption({ scope: 'process', name: 'nnodes', flag: '--nnodes <n>', help: 'data parallel over N machines: run the same command on each with its --node-rank', schema: positiveInt, default: 1 }),
  nodeRank: trainOption({ scope: 'process', name: 'nodeRank', flag: '--node-rank <n>', help: "this machine's index in [0, --nnodes)", schema: nonNegativeInt, default: 0 }),
  masterAddr: trainOption({ scope: 'process', name: 'masterAddr', flag: '--master-addr <host>', help: "where rank 0's rendezvous store listens (MASTER_ADDR; default 127.0.0.1 on one machine)", schema: z.string().min(1) }),
  masterPort: trainOption({ scope: 'process', name: 'masterPort', flag: '--master-port <n>', help: 'its TCP port (MASTER_PORT; default: a free port on one machine, required with --nnodes > 1)', schema: z.int().min(1).max(65535) }),
  backend: trainOption({ scope: 'process', name: 'backend', flag: '--backend <name>', help: `collective backend: ${BACKENDS.join(', ')} (gloo moves CPU tensors, nccl CUDA tensors; default: nccl with --device cuda, else gloo)`, schema: z.enum(BACKENDS) }),
  distTimeout: trainOption({ scope: 'process', name: 'distTimeout', flag: '--dist-timeout <s>', help: 'seconds to wait for the other ranks (to join, and in every collective) before stopping with an error naming the lost rank', schema: z.number().gt(0), default: DEFAULT_TIMEOUT_MS / 1000 }),
  syncBn: trainOption({ scope: 'process', name: 'syncBn', flag: '--sync-bn', help: "data parallel, dli02: BatchNorm normalises with the global batch's statistics (torch.nn.SyncBatchNorm), not each process's", schema: z.boolean() }),
  reshard: trainOption({ scope: 'process', name: 'reshard', flag: '--reshard', help: 'resume a data-parallel run with a different number of processes (the data order changes from that step on)', schema: z.boolean() }),
} as const;

export type TrainOptionName = keyof typeof TRAIN_OPTIONS;

/** "3 for dli02/dli03, 2 for ddpm", or "3" when every preset agrees: the defaults as presetDefaults has them. */
export function presetDefaultWords(get: (c: RunConfig) => unknown, defaults: (p: (typeof PRESETS)[number]) => RunConfig): string {
  const groups = new Map<string, string[]>();
  for (const p of PRESETS) {
    const v = get(defaults(p));
    const k = v === null ? 'none' : String(v);
    groups.set(k, [...(groups.get(k) ?? []), p]);
  }
  if (groups.size === 1) return [...groups.keys()][0]!;
  return [...groups].map(([v, ps]) => `${v} for ${ps.join('/')}`).join(', ');
}

/**
 * What config.json must hold. Its leaves are the declarations' own schemas, so a value the command
 * line would refuse is refused in a saved run too. Objects are loose: fields a later version adds
 * pass through to the code that knows them. The schedule's own parameters are checked by makeSchedule.
 */
const T = TRAIN_OPTIONS;
/** The `distill` block `ddpm distill` writes (train/config.ts DistillSettings); its flags (train/distill-options.ts) share these leaves. */
export const DISTILL_CONFIG_SCHEMA = z.looseObject({
  teacher: z.looseObject({ run: z.string(), checkpoint: z.string(), objective: z.enum(OBJECTIVES), steps: STEPS }),
  rounds: z.array(STEPS).min(1),
  iterations: positiveInt,
  weighting: z.enum(DISTILL_WEIGHTINGS),
});
export const RUN_CONFIG_SCHEMA = z.looseObject({
  version: z.literal(1),
  model: z.looseObject({ preset: z.enum(PRESETS), imageChannels: T.channels.schema, imageSize: T.imageSize.schema, T: T.timesteps.schema, numClasses: nonNegativeInt.optional(), learnVariance: T.learnVariance.schema.optional() }),
  schedule: z.looseObject({ kind: z.enum(SCHEDULES), zeroTerminalSnr: z.boolean().optional() }),
  objective: T.objective.schema.optional(),
  loss: z.looseObject({ weighting: T.lossWeight.schema, minSnrGamma: T.minSnrGamma.schema, offsetNoise: T.offsetNoise.schema }).optional(),
  train: z.looseObject({
    epochs: T.epochs.schema, batchSize: T.batchSize.schema, lr: T.lr.schema, seed: T.seed.schema, limit: T.limit.schema.nullable(),
    data: z.string(), flip: z.boolean(), logEvery: positiveInt, dataset: z.enum(['fashion-mnist', 'folder']).optional(),
    emaDecay: T.emaDecay.schema.optional(), gradClip: T.gradClip.schema.optional(), condDropProb: T.condDropProb.schema.optional(),
    lrSchedule: z.looseObject({ kind: T.lrSchedule.schema, warmupSteps: T.warmupSteps.schema, minLr: T.minLr.schema }).optional(),
  }),
  samples: z.looseObject({ count: positiveInt, seed: nonNegativeInt, variance: z.enum(VARIANCES), sampler: z.enum(SAMPLERS).optional(), steps: positiveInt.optional() }),
  distill: DISTILL_CONFIG_SCHEMA.optional(),
});

/** The schema at a path of RUN_CONFIG_SCHEMA (optional and nullable unwrapped), for the words of a refusal. */
function schemaAt(keys: PropertyKey[]): z.ZodType | undefined {
  let s: z.ZodType | undefined = RUN_CONFIG_SCHEMA;
  for (const k of keys) {
    while (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap() as z.ZodType;
    s = s instanceof z.ZodObject ? (s.shape as Record<string, z.ZodType>)[String(k)] : undefined;
  }
  while (s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
  return s;
}

/**
 * Refuses a config.json that is not a run's configuration, naming the field, its value and what was
 * expected, with the file's name: checked whenever a run is opened or resumed, so a damaged or
 * hand-edited file fails here with its field named, not later inside the model or the trainer.
 */
export function checkConfigJson(value: unknown, file: string): RunConfig {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const missing = ['model', 'schedule', 'train'].filter((k) => !isObject(value) || !isObject(value[k]));
  if (missing.length > 0) {
    throw new Error(`${file} is not a run config: it has no ${missing.join(', ')} object${missing.length > 1 ? 's' : ''} (it was not written by \`ddpm train\`, or was damaged)`);
  }
  const r = RUN_CONFIG_SCHEMA.safeParse(value);
  if (r.success) return value as RunConfig;
  const issue = r.error.issues[0]!;
  const where = issue.path.map(String).join('.');
  let got: unknown = value;
  for (const k of issue.path) got = typeof got === 'object' && got !== null ? (got as Record<PropertyKey, unknown>)[k] : undefined;
  const leaf = schemaAt(issue.path);
  const want = leaf instanceof z.ZodObject ? 'an object' : leaf ? expected(leaf) : issue.message;
  const what = got === undefined ? `is missing (expected ${want})` : `must be ${want}, got ${show(got)}`;
  throw new Error(`${file}: ${where} ${what}; it was not written by \`ddpm train\`, or was edited or damaged since`);
}
