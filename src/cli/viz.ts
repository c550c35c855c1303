// `ddpm viz ...`: pictures of the diffusion processes, plots, and the likelihood bound.
import { Command, InvalidArgumentError } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadFashionMnist } from '../data/fashion-mnist.js';
import { prepareImages } from '../data/transforms.js';
import { Diffusion, makeSchedule } from '../diffusion/index.js';
import { presetDefaults, runObjective, runNumClasses, type RunConfig } from '../train/config.js';
import { loadRun, type LoadedRun } from '../train/checkpoint.js';
import { loadTrainingImages } from '../train/trainer.js';
import { inferencePredictor, type InferencePredictor } from '../models/index.js';
import {
  type Tensor, Generator, setNumThreads, setBlasThreads, tidy, keep,
} from '../tensor/index.js';
import {
  SAMPLERS, VARIANCES, X0_PROCESSINGS, defaultSteps, defaultSpacing, defaultVariance, defaultX0Processing, checkSteps,
  type SamplerName, type Variance, type X0Processing, type SamplerOptions, type ConditionalModelFn,
} from '../samplers/index.js';
import { RunFolder } from '../io/run.js';
import { writePng } from '../io/png.js';
import { encodeGif } from '../io/gif.js';
import { writeFileAtomic } from '../io/atomic.js';
import { tensorGrid } from '../viz/tensor-grid.js';
import { makeGrid } from '../viz/grid.js';
import { evenlySpaced, forwardStrip } from '../viz/forward.js';
import { writeChart, schedulesSpec, lossCurveSpec, lossByTSpec, parseLossLog } from '../viz/plot.js';
import {
  recordReverse, reverseRows, reversePicture, reverseFrames, guidanceSweep, samplerComparison,
  defaultSamplerSettings, parseSamplerSettings, type SamplerSetting,
} from '../viz/reverse.js';
import { variationalBound, quantize8bit } from '../eval/nll.js';
import { lossByT, lossTimesteps, defaultLossPoints } from '../eval/loss-by-t.js';
import { choice, defaultThreads, nonNegativeInt, positiveInt } from './args.js';

interface ForwardFlags { index: number; out: string; data?: string; run?: string; steps: number; seed: number; scale: number }

interface RunFlags { run: string; checkpoint?: string; ema: boolean; threads: number; seed: number }

