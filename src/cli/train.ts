// `ddpm train`: the notebook's training from the command line, with a progress bar.
import { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import path from 'node:path';
import { presetDefaults, type RunConfig } from '../train/config.js';
import { train } from '../train/trainer.js';
import { resolveResume } from '../train/checkpoint.js';
import { RunFolder } from '../io/run.js';
import { PRESETS, type PresetName } from '../models/index.js';
import { choice, defaultThreads, positiveInt, positiveNumber, nonNegativeInt } from './args.js';

interface TrainFlags {
  preset: PresetName; epochs?: number; batchSize?: number; lr?: number; seed?: number; threads: number;
  limit?: number; data?: string; out?: string; resume?: string; checkpointEvery: number; keep: number;
  maxSteps?: number; sampleGrids: boolean;
}

export function trainCommand(): Command {
  const d = presetDefaults('dli02');
  return new Command('train')
    .description('train a diffusion U-Net on Fashion-MNIST; writes a run folder (config, log, sample grids, checkpoints)')
    .option('--out <dir>', 'run folder to create (e.g. runs/dli02); required unless --resume names a run')
    .option('--preset <name>', `model preset: ${PRESETS.join(', ')}`, choice('--preset', PRESETS), 'dli02')
    .option('--epochs <n>', `passes over the data (default: ${d.train.epochs})`, positiveInt('--epochs'))
    .option('--batch-size <n>', `images per step (default: ${d.train.batchSize})`, positiveInt('--batch-size'))
    .option('--lr <x>', `Adam learning rate (default: ${d.train.lr})`, positiveNumber('--lr'))
    .option('--seed <n>', `seed for weights, data order and noise (default: ${d.train.seed})`, nonNegativeInt('--seed'))
    .option('--threads <n>', 'libtorch threads', positiveInt('--threads'), defaultThreads())
    .option('--limit <n>', 'train on the first N training images only (default: all 60,000)', positiveInt('--limit'))
    .option('--data <dir>', 'Fashion-MNIST folder (default: $FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist)')
    .option('--resume <dir|latest>', 'continue a run exactly: a run folder, a checkpoints/step-N folder, or "latest" of --out')
    .option('--checkpoint-every <n>', 'also checkpoint every N steps (default: only at the end of each epoch)', nonNegativeInt('--checkpoint-every'), 0)
    .option('--keep <n>', 'keep only the newest N checkpoints (default: all)', nonNegativeInt('--keep'), 0)
    .option('--max-steps <n>', 'stop after N steps in all (a checkpoint is written there; --resume continues)', positiveInt('--max-steps'))
    .option('--no-sample-grids', 'skip the sample grid after each epoch')
    .action(async (f: TrainFlags) => { await runTrain(f); });
}

/** A fresh run's config from the preset and the flags, or a resumed run's own config. */
function configure(f: TrainFlags): { config: RunConfig; run: RunFolder; resumeFrom?: string } {
  if (f.resume !== undefined) {
    const { run, checkpoint } = resolveResume(f.resume, f.out);
    const config = run.readConfig<RunConfig>();
    const fixed: [string, unknown, unknown][] = [
      ['--batch-size', f.batchSize, config.train.batchSize], ['--lr', f.lr, config.train.lr], ['--seed', f.seed, config.train.seed],
      ['--limit', f.limit, config.train.limit],
    ];
    for (const [flag, given, saved] of fixed) {
      if (given !== undefined && given !== saved) throw new Error(`${flag} ${String(given)} differs from the resumed run's ${String(saved)}; a resumed run keeps its config.json (only --epochs may grow)`);
    }
    if (f.epochs !== undefined) config.train.epochs = f.epochs;
    run.cleanTemps();
    run.writeConfig(config);
    return { config, run, resumeFrom: checkpoint };
  }
  if (f.out === undefined) throw new Error("required option '--out <dir>' not specified (or give --resume to continue a run)");
  const config: RunConfig = presetDefaults(f.preset);
  if (f.epochs !== undefined) config.train.epochs = f.epochs;
  if (f.batchSize !== undefined) config.train.batchSize = f.batchSize;
  if (f.lr !== undefined) config.train.lr = f.lr;
  if (f.seed !== undefined) config.train.seed = f.seed;
  if (f.limit !== undefined) config.train.limit = f.limit;
  const run = new RunFolder(path.resolve(f.out));
  run.create();
  return { config, run };
}

async function runTrain(f: TrainFlags): Promise<void> {
  const { config, run, resumeFrom } = configure(f);
  const tty = process.stderr.isTTY === true;
  const bar = new SingleBar({
    format: 'epoch {epoch}/{epochs} |{bar}| step {value}/{total} | loss {loss} | {ips} img/s | ETA {eta_formatted}',
    barsize: 24, hideCursor: tty, noTTYOutput: !tty, notTTYSchedule: 10000, etaBuffer: 50,
  });
  const ac = new AbortController();
  const onSigint = (): void => {
    process.stderr.write('\nstopping after this step; a checkpoint will be written (Ctrl-C again to quit now)\n');
    ac.abort();
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', onSigint);
  let summary;
  try {
    summary = await train(config, run, {
      threads: f.threads,
      signal: ac.signal,
      checkpointEvery: f.checkpointEvery,
      sampleGrids: f.sampleGrids,
      ...(f.maxSteps !== undefined ? { maxSteps: f.maxSteps } : {}),
      keep: f.keep,
      ...(resumeFrom !== undefined ? { resumeFrom } : {}),
      ...(f.data !== undefined ? { data: { dir: f.data } } : {}),
      hooks: {
        onStart: (s) => {
          const from = s.resumedAt > 0 ? `, resuming at step ${s.resumedAt} from ${resumeFrom}` : '';
          process.stderr.write(`training ${config.model.preset} on ${s.images} images from ${s.dataDir}: ${s.totalSteps} steps, ${f.threads} threads -> ${run.root}${from}\n`);
          bar.start(s.totalSteps, s.resumedAt, { epoch: Math.floor(s.resumedAt / s.stepsPerEpoch) + 1, epochs: config.train.epochs, loss: '-', ips: '-' });
        },
        onStep: (s) => bar.update(s.step, { epoch: s.epoch + 1, loss: s.smoothedLoss.toFixed(4), ips: Math.round(s.imagesPerSecond) }),
        onSkip: (k) => process.stderr.write(`\nstep ${k.step} skipped: ${k.reason} (${k.inARow} in a row)\n`),
        onEpoch: (e) => {
          bar.stop();
          const grid = f.sampleGrids ? `samples ${path.relative(process.cwd(), e.grid)}; ` : '';
            process.stderr.write(`epoch ${e.epoch + 1}: mean loss ${e.meanLoss.toFixed(4)}; ${grid}checkpoint ${path.relative(process.cwd(), e.checkpoint)}\n`);
          if (e.epoch + 1 < config.train.epochs && !ac.signal.aborted) bar.start(bar.getTotal(), e.step, { epoch: e.epoch + 2, epochs: config.train.epochs, loss: '-', ips: '-' });
        },
      },
    });
  } finally {
    // The bar's timer would keep the process alive after an error.
    bar.stop();
    process.off('SIGINT', onSigint);
  }
  process.stderr.write(`done: ${summary.steps} steps in ${summary.seconds.toFixed(1)} s (${Math.round(summary.imagesPerSecond)} img/s), final loss ${summary.finalLoss.toFixed(4)}\n`);
}
