// `ddpm train-classifier`: the noise-aware classifier of classifier guidance (Dhariwal & Nichol 2021)
// for a diffusion run, trained by the same loop as `ddpm train` into a run folder of its own.
import { Command } from 'commander';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { checkRunConfig, readRunConfig, type RunConfig } from '../train/config.js';
import { trainTask } from '../train/trainer.js';
import { resolveResume } from '../train/checkpoint.js';
import { CLASSIFYING, buildClassifier, classifierRunConfig } from '../train/classifier.js';
import { CLASSIFIER_OPTIONS, type ClassifierOptionName } from '../train/classifier-options.js';
import type { TrainOptionDecl } from '../train/options.js';
import { RunFolder } from '../io/run.js';
import { FASHION_MNIST_CLASSES } from '../data/fashion-mnist.js';
import { checkDevice, type Device } from '../tensor/index.js';
import { declared, defaultThreads } from './args.js';
import { countClassFolders } from './train.js';
import { trainWithProgress } from './train-progress.js';

interface ClassifierFlags {
  run?: string; out?: string; epochs: number; batchSize: number; lr: number; seed: number; limit?: number; data?: string;
  device: string; threads: number; resume?: string; checkpointEvery: number; keep: number; maxSteps?: number;
}

function fail(msg: string): never { throw new Error(`train-classifier: ${msg}`); }

export function trainClassifierCommand(): Command {
  const cmd = new Command('train-classifier')
    .description('train a noise-aware classifier p(y | x_t) on noised images of a diffusion run, for classifier guidance (`ddpm sample --classifier`); writes a run folder like `ddpm train`');
  for (const key of Object.keys(CLASSIFIER_OPTIONS) as ClassifierOptionName[]) {
    const d: TrainOptionDecl = CLASSIFIER_OPTIONS[key];
    if (key === 'threads') cmd.addOption(declared(d, { default: defaultThreads() }));
    else cmd.addOption(d.default !== undefined ? declared(d, { default: d.default }) : declared(d));
  }
  return cmd.action(async (f: ClassifierFlags, c: Command) => { await runTrainClassifier(f, c); });
}

/** A fresh classifier run's config from --run and the flags, or a resumed one's own. */
function configure(f: ClassifierFlags, cmd: Command): { config: RunConfig; run: RunFolder; resumeFrom?: string; restart?: boolean } {
  const given = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
  if (f.resume !== undefined) {
    const { run, checkpoint } = resolveResume(f.resume, f.out);
    const saved = readRunConfig(run);
    if (!saved.classifier) fail(`--resume ${f.resume} is a diffusion model's run; continue it with \`ddpm train --resume\``);
    // Every run-defining flag given must agree with the saved config (--epochs may grow).
    for (const [key, d] of Object.entries(CLASSIFIER_OPTIONS) as [ClassifierOptionName, TrainOptionDecl][]) {
      if (!given(key) || d.scope !== 'run' || key === 'epochs') continue;
      const value = key === 'run' ? path.resolve(f.run!) : (f as unknown as Record<string, unknown>)[key];
      const was = d.config!(saved);
      if (JSON.stringify(value) !== JSON.stringify(was === 'all' ? null : was)) {
        fail(`--${key.replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`)} ${String(value)} differs from the resumed classifier's ${String(was)}; a resumed run keeps its config.json (only --epochs may grow)`);
      }
    }
    const config = structuredClone(saved);
    if (given('epochs')) config.train.epochs = f.epochs;
    run.cleanTemps();
    if (checkpoint === undefined) {
      process.stderr.write(`${run.root} has no checkpoint yet (the run stopped before its first one): starting it from step 0 with its saved config.json\n`);
      return { config, run, restart: true };
    }
    run.writeConfig(config);
    return { config, run, resumeFrom: checkpoint };
  }
  if (f.run === undefined) fail("required option '--run <dir>' not specified: the diffusion run to train a classifier for (or give --resume to continue a classifier run)");
  if (f.out === undefined) fail("required option '--out <dir>' not specified (or give --resume to continue a classifier run)");
  if (!existsSync(path.join(f.run, 'config.json'))) fail(`--run ${f.run} is not a run folder (no config.json); give a run written by \`ddpm train\``);
  const r = readRunConfig(new RunFolder(f.run));
  // The run's classes when it is conditional, else the data's: Fashion-MNIST's ten, or an image folder's subfolders.
  const own = r.model.numClasses ?? 0;
  const numClasses = own > 0 ? own : r.train.dataset === 'folder' ? countClassFolders(f.data ?? r.train.data) : FASHION_MNIST_CLASSES.length;
  const config = classifierRunConfig(r, f.run, numClasses, { epochs: f.epochs, batchSize: f.batchSize, lr: f.lr, seed: f.seed, limit: f.limit ?? null });
  if (f.data !== undefined && r.train.dataset === 'folder') config.train.data = path.resolve(f.data);
  checkRunConfig(config);
  buildClassifier(config).dispose();
  const run = new RunFolder(path.resolve(f.out));
  if (existsSync(run.configPath)) fail(`${run.root} already holds a run (config.json exists); choose another --out, or delete it first`);
  return { config, run };
}

async function runTrainClassifier(f: ClassifierFlags, cmd: Command): Promise<void> {
  checkDevice(f.device, '--device');
  const { config, run, resumeFrom, restart } = configure(f, cmd);
  await trainWithProgress({
    what: `the classifier of ${config.classifier!.run}`, epochs: config.train.epochs, root: run.root, threads: f.threads, sampleGrids: false,
    ...(resumeFrom !== undefined ? { resumeFrom } : {}),
  }, (hooks, signal) => trainTask(CLASSIFYING, config, run, {
    threads: f.threads, device: f.device as Device, signal, checkpointEvery: f.checkpointEvery, keep: f.keep, sampleGrids: false, hooks,
    ...(f.maxSteps !== undefined ? { maxSteps: f.maxSteps } : {}),
    ...(resumeFrom !== undefined ? { resumeFrom } : {}),
    ...(restart ? { restart } : {}),
    ...(config.train.dataset !== 'folder' && f.data !== undefined ? { data: { dir: f.data } } : {}),
  }));
}
