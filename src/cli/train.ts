// `ddpm train`: the notebook's training from the command line, with a progress bar.
import { Command, Option } from 'commander';
import path from 'node:path';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { presetDefaults, checkRunConfig, readRunConfig, setLearnVariance, type RunConfig } from '../train/config.js';
import { train } from '../train/trainer.js';
import { resolveResume } from '../train/checkpoint.js';
import { RunFolder } from '../io/run.js';
import { createModel, type PresetName } from '../models/index.js';
import { scheduleLength, scheduleOfKind, type ScheduleKind, type ScheduleConfig, type Objective, type LossWeighting } from '../diffusion/index.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_FILES, fashionMnistFile } from '../data/fashion-mnist.js';
import { declared, defaultThreads } from './args.js';
import { TRAIN_OPTIONS, presetDefaultWords, type TrainOptionDecl, type TrainOptionName } from '../train/options.js';
import { LAUNCHER_FLAGS, launchWorkers, stripFlags } from './launch.js';
import { trainWithProgress } from './train-progress.js';
import { checkDevice, type Device } from '../tensor/index.js';
import { DistributedError, initProcessGroup, launchedAsRank, readLaunchEnv, type Backend, type ProcessGroup } from '../distributed/index.js';

interface TrainFlags {
  preset: PresetName; epochs?: number; batchSize?: number; lr?: number; seed?: number; threads: number;
  limit?: number; data?: string; out?: string; resume?: string; checkpointEvery: number; keep: number;
  maxSteps?: number; sampleGrids: boolean;
  imageSize?: number; channels?: number; schedule?: ScheduleKind; timesteps?: number; betaStart?: number; betaEnd?: number;
  betas?: string; zeroTerminalSnr?: boolean; objective?: Objective; lossWeight?: LossWeighting; minSnrGamma?: number;
  offsetNoise?: number; emaDecay?: number; lrSchedule?: 'constant' | 'cosine'; warmupSteps?: number; minLr?: number;
  gradClip?: number; classCond?: boolean; condDropProb?: number; learnVariance?: boolean;
  nprocPerNode?: number; nnodes: number; nodeRank: number; masterAddr?: string; masterPort?: number;
  backend?: Backend; device: string; distTimeout: number; reshard?: boolean; syncBn?: boolean;
}

/** One flag of `ddpm train` from its declaration (train/options.ts), with its default in the help. */
function trainFlag(key: TrainOptionName): Option {
  const d: TrainOptionDecl = TRAIN_OPTIONS[key];
  if (!d.flag.includes('<')) return new Option(d.flag, d.help);
  if (key === 'threads') return declared(d, { default: defaultThreads() });
  if (d.default !== undefined) return declared(d, { default: d.default });
  // Each preset's default, read from presetDefaults, unless the help words already say it.
  if (d.config && !d.help.includes('(default')) return declared(d, { defaultHelp: presetDefaultWords(d.config, presetDefaults) });
  return declared(d);
}

export function trainCommand(): Command {
  const cmd = new Command('train')
    .description('train a diffusion U-Net on Fashion-MNIST or a folder of images; writes a run folder (config, log, sample grids, checkpoints)');
  for (const key of Object.keys(TRAIN_OPTIONS) as TrainOptionName[]) cmd.addOption(trainFlag(key));
  return cmd.action(async (f: TrainFlags, c: Command) => { await runTrain(f, c); });
}

/** --betas: a comma-separated list or a JSON file with an array of numbers. */
function readBetas(v: string): number[] {
  const fromFile = existsSync(v);
  let list: unknown;
  if (fromFile) {
    try {
      list = JSON.parse(readFileSync(v, 'utf8'));
    } catch (e) {
      throw new Error(`--betas ${v}: not a JSON array of numbers (${(e as Error).message})`, { cause: e });
    }
  } else {
    list = v.split(',').map((x) => (x.trim() === '' ? NaN : Number(x)));
  }
  if (!Array.isArray(list) || list.length === 0 || !list.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new Error(`--betas ${v}: expected ${fromFile ? 'a JSON array' : 'a comma-separated list'} of numbers in (0, 1), e.g. --betas 0.0001,0.01,0.02`);
  }
  return list as number[];
}

