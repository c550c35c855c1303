// `ddpm distill`: progressive distillation (Salimans & Ho 2022) of a trained run into a student that
// samples with few DDIM steps, with a progress bar; writes a run folder like `ddpm train`'s.
import { Command, Option } from 'commander';
import { progressBar, stopOnSigint } from './train-progress.js';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { readRunConfig, type RunConfig } from '../train/config.js';
import { loadRun, resolveResume } from '../train/checkpoint.js';
import { distill, distilledConfig } from '../train/distill.js';
import { RunFolder } from '../io/run.js';
import type { DistillWeighting } from '../diffusion/index.js';
import { declared, defaultThreads } from './args.js';
import { DISTILL_OPTIONS, DISTILL_DEFAULTS, type DistillOptionName, type StudentObjective } from '../train/distill-options.js';
import { flagName, type OptionDecl } from '../options/declare.js';

interface DistillFlags {
  run?: string; checkpoint?: string; out?: string; steps?: number; teacherSteps?: number; iterations?: number; objective?: StudentObjective;
  lossWeight?: DistillWeighting; batchSize?: number; lr?: number; emaDecay?: number; seed?: number; limit?: number; data?: string;
  threads: number; resume?: string; checkpointEvery: number; keep: number; maxSteps?: number; sampleGrids: boolean;
}

function distillFlag(key: DistillOptionName): Option {
  const d: OptionDecl & { default?: unknown } = DISTILL_OPTIONS[key];
  if (!d.flag.includes('<')) return new Option(d.flag, d.help);
  if (key === 'threads') return declared(d, { default: defaultThreads() });
  if (d.default !== undefined && d.defaultHelp === undefined) return declared(d, { default: d.default });
  return declared(d);
}

export function distillCommand(): Command {
  const cmd = new Command('distill')
    .description('progressive distillation (Salimans & Ho 2022): from a trained run, a student that samples with --steps DDIM steps; writes a run folder (config, log, round grids, checkpoints)');
  for (const key of Object.keys(DISTILL_OPTIONS) as DistillOptionName[]) cmd.addOption(distillFlag(key));
  return cmd.action(async (f: DistillFlags, c: Command) => { await runDistill(f, c); });
}

/** The flags that define a distillation, and where its config.json keeps each (a resume refuses a different value). */
const SAVED: Partial<Record<DistillOptionName, (c: RunConfig) => unknown>> = {
  run: (c) => c.distill?.teacher.run,
  steps: (c) => c.samples.steps,
  teacherSteps: (c) => c.distill?.teacher.steps,
  iterations: (c) => c.distill?.iterations,
  objective: (c) => c.objective,
  lossWeight: (c) => c.distill?.weighting,
  batchSize: (c) => c.train.batchSize,
  lr: (c) => c.train.lr,
  emaDecay: (c) => c.train.emaDecay ?? 0,
  seed: (c) => c.train.seed,
  limit: (c) => c.train.limit,
};