function finiteNumber(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got "${v}"`);
    return n;
  };
}

/** "-1,0,1,2,4" -> numbers; refuses anything that is not a comma-separated list of finite numbers. */
export function numberList(name: string): (v: string) => number[] {
  return (v) => {
    const parts = v.split(',').map((s) => s.trim());
    const bad = parts.find((p) => p === '' || !Number.isFinite(Number(p)));
    if (bad !== undefined) throw new InvalidArgumentError(`${name} must be a comma-separated list of numbers (e.g. -1,0,1,2,4), but "${bad}" in "${v}" is not a number`);
    return parts.map(Number);
  };
}

function classList(name: string): (v: string) => number[] {
  return (v) => {
    const parts = v.split(',').map((s) => s.trim());
    if (parts.some((p) => !/^\d+$/.test(p))) throw new InvalidArgumentError(`${name} must be a class index or a comma-separated list of them (e.g. 3 or 0,2,5), got "${v}"`);
    return parts.map(Number);
  };
}

function oddInt(name: string): (v: string) => number {
  return (v) => {
    const n = positiveInt(name)(v);
    if (n % 2 === 0) throw new InvalidArgumentError(`${name} must be an odd positive integer (a centred window), got "${v}"`);
    return n;
  };
}

/** Refuses an output file whose extension the command cannot write, before any work is done. */
function checkExt(option: string, file: string, allowed: string[]): void {
  const ext = path.extname(file).toLowerCase();
  if (!allowed.includes(ext)) throw new Error(`${option} ${file}: the file must end in ${allowed.join(' or ')}, got "${ext || '(no extension)'}"`);
}

function addRunOptions(c: Command): Command {
  return c
    .requiredOption('--run <dir>', 'run folder written by `ddpm train`')
    .option('--checkpoint <path>', 'a checkpoints/step-N folder or model.safetensors (default: the latest)')
    .option('--no-ema', 'use the trained weights, not their EMA, when the checkpoint has both')
    .option('--threads <n>', 'libtorch threads', positiveInt('--threads'), defaultThreads())
    .option('--seed <n>', 'seed of the noise', nonNegativeInt('--seed'), 0);
}

interface OpenRun extends LoadedRun { predictor: InferencePredictor; fn: ConditionalModelFn; numClasses: number; objective: ReturnType<typeof runObjective> }

function openRun(f: RunFlags): OpenRun {
  setNumThreads(f.threads);
  // DESIGN.md: inference batches are fastest with two OpenBLAS threads here.
  setBlasThreads(Math.min(2, f.threads));
  const loaded = loadRun(f.run, f.checkpoint, { ema: f.ema });
  const predictor = inferencePredictor(loaded.model);
  return { ...loaded, predictor, fn: (x, t, c) => predictor.forward(x, t, c), numClasses: runNumClasses(loaded.config), objective: runObjective(loaded.config) };
}

/** The first n evaluation images of a run (8-bit levels in [-1, 1]) and their labels: Fashion-MNIST's test split, or the run's image folder. */
function evalImages(config: RunConfig, n: number, data?: string): { x: Tensor; labels: number[]; what: string } {
  const size = config.model.imageSize;
  if ((config.train.dataset ?? 'fashion-mnist') === 'folder') {
    const d = loadTrainingImages({ ...config, train: { ...config.train, limit: n } }, data !== undefined ? { dir: data } : {});
    const x = keep(tidy(() => quantize8bit(d.images)));
    const labels = d.labels ? d.labels.toArray() : new Array<number>(x.shape[0]!).fill(0);
    d.images.dispose();
    d.labels?.dispose();
    if (x.shape[0]! < n) process.stderr.write(`the image folder has ${x.shape[0]} images; using all of them\n`);
    return { x, labels, what: `the first ${x.shape[0]} images of ${d.dataDir} (the folder has no test split)` };
  }
  const ds = loadFashionMnist('test', data !== undefined ? { dir: data } : {});
  if (n > ds.count) throw new Error(`-n ${n} exceeds the ${ds.count} images of the Fashion-MNIST test set`);
  const px = ds.height * ds.width;
  // Resizing (28 -> 16 for dli02) leaves the 8-bit grid; the bound is of 8-bit images, so round back to it.
  const x = keep(tidy(() => quantize8bit(prepareImages(ds.images.subarray(0, n * px), { n, c: 1, h: ds.height, w: ds.width }, size))));
  return { x, labels: Array.from(ds.labels.subarray(0, n)), what: `the first ${n} Fashion-MNIST test images at ${size}x${size}, 8-bit` };
}

/** A stderr line at every tenth of the work (long evaluations). */
function progress(what: string): (done: number, total: number) => void {
  let last = -1;
  const t0 = performance.now();
  return (done, total) => {
    const tenth = Math.floor((10 * done) / total);
    if (tenth === last) return;
    last = tenth;
    const s = (performance.now() - t0) / 1000;
    process.stderr.write(`${what}: ${Math.round((100 * done) / total)}% (${s.toFixed(0)} s${done < total && done > 0 ? `, ~${((s * (total - done)) / done).toFixed(0)} s left` : ''})\n`);
  };
}

/** Sampler options for a run as `ddpm sample` sets them by default. */
function samplerDefaults(sampler: SamplerName, objective: ReturnType<typeof runObjective>, x0?: X0Processing): Partial<SamplerOptions> {
  return {
    x0Processing: x0 ?? defaultX0Processing(objective),
    ...(sampler !== 'dpmpp2m' ? { spacing: defaultSpacing(sampler) } : {}),
    ...(sampler === 'ddpm' || sampler === 'pc' ? { variance: defaultVariance(sampler) } : {}),
  };
}

function conditioning(numClasses: number, n: number, cls: number | undefined, run: string): { labels?: number[]; note: string } {
  if (numClasses === 0) {
    if (cls !== undefined) throw new Error(`--class needs a class-conditional run, and ${run} was trained without classes; drop --class`);
    return { note: 'unconditional' };
  }
  if (cls !== undefined) {
    if (cls >= numClasses) throw new Error(`--class ${cls} is outside the run's classes 0..${numClasses - 1}`);
    return { labels: new Array<number>(n).fill(cls), note: `class ${cls}` };
  }
  return { labels: Array.from({ length: n }, (_, i) => i % numClasses), note: `image i is class i mod ${numClasses}` };
}