/** The schedule the flags describe, from the preset's. */
function scheduleFromFlags(f: TrainFlags, base: ScheduleConfig, given: (name: string) => boolean): ScheduleConfig {
  if (!['schedule', 'timesteps', 'betaStart', 'betaEnd', 'betas', 'zeroTerminalSnr'].some(given)) return base;
  const zero = f.zeroTerminalSnr ?? base.zeroTerminalSnr ?? false;
  const withZero = (c: ScheduleConfig): ScheduleConfig => (zero ? { ...c, zeroTerminalSnr: true } : c);
  if (f.betas !== undefined) {
    for (const other of ['schedule', 'timesteps', 'betaStart', 'betaEnd']) {
      if (given(other)) throw new Error(`--betas gives the whole schedule; it cannot be combined with --${kebab(other)}`);
    }
    return withZero({ kind: 'custom', betas: readBetas(f.betas) });
  }
  const kind = f.schedule ?? (base.kind === 'custom' ? 'linear' : base.kind);
  const T = f.timesteps ?? (base.kind === 'custom' ? base.betas.length : base.T);
  if ((f.betaStart !== undefined || f.betaEnd !== undefined) && kind !== 'linear' && kind !== 'scaled-linear') {
    throw new Error(`--beta-start and --beta-end set the ends of a linear or scaled-linear schedule; the ${kind} schedule has none`);
  }
  if (kind === 'custom') throw new Error('a custom schedule is given with --betas LIST|FILE, not --schedule');
  const c = scheduleOfKind(kind, T, base);
  if (c.kind === 'linear' || c.kind === 'scaled-linear') return withZero({ ...c, betaStart: f.betaStart ?? c.betaStart, betaEnd: f.betaEnd ?? c.betaEnd });
  return withZero(c);
}

const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Whether `dir` holds the Fashion-MNIST training files (else it is read as a folder of images). */
function isFashionMnistDir(dir: string): boolean {
  return fashionMnistFile(dir, FASHION_MNIST_FILES.train.images) !== undefined;
}

/** Applies every flag to a config (a preset's defaults, or a resumed run's own config). */
function applyFlags(config: RunConfig, f: TrainFlags, given: (name: string) => boolean): RunConfig {
  const c: RunConfig = structuredClone(config);
  if (f.epochs !== undefined) c.train.epochs = f.epochs;
  if (f.batchSize !== undefined) c.train.batchSize = f.batchSize;
  if (f.lr !== undefined) c.train.lr = f.lr;
  if (f.seed !== undefined) c.train.seed = f.seed;
  if (f.limit !== undefined) c.train.limit = f.limit;
  if (f.imageSize !== undefined) c.model.imageSize = f.imageSize;
  if (f.channels !== undefined) c.model.imageChannels = f.channels;
  c.schedule = scheduleFromFlags(f, c.schedule, given);
  c.model.T = scheduleLength(c.schedule);
  if (f.objective !== undefined) c.objective = f.objective;
  const loss = c.loss ?? { weighting: 'simple', minSnrGamma: 5, offsetNoise: 0 };
  if (f.lossWeight !== undefined) loss.weighting = f.lossWeight;
  if (f.minSnrGamma !== undefined) {
    if (loss.weighting !== 'min-snr') throw new Error('--min-snr-gamma needs --loss-weight min-snr');
    loss.minSnrGamma = f.minSnrGamma;
  }
  if (f.offsetNoise !== undefined) loss.offsetNoise = f.offsetNoise;
  c.loss = loss;
  if (f.learnVariance) setLearnVariance(c);
  if (f.emaDecay !== undefined) c.train.emaDecay = f.emaDecay;
  const ls = c.train.lrSchedule ?? { kind: 'constant', warmupSteps: 0, minLr: 0 };
  if (f.lrSchedule !== undefined) ls.kind = f.lrSchedule;
  if (f.warmupSteps !== undefined) ls.warmupSteps = f.warmupSteps;
  if (f.minLr !== undefined) {
    if (ls.kind !== 'cosine') throw new Error('--min-lr is the floor of the cosine schedule; add --lr-schedule cosine');
    ls.minLr = f.minLr;
  }
  c.train.lrSchedule = ls;
  if (f.gradClip !== undefined) c.train.gradClip = f.gradClip;
  if (f.condDropProb !== undefined) {
    if (!(f.classCond ?? (c.model.numClasses ?? 0) > 0)) throw new Error('--cond-drop-prob needs --class-cond (it is the probability of dropping the class label)');
    c.train.condDropProb = f.condDropProb;
  }
  if (f.data !== undefined) {
    if (!existsSync(f.data)) throw new Error(`--data ${f.data}: no such folder (the path does not exist)`);
    c.train.dataset = isFashionMnistDir(f.data) ? 'fashion-mnist' : 'folder';
    c.train.data = path.resolve(f.data);
  }
  if (f.classCond) c.model.numClasses = c.train.dataset === 'folder' ? countClassFolders(c.train.data) : FASHION_MNIST_CLASSES.length;
  return c;
}