function configure(f: DistillFlags, cmd: Command): { config: RunConfig; run: RunFolder; resumeFrom?: string; restart?: boolean } {
  const given = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
  if (f.resume !== undefined) {
    const { run, checkpoint } = resolveResume(f.resume, f.out);
    const saved = readRunConfig(run);
    if (!saved.distill) throw new Error(`--resume ${f.resume}: ${run.root} was written by \`ddpm train\`, not \`ddpm distill\`; continue it with \`ddpm train --resume\``);
    for (const [key, get] of Object.entries(SAVED) as [DistillOptionName, (c: RunConfig) => unknown][]) {
      const value = (f as unknown as Record<string, unknown>)[key];
      const was = get(saved);
      const same = key === 'run' ? path.resolve(String(value)) === path.resolve(String(was)) : value === was;
      if (given(key) && !same) {
        throw new Error(`${flagName(DISTILL_OPTIONS[key])} ${String(value)} differs from the resumed distillation's ${String(was)}; a resumed run keeps its config.json`);
      }
    }
    if (given('checkpoint')) throw new Error('--checkpoint names the teacher of a new distillation; a resumed one keeps its own (config.json distill.teacher)');
    run.cleanTemps();
    if (checkpoint === undefined) {
      process.stderr.write(`${run.root} has no checkpoint yet (the distillation stopped before its first one): starting it from step 0 with its saved config.json\n`);
      return { config: saved, run, restart: true };
    }
    return { config: saved, run, resumeFrom: checkpoint };
  }
  if (f.run === undefined) throw new Error("required option '--run <dir>' not specified: the teacher run to distil (or give --resume to continue a distillation)");
  if (f.out === undefined) throw new Error("required option '--out <dir>' not specified (or give --resume to continue a distillation)");
  const run = new RunFolder(path.resolve(f.out));
  if (existsSync(run.configPath)) throw new Error(`${run.root} already holds a run (config.json exists); choose another --out, or delete it first`);
  if (path.resolve(f.out) === path.resolve(f.run)) throw new Error(`--out ${f.out} is the teacher's own folder; the student needs a run folder of its own`);
  // The teacher's weights as sampling reads them: the checkpoint's EMA when it has one.
  const teacher = loadRun(f.run, f.checkpoint);
  teacher.model.dispose();
  const config = distilledConfig(teacher.config, {
    teacherRun: path.resolve(f.run), teacherCheckpoint: path.resolve(teacher.checkpoint),
    steps: f.steps ?? DISTILL_DEFAULTS.steps, iterations: f.iterations ?? DISTILL_DEFAULTS.iterations,
    objective: f.objective ?? DISTILL_DEFAULTS.objective, weighting: f.lossWeight ?? DISTILL_DEFAULTS.lossWeight,
    lr: f.lr ?? DISTILL_DEFAULTS.lr, emaDecay: f.emaDecay ?? DISTILL_DEFAULTS.emaDecay, seed: f.seed ?? DISTILL_DEFAULTS.seed,
    ...(f.teacherSteps !== undefined ? { teacherSteps: f.teacherSteps } : {}),
    ...(f.batchSize !== undefined ? { batchSize: f.batchSize } : {}),
    ...(f.limit !== undefined ? { limit: f.limit } : {}),
  });
  if (f.data !== undefined) config.train.data = path.resolve(f.data);
  return { config, run };
}

async function runDistill(f: DistillFlags, cmd: Command): Promise<void> {
  const { config, run, resumeFrom, restart } = configure(f, cmd);
  const d = config.distill!;
  const tty = process.stderr.isTTY === true;
  const bar = progressBar('round {round}/{rounds} ({steps} steps) |{bar}| step {value}/{total} | loss {loss} | {ips} img/s | ETA {eta_formatted}', tty);
  const stop = stopOnSigint();
  let summary;
  try {
    summary = await distill(config, run, {
      threads: f.threads, signal: stop.signal, checkpointEvery: f.checkpointEvery, keep: f.keep, sampleGrids: f.sampleGrids,
      ...(f.maxSteps !== undefined ? { maxSteps: f.maxSteps } : {}),
      ...(resumeFrom !== undefined ? { resumeFrom } : {}),
      ...(restart ? { restart } : {}),
      ...(config.train.dataset !== 'folder' && f.data !== undefined ? { data: { dir: f.data } } : {}),
      hooks: {
        onStart: (s) => {
          const from = s.resumedAt > 0 ? `, resuming at step ${s.resumedAt} from ${resumeFrom}` : '';
          process.stderr.write(`distilling ${d.teacher.run} (${d.teacher.objective}, ${d.teacher.steps} DDIM steps) into a ${config.objective} student: ` +
            `${d.rounds.length} rounds (${d.rounds.join(', ')} steps) of ${d.iterations} iterations on ${s.images} images from ${s.dataDir}, ${f.threads} threads -> ${run.root}${from}\n`);
          bar.start(s.totalSteps, s.resumedAt, { round: '-', rounds: d.rounds.length, steps: '-', loss: '-', ips: '-' });
        },
        onStep: (s) => bar.update(s.step, { round: s.round + 1, steps: s.steps, loss: s.smoothedLoss.toFixed(4), ips: Math.round(s.imagesPerSecond) }),
        onSkip: (k) => process.stderr.write(`\nstep ${k.step} skipped: ${k.reason} (${k.inARow} in a row)\n`),
        onRound: (r) => {
          const grid = r.grid ? `samples ${path.relative(process.cwd(), r.grid)}; ` : '';
          process.stderr.write(`\nround ${r.round + 1}: a ${r.steps}-step student, mean loss ${r.meanLoss.toFixed(4)}; ${grid}checkpoint ${path.relative(process.cwd(), r.checkpoint)}\n`);
        },
      },
    });
  } finally {
    bar.stop();
    stop.dispose();
  }
  process.stderr.write(`done: ${summary.steps} steps in ${summary.seconds.toFixed(1)} s (${Math.round(summary.imagesPerSecond)} img/s), final loss ${summary.finalLoss.toFixed(4)}; ` +
    `\`ddpm sample --run ${path.relative(process.cwd(), run.root) || '.'}\` samples with DDIM at ${config.samples.steps} steps\n`);
}