export function vizCommand(): Command {
  const viz = new Command('viz').description('pictures of the forward and reverse processes, plots, and the likelihood bound');
  viz.command('forward')
    .description('a dataset image noised by q(x_t | x_0) at evenly spaced t, as in the notebook')
    .requiredOption('--out <file>', 'PNG to write')
    .option('--index <n>', 'which training image', nonNegativeInt('--index'), 0)
    .option('--steps <n>', 'number of columns (timesteps)', positiveInt('--steps'), 10)
    .option('--run <dir>', 'use this run\'s schedule and image size (default: the dli02 preset)')
    .option('--data <dir>', 'Fashion-MNIST folder')
    .option('--seed <n>', 'seed of the noise', nonNegativeInt('--seed'), 0)
    .option('--scale <n>', 'upscale factor (nearest)', positiveInt('--scale'), 4)
    .action((f: ForwardFlags) => {
      const config: RunConfig = f.run ? new RunFolder(f.run).readConfig<RunConfig>() : presetDefaults('dli02');
      const ds = loadFashionMnist('train', f.data !== undefined ? { dir: f.data } : {});
      if (f.index >= ds.count) throw new Error(`--index ${f.index} is out of range: the training set has ${ds.count} images (0..${ds.count - 1})`);
      const px = ds.height * ds.width;
      const x0 = prepareImages(ds.images.subarray(f.index * px, (f.index + 1) * px), { n: 1, c: 1, h: ds.height, w: ds.width }, config.model.imageSize);
      const d = new Diffusion(makeSchedule(config.schedule));
      const ts = evenlySpaced(d.T, f.steps);
      const strip = forwardStrip(d, x0.squeeze(0), ts, f.seed);
      writePng(f.out, tensorGrid(strip, { nrow: ts.length, scale: f.scale }));
      process.stderr.write(`wrote ${f.out}: image ${f.index} (${ds.classNames[ds.labels[f.index]!]}) at t = ${ts.join(', ')}\n`);
    });

  viz.command('schedules')
    .description('beta, alpha-bar and log-SNR against t for the linear, scaled-linear, cosine, sigmoid and zero-terminal-SNR linear schedules')
    .requiredOption('--out <file>', 'chart to write (.svg or .png)')
    .option('--timesteps <T>', 'number of timesteps T', positiveInt('--timesteps'), 1000)
    .action(async (f: { out: string; timesteps: number }) => {
      checkExt('--out', f.out, ['.svg', '.png']);
      if (f.timesteps < 2) throw new Error(`--timesteps must be at least 2 (the zero-terminal-SNR schedule needs two steps), got ${f.timesteps}`);
      await writeChart(f.out, schedulesSpec(f.timesteps));
      process.stderr.write(`wrote ${f.out}: beta_t, alphabar_t and log SNR(t) of 5 schedules at T = ${f.timesteps}\n`);
    });

  viz.command('loss')
    .description("the loss curve of a run, from its log.jsonl (loss against step, smoothed)")
    .requiredOption('--run <dir>', 'run folder written by `ddpm train`')
    .requiredOption('--out <file>', 'chart to write (.svg or .png)')
    .option('--smooth <n>', 'centred moving-average window in logged points, odd (default: about a twentieth of the points)', oddInt('--smooth'))
    .action(async (f: { run: string; out: string; smooth?: number }) => {
      checkExt('--out', f.out, ['.svg', '.png']);
      const run = new RunFolder(f.run);
      if (!existsSync(run.logPath)) throw new Error(`${f.run} has no log.jsonl; is it a run folder written by \`ddpm train\`?`);
      const rows = parseLossLog(readFileSync(run.logPath, 'utf8'), run.logPath);
      if (rows.length === 0) throw new Error(`${run.logPath} has no lines with a step and a finite loss yet (training logs every train.logEvery steps)`);
      await writeChart(f.out, lossCurveSpec(rows, { title: `Training loss of ${path.basename(path.resolve(f.run))}`, ...(f.smooth !== undefined ? { smoothing: f.smooth } : {}) }));
      process.stderr.write(`wrote ${f.out}: ${rows.length} logged points, steps ${rows[0]!.step}..${rows[rows.length - 1]!.step}, last loss ${rows[rows.length - 1]!.loss.toFixed(4)}\n`);
    });

  addRunOptions(viz.command('loss-by-t'))
    .description("the run's training loss and the eps-MSE at evenly spaced t, averaged over test images")
    .requiredOption('--out <file>', 'chart to write (.svg or .png)')
    .option('--json <file>', 'also write the numbers as JSON')
    .option('-n, --n <count>', 'test images', positiveInt('-n'), 256)
    .option('--points <k>', 'timesteps evaluated (default: all T when T <= 200, else 100)', positiveInt('--points'))
    .option('--batch-size <n>', 'images per forward pass', positiveInt('--batch-size'), 256)
    .option('--data <dir>', 'Fashion-MNIST folder (or the run\'s image folder)')
    .action(async (f: RunFlags & { out: string; json?: string; n: number; points?: number; batchSize: number; data?: string }) => {
      checkExt('--out', f.out, ['.svg', '.png']);
      if (f.json) checkExt('--json', f.json, ['.json']);
      const r = openRun(f);
      try {
        const T = r.diffusion.T;
        if (f.points !== undefined && f.points > T) throw new Error(`--points ${f.points} exceeds the run's T = ${T} timesteps`);
        const ts = lossTimesteps(T, f.points ?? defaultLossPoints(T));
        const data = evalImages(r.config, f.n, f.data);
        const loss = r.config.loss ?? { weighting: 'simple', minSnrGamma: 5, offsetNoise: 0 };
        const t0 = performance.now();
        let res;
        try {
          res = lossByT(data.x, {
            model: r.fn, diffusion: r.diffusion, objective: r.objective, weighting: loss.weighting, minSnrGamma: loss.minSnrGamma,
            timesteps: ts, batchSize: f.batchSize, seed: f.seed,
            ...(r.numClasses > 0 ? { numClasses: r.numClasses, labels: data.labels } : {}),
            onProgress: progress('loss-by-t'),
          });
        } finally {
          data.x.dispose();
        }
        await writeChart(f.out, lossByTSpec(res, { title: `Loss by timestep: ${path.basename(path.resolve(f.run))}` }));
        if (f.json) writeFileAtomic(f.json, `${JSON.stringify({ run: f.run, checkpoint: r.checkpoint, data: data.what, seconds: (performance.now() - t0) / 1000, ...res }, null, 2)}\n`);
        const at = (i: number): string => `t=${res.t[i]}: ${res.loss[i]!.toFixed(4)}`;
        process.stdout.write(`loss by t (${res.objective}, ${res.weighting}) over ${res.images} images, ${res.t.length} timesteps: ${at(0)}, ${at(Math.floor(res.t.length / 2))}, ${at(res.t.length - 1)}\n`);
        process.stderr.write(`wrote ${f.out}${f.json ? ` and ${f.json}` : ''}\n`);
      } finally {
        r.predictor.dispose();
      }
    });

  addRunOptions(viz.command('reverse'))
    .description('the reverse process: x_t beside the predicted x_0 at every step (PNG rows at evenly spaced steps; GIF one frame per step)')
    .requiredOption('--out <file>', 'PNG to write')
    .option('--gif <file>', 'also write an animated GIF, one frame per step')
    .option('--sampler <name>', `${SAMPLERS.join(', ')}`, choice('--sampler', SAMPLERS), 'ddpm')
    .option('--steps <k>', 'model timesteps K <= T (default: as `ddpm sample`, but at most 200 for ddpm and pc)', positiveInt('--steps'))
    .option('--eta <x>', 'ddim only: noise of each step, 0 .. 1', finiteNumber('--eta'))
    .option('--clip <kind>', `x0 processing: ${X0_PROCESSINGS.join(', ')} (default: none for eps models, clip for x0 and v)`, choice('--clip', X0_PROCESSINGS))
    .option('-n, --n <count>', 'images (one column each)', positiveInt('-n'), 4)
    .option('--class <c>', 'class-conditional runs: the class of every image (default: image i is class i mod K)', nonNegativeInt('--class'))
    .option('--rows <r>', 'steps shown in the PNG, evenly spaced', positiveInt('--rows'), 10)
    .option('--scale <n>', 'upscale factor (nearest)', positiveInt('--scale'), 4)
    .option('--delay <ms>', 'GIF frame delay (default: about 6 s for the whole animation)', positiveInt('--delay'))
    .action((f: RunFlags & { out: string; gif?: string; sampler: SamplerName; steps?: number; eta?: number; clip?: X0Processing; n: number; class?: number; rows: number; scale: number; delay?: number }) => {
      checkExt('--out', f.out, ['.png']);
      if (f.gif) checkExt('--gif', f.gif, ['.gif']);
      if (f.eta !== undefined && f.sampler !== 'ddim') throw new Error(`--eta applies to --sampler ddim only, not ${f.sampler}`);
      if (f.n > 16) throw new Error(`-n ${f.n}: at most 16 images fit a readable reverse picture`);
      const r = openRun(f);
      try {
        const T = r.diffusion.T;
        if (f.steps !== undefined) checkSteps('--steps', f.steps, T);
        const steps = f.steps ?? (f.sampler === 'ddpm' || f.sampler === 'pc' ? Math.min(T, 200) : defaultSteps(f.sampler, T));
        const cond = conditioning(r.numClasses, f.n, f.class, f.run);
        const { imageChannels: c, imageSize: s } = r.config.model;
        const rec = recordReverse({
          ...samplerDefaults(f.sampler, r.objective, f.clip), model: r.fn, diffusion: r.diffusion, objective: r.objective,
          shape: [f.n, c, s, s], sampler: f.sampler, steps,
          ...(f.eta !== undefined ? { eta: f.eta } : {}),
          ...(cond.labels ? { numClasses: r.numClasses, labels: cond.labels } : {}),
        }, f.seed);
        const rows = reverseRows(rec.t.length, f.rows);
        writePng(f.out, reversePicture(rec, rows, { scale: f.scale }));
        process.stderr.write(`wrote ${f.out}: ${f.sampler}, ${steps} steps, ${f.n} images (${cond.note}); left x_t, right predicted x_0; rows top to bottom at t = ${rows.map((k) => rec.t[k]).join(', ')}\n`);
        if (f.gif) {
          const frames = reverseFrames(rec, { scale: f.scale });
          const delayMs = f.delay ?? Math.min(200, Math.max(20, Math.round(6000 / frames.length / 10) * 10));
          writeFileAtomic(f.gif, encodeGif(frames, { delayMs }));
          process.stderr.write(`wrote ${f.gif}: ${frames.length} frames of ${frames[0]!.width}x${frames[0]!.height} (x_t | predicted x_0), ${delayMs} ms each\n`);
        }
      } finally {
        r.predictor.dispose();
      }
    });

  addRunOptions(viz.command('guidance'))
    .description('a classifier-free guidance sweep: one row per class, one column per guidance weight w, the same noise along each row')
    .requiredOption('--out <file>', 'PNG to write')
    .option('--weights <list>', 'guidance weights w, comma-separated', numberList('--weights'), [-1, 0, 1, 2, 4])
    .option('--classes <list>', 'classes, one row each (default: all)', classList('--classes'))
    .option('--sampler <name>', `${SAMPLERS.join(', ')}`, choice('--sampler', SAMPLERS), 'dpmpp2m')
    .option('--steps <k>', 'model timesteps K <= T', positiveInt('--steps'), 20)
    .option('--scale <n>', 'upscale factor (nearest)', positiveInt('--scale'), 4)
    .action((f: RunFlags & { out: string; weights: number[]; classes?: number[]; sampler: SamplerName; steps: number; scale: number }) => {
      checkExt('--out', f.out, ['.png']);
      const config = new RunFolder(f.run).readConfig<RunConfig>();
      const numClasses = runNumClasses(config);
      if (numClasses === 0) throw new Error(`guidance: ${f.run} was trained without classes, and classifier-free guidance needs a class-conditional run (train with --classes, e.g. the ddpm preset's class-conditional runs)`);
      const classes = f.classes ?? Array.from({ length: numClasses }, (_, i) => i);
      const bad = classes.find((k) => k >= numClasses);
      if (bad !== undefined) throw new Error(`--classes: class ${bad} is outside the run's classes 0..${numClasses - 1}`);
      checkSteps('--steps', f.steps, config.schedule.kind === 'custom' ? config.schedule.betas.length : config.schedule.T);
      const r = openRun(f);
      try {
        const { imageChannels: c, imageSize: s } = r.config.model;
        const images = guidanceSweep({
          ...samplerDefaults(f.sampler, r.objective), model: r.fn, diffusion: r.diffusion, objective: r.objective, numClasses,
          sampler: f.sampler, steps: f.steps, shape: [c, s, s], classes, weights: f.weights, seed: f.seed,
        });
        writePng(f.out, makeGrid(images, classes.length * f.weights.length, c, s, s, { nrow: f.weights.length, scale: f.scale }));
        process.stderr.write(`wrote ${f.out}: ${classes.length} rows (classes ${classes.join(', ')}) x ${f.weights.length} columns (w = ${f.weights.join(', ')}), ${f.sampler} ${f.steps} steps, seed ${f.seed}\n`);
      } finally {
        r.predictor.dispose();
      }
    });

  addRunOptions(viz.command('samplers'))
    .description('one x_T through several samplers and step counts: one row per setting')
    .requiredOption('--out <file>', 'PNG to write')
    .option('-n, --n <count>', 'images per row', positiveInt('-n'), 8)
    .option('--settings <list>', 'rows as sampler[:steps], comma-separated (default: ddpm:T,ddim:50,ddim:20,dpmpp2m:20,dpmpp2m:10)')
    .option('--class <c>', 'class-conditional runs: the class of every image (default: image i is class i mod K)', nonNegativeInt('--class'))
    .option('--scale <n>', 'upscale factor (nearest)', positiveInt('--scale'), 4)
    .action((f: RunFlags & { out: string; n: number; settings?: string; class?: number; scale: number }) => {
      checkExt('--out', f.out, ['.png']);
      const r = openRun(f);
      try {
        const T = r.diffusion.T;
        const settings: SamplerSetting[] = f.settings !== undefined ? parseSamplerSettings(f.settings, T) : defaultSamplerSettings(T);
        const cond = conditioning(r.numClasses, f.n, f.class, f.run);
        const { imageChannels: c, imageSize: s } = r.config.model;
        const t0 = performance.now();
        const images = samplerComparison({
          model: r.fn, diffusion: r.diffusion, objective: r.objective, shape: [f.n, c, s, s], settings, seed: f.seed,
          optionsFor: (st) => samplerDefaults(st.sampler, r.objective),
          ...(cond.labels ? { numClasses: r.numClasses, labels: cond.labels } : {}),
        });
        writePng(f.out, makeGrid(images, settings.length * f.n, c, s, s, { nrow: f.n, scale: f.scale }));
        const label = (st: SamplerSetting): string => `${({ ddpm: 'DDPM', ddim: 'DDIM', dpmpp2m: 'DPM-Solver++(2M)', pc: 'predictor-corrector' } as const)[st.sampler]} ${st.steps}`;
        process.stderr.write(`wrote ${f.out} in ${((performance.now() - t0) / 1000).toFixed(1)} s: the same x_T (seed ${f.seed}, ${cond.note}) in every row; rows top to bottom:\n`);
        settings.forEach((st, i) => process.stderr.write(`  row ${i + 1}: ${label(st)} steps\n`));
      } finally {
        r.predictor.dispose();
      }
    });

  addRunOptions(viz.command('nll'))
    .description('negative log-likelihood of test images in bits per dimension, from the variational bound (as improved-diffusion reports it)')
    .option('-n, --n <count>', 'test images', positiveInt('-n'), 1000)
    .option('--json <file>', 'also write the result (per-t terms included) as JSON')
    .option('--variance <kind>', `reverse variance: ${VARIANCES.join(', ')} (default: the run's samples.variance; posterior = "fixed small", beta = "fixed large")`, choice('--variance', VARIANCES))
    .option('--no-clip', 'do not clamp the predicted x_0 to [-1, 1] (improved-diffusion clips)')
    .option('--batch-size <n>', 'images per forward pass', positiveInt('--batch-size'), 256)
    .option('--data <dir>', 'Fashion-MNIST folder (or the run\'s image folder)')
    .action((f: RunFlags & { n: number; json?: string; variance?: Variance; clip: boolean; batchSize: number; data?: string }) => {
      if (f.json) checkExt('--json', f.json, ['.json']);
      const r = openRun(f);
      try {
        const variance = f.variance ?? r.config.samples.variance ?? 'posterior';
        const data = evalImages(r.config, f.n, f.data);
        const t0 = performance.now();
        let res;
        try {
          res = variationalBound(data.x, {
            model: r.fn, diffusion: r.diffusion, objective: r.objective, variance, clipDenoised: f.clip,
            batchSize: f.batchSize, generator: new Generator(f.seed),
            ...(r.numClasses > 0 ? { numClasses: r.numClasses, labels: data.labels } : {}),
            onProgress: progress('nll'),
          });
        } finally {
          data.x.dispose();
        }
        const seconds = (performance.now() - t0) / 1000;
        const sd = Math.sqrt(res.perImage.reduce((a, v) => a + (v - res.bpd) ** 2, 0) / Math.max(1, res.images - 1));
        const kl = res.bpd - res.terms.prior - res.terms.decoder;
        const { imageChannels: c, imageSize: s } = r.config.model;
        process.stdout.write([
          `NLL <= ${res.bpd.toFixed(4)} bits/dim (+- ${(sd / Math.sqrt(res.images)).toFixed(4)} standard error) on ${data.what}`,
          `  ${s}x${s}x${c} = ${res.dims} dims, T = ${r.diffusion.T}, ${r.objective} objective, variance ${variance}, x0 ${f.clip ? 'clipped' : 'not clipped'}${r.numClasses > 0 ? ', conditional on the true class' : ''}, ${seconds.toFixed(1)} s`,
          `  prior   KL(q(x_T|x_0) || N(0,I))      ${res.terms.prior.toFixed(4)}`,
          `  sum of KL(q(x_t-1|x_t,x_0) || p)      ${kl.toFixed(4)}`,
          `  decoder -log p(x_0|x_1)               ${res.terms.decoder.toFixed(4)}`,
          '',
        ].join('\n'));
        if (f.json) {
          writeFileAtomic(f.json, `${JSON.stringify({
            run: f.run, checkpoint: r.checkpoint, data: data.what, images: res.images, dims: res.dims, T: r.diffusion.T, objective: r.objective,
            variance, clipDenoised: res.clipDenoised, seed: f.seed, seconds, bpd: res.bpd, standardError: sd / Math.sqrt(res.images),
            terms: { prior: res.terms.prior, decoder: res.terms.decoder, klSum: kl, vb: Array.from(res.terms.vb) },
            epsMse: Array.from(res.epsMse), x0Mse: Array.from(res.x0Mse), perImage: Array.from(res.perImage),
          }, null, 2)}\n`);
          process.stderr.write(`wrote ${f.json}\n`);
        }
      } finally {
        r.predictor.dispose();
      }
    });
  return viz;
}