/** The classes of an image folder: its first-level subfolders (torchvision's ImageFolder). */
export function countClassFolders(dir: string): number {
  const n = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).length;
  if (n < 2) throw new Error(`--class-cond: ${dir} has ${n} subfolder${n === 1 ? '' : 's'}; class-conditional training needs one subfolder per class (at least 2)`);
  return n;
}

/** Flags that may differ on --resume: they steer this process, not the run (train/options.ts). */
const PER_PROCESS = new Set(Object.values(TRAIN_OPTIONS).filter((o) => o.scope === 'process').map((o) => o.name));

/** A fresh run's config from the preset and the flags, or a resumed run's own config. */
function configure(f: TrainFlags, cmd: Command, lead = true): { config: RunConfig; run: RunFolder; resumeFrom?: string; restart?: boolean } {
  const given = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
  if (f.resume !== undefined) {
    const { run, checkpoint } = resolveResume(f.resume, f.out);
    const saved = readRunConfig(run);
    if (saved.distill) throw new Error(`--resume ${f.resume}: ${run.root} was written by \`ddpm distill\`; continue it with \`ddpm distill --resume ${f.resume}\``);
    if (given('preset') && f.preset !== saved.model.preset) throw new Error(`--preset ${f.preset} differs from the resumed run's ${saved.model.preset}; a resumed run keeps its config.json (only --epochs may grow)`);
    // Every run-defining flag given must agree with the saved config.
    for (const opt of cmd.options) {
      const key = opt.attributeName();
      if (!given(key) || PER_PROCESS.has(key)) continue;
      const probe = applyFlags(saved, { ...({} as TrainFlags), threads: 1, checkpointEvery: 0, keep: 0, sampleGrids: true, preset: f.preset, [key]: (f as unknown as Record<string, unknown>)[key] }, (n) => n === key);
      const before = JSON.stringify(saved);
      if (JSON.stringify(probe) !== before) {
        throw new Error(`--${kebab(key)} ${String((f as unknown as Record<string, unknown>)[key])} differs from the resumed run's ${describeSaved(saved, key)}; a resumed run keeps its config.json (only --epochs may grow)`);
      }
    }
    const config = structuredClone(saved);
    if (f.epochs !== undefined) config.train.epochs = f.epochs;
    // Rank 0 alone writes the run folder.
    if (lead) run.cleanTemps();
    if (checkpoint === undefined) {
      // A run killed before its first checkpoint: nothing to continue, so it starts over as configured.
      checkRunConfig(config);
      if (lead) process.stderr.write(`${run.root} has no checkpoint yet (the run stopped before its first one): starting it from step 0 with its saved config.json\n`);
      return { config, run, restart: true };
    }
    if (lead) run.writeConfig(config);
    return { config, run, resumeFrom: checkpoint };
  }
  if (f.out === undefined) throw new Error("required option '--out <dir>' not specified (or give --resume to continue a run)");
  const config = applyFlags(presetDefaults(f.preset), f, given);
  // Refuse a bad combination before anything is written.
  checkRunConfig(config);
  createModel(config.model).dispose();
  const run = new RunFolder(path.resolve(f.out));
  // The folders are made by train() once the data has loaded; an existing run is refused now.
  if (existsSync(run.configPath)) throw new Error(`${run.root} already holds a run (config.json exists); choose another --out, or delete it first`);
  return { config, run };
}

/** The saved value a run-defining flag would change, for the refusal message. */
function describeSaved(c: RunConfig, key: string): string {
  const get = (TRAIN_OPTIONS as Record<string, TrainOptionDecl>)[key]?.config;
  return get ? String(get(c)) : `setting (${JSON.stringify(c)})`;
}

/** Refusals of the data-parallel flags that need no other process (before any worker starts). */
function checkDistributedFlags(f: TrainFlags, cmd: Command): void {
  const given = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
  if (f.nodeRank >= f.nnodes) throw new Error(`--node-rank ${f.nodeRank} must be below --nnodes ${f.nnodes} (machines are numbered 0..${f.nnodes - 1})`);
  if (f.nnodes > 1 && (f.masterAddr === undefined || f.masterPort === undefined)) {
    throw new Error(`--nnodes ${f.nnodes} needs --master-addr and --master-port: the address and port where the machine with --node-rank 0 listens, the same on every machine`);
  }
  if (f.masterPort !== undefined && f.masterPort > 65535) throw new Error(`--master-port must be a TCP port in [1, 65535], got ${f.masterPort}`);
  if (f.nnodes > 1 && f.nprocPerNode === undefined && !launchedAsRank()) throw new Error(`--nnodes ${f.nnodes} needs --nproc-per-node (workers on this machine)`);
  // Before anything is written: a device this libtorch cannot use, and NCCL without CUDA tensors.
  checkDevice(f.device, '--device');
  if (f.backend === 'nccl' && f.device === 'cpu') throw new Error('--backend nccl moves CUDA tensors, but --device is cpu; use --backend gloo, or --device cuda');
  if (f.backend === 'gloo' && f.device !== 'cpu') throw new Error(`--backend gloo moves CPU tensors, but --device is ${f.device}; use --backend nccl (the default with --device cuda)`);
  if (launchedAsRank() && f.nprocPerNode !== undefined) {
    const env = readLaunchEnv();
    if (env.worldSize !== f.nprocPerNode * f.nnodes) {
      throw new Error(`WORLD_SIZE=${env.worldSize} (from the environment) disagrees with --nproc-per-node ${f.nprocPerNode} x --nnodes ${f.nnodes} = ${f.nprocPerNode * f.nnodes}; ` +
        'either let a launcher start the ranks (it sets WORLD_SIZE, RANK, ...) or use --nproc-per-node, not both');
    }
  }
  if (f.reshard && f.resume === undefined) throw new Error('--reshard applies to --resume (a run continued with a different number of processes)');
  if (!given('nprocPerNode') && !launchedAsRank() && ['nnodes', 'nodeRank', 'masterAddr', 'masterPort', 'backend', 'distTimeout', 'syncBn'].some(given)) {
    throw new Error('--nnodes, --node-rank, --master-addr, --master-port, --backend, --dist-timeout and --sync-bn set up data-parallel training; add --nproc-per-node N');
  }
}

async function runTrain(f: TrainFlags, cmd: Command): Promise<void> {
  checkDistributedFlags(f, cmd);
  if (launchedAsRank()) return await runRank(f, cmd);
  if (f.nprocPerNode !== undefined) {
    // Refuse bad flags here, once, before any worker starts (the workers check them again).
    configure(f, cmd, false);
    const threads = Math.max(1, Math.floor(f.threads / f.nprocPerNode));
    const code = await launchWorkers({
      nprocPerNode: f.nprocPerNode, nnodes: f.nnodes, nodeRank: f.nodeRank,
      masterAddr: f.masterAddr ?? '127.0.0.1', masterPort: f.masterPort, timeoutMs: Math.round(f.distTimeout * 1000),
      workerArgs: [...stripFlags(process.argv.slice(1), LAUNCHER_FLAGS), '--threads', String(threads)],
    });
    if (code !== 0) throw new Error(`data-parallel training failed (see the ranks' messages above); the last complete checkpoint is kept, and --resume latest continues from it`);
    return;
  }
  await trainHere(f, cmd);
}

/** One rank of a data-parallel run, started by `--nproc-per-node` or a cluster launcher with torchrun's variables. */
async function runRank(f: TrainFlags, cmd: Command): Promise<void> {
  const env = readLaunchEnv();
  let group: ProcessGroup | undefined;
  try {
    const lead = env.rank === 0;
    // Each process of a machine on its own GPU, as torchrun's LOCAL_RANK.
    const device = f.device === 'cuda' ? `cuda:${env.localRank}` : f.device;
    checkDevice(device, `--device ${f.device}: local rank ${env.localRank} takes`);
    const setup = configure(f, cmd, lead);
    if (env.worldSize > 1) {
      group = initProcessGroup({
        rank: env.rank, worldSize: env.worldSize, masterAddr: env.masterAddr, masterPort: env.masterPort,
        backend: f.backend ?? (f.device === 'cpu' ? 'gloo' : 'nccl'), timeoutMs: Math.round(f.distTimeout * 1000),
      });
    }
    await trainHere({ ...f, device }, cmd, setup, group);
    // Nobody leaves (taking rank 0's store with it) before everyone is done.
    group?.barrier();
  } catch (e) {
    if (e instanceof DistributedError || env.worldSize === 1) throw e;
    throw new Error(`rank ${env.rank}: ${(e as Error).message}`, { cause: e });
  } finally {
    group?.destroy();
  }
}

async function trainHere(f: TrainFlags, cmd: Command, setup = configure(f, cmd), group?: ProcessGroup): Promise<void> {
  const { config, run, resumeFrom, restart } = setup;
  const lead = (group?.rank ?? 0) === 0;
  const world = group ? `, ${group.worldSize} processes x batch ${config.train.batchSize} = global batch ${group.worldSize * config.train.batchSize}` : '';
  await trainWithProgress({
    what: config.model.preset, epochs: config.train.epochs, root: run.root, threads: f.threads, world, lead, sampleGrids: f.sampleGrids,
    ...(resumeFrom !== undefined ? { resumeFrom } : {}),
  }, (hooks, signal) => train(config, run, {
    threads: f.threads,
    device: f.device as Device,
    signal,
    checkpointEvery: f.checkpointEvery,
    sampleGrids: f.sampleGrids,
    ...(f.maxSteps !== undefined ? { maxSteps: f.maxSteps } : {}),
    keep: f.keep,
    ...(resumeFrom !== undefined ? { resumeFrom } : {}),
    ...(restart ? { restart } : {}),
    ...(config.train.dataset !== 'folder' && f.data !== undefined ? { data: { dir: f.data } } : {}),
    ...(group ? { distributed: group } : {}),
    ...(f.reshard ? { reshard: true } : {}),
    // A resumed run keeps the BatchNorm it was trained with.
    ...(f.syncBn ?? config.distributed?.syncBn ? { syncBn: true } : {}),
    hooks,
  }));
}
