// `ddpm viz ...`: pictures of the diffusion processes and plots.
import { Command, InvalidArgumentError } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadFashionMnist } from '../data/fashion-mnist.js';
import { prepareImages } from '../data/transforms.js';
import { Diffusion, makeSchedule } from '../diffusion/index.js';
import { presetDefaults, readRunConfig, runNumClasses, runSampling, runLearnVariance, type RunConfig } from '../train/config.js';
import {
  SAMPLER_OPTIONS as O, samplerDefaults, checkSteps, VARIANCES, type SamplerName, type X0Processing, type SamplerOptions, type Variance,
} from '../samplers/index.js';
import { RunFolder } from '../io/run.js';
import { writePng } from '../io/png.js';
import { encodeGif } from '../io/gif.js';
import { writeFileAtomic } from '../io/atomic.js';
import { tensorGrid } from '../viz/tensor-grid.js';
import { makeGrid } from '../viz/grid.js';
import { evenlySpaced, forwardStrip, markovChainStrip, forwardNoiseCheck } from '../viz/forward.js';
import { denoiseFrom, denoiseTiles } from '../viz/denoise.js';
import { cat } from '../tensor/index.js';
import { writeChart, schedulesSpec, lossCurveSpec, parseLossLog } from '../viz/plot.js';
import {
  recordReverse, reverseRows, reversePicture, reverseFrames, guidanceSweep, samplerComparison,
  defaultSamplerSettings, parseSamplerSettings, type SamplerSetting,
} from '../viz/reverse.js';
import { RUN_OPTIONS as R } from '../samplers/run-options.js';
import { checkExt, declared, nonNegativeInt, positiveInt } from './args.js';
import { addRunOptions, openRun, type RunFlags } from './open-run.js';

interface ForwardFlags { index: number; out: string; data?: string; run?: string; steps: number; seed: number; scale: number; chain?: boolean }

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

/** Sampler options for a run as `ddpm sample` sets them by default (samplers/options.ts). */
function runDefaults(config: RunConfig, sampler: SamplerName, x0?: X0Processing): Partial<SamplerOptions> {
  const d = samplerDefaults(runSampling(config), sampler);
  return {
    x0Processing: x0 ?? d.x0Processing,
    ...(d.spacing !== null ? { spacing: d.spacing } : {}),
    ...(d.variance !== null ? { variance: d.variance } : {}),
    ...(runLearnVariance(config) ? { learnVariance: true } : {}),
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
  const viz = new Command('viz').description('pictures of the forward and reverse processes, and plots');
  viz.command('forward')
    .description('a dataset image noised by q(x_t | x_0) at evenly spaced t, as in the notebook')
    .requiredOption('--out <file>', 'PNG to write')
    .option('--index <n>', 'which training image', nonNegativeInt('--index'), 0)
    .option('--steps <n>', 'number of columns (timesteps)', positiveInt('--steps'), 10)
    .option('--run <dir>', 'use this run\'s schedule and image size (default: the dli02 preset)')
    .option('--data <dir>', 'Fashion-MNIST folder')
    .addOption(declared(R.seed, { help: 'seed of the noise', default: 0 }))
    .addOption(declared(R.scale, { default: 4 }))
    .option('--chain', 'add a second row: x_t from the Markov chain q(x_t | x_{t-1}) run step by step, and print the noise statistics of both routes')
    .action((f: ForwardFlags) => {
      const config: RunConfig = f.run ? readRunConfig(new RunFolder(f.run)) : presetDefaults('dli02');
      const ds = loadFashionMnist('train', f.data !== undefined ? { dir: f.data } : {});
      if (f.index >= ds.count) throw new Error(`--index ${f.index} is out of range: the training set has ${ds.count} images (0..${ds.count - 1})`);
      const px = ds.height * ds.width;
      const x0 = prepareImages(ds.images.subarray(f.index * px, (f.index + 1) * px), { n: 1, c: 1, h: ds.height, w: ds.width }, config.model.imageSize);
      const d = new Diffusion(makeSchedule(config.schedule));
      const ts = evenlySpaced(d.T, f.steps);
      const strip = forwardStrip(d, x0.squeeze(0), ts, f.seed);
      if (f.chain) {
        // seeds/000 Q2 and Q4: the step-by-step chain and the closed-form jump give x_t of the same law.
        const chain = markovChainStrip(d, x0.squeeze(0), ts, f.seed + 1);
        writePng(f.out, tensorGrid(cat([strip, chain], 0), { nrow: ts.length, scale: f.scale }));
        process.stderr.write(`wrote ${f.out}: image ${f.index} (${ds.classNames[ds.labels[f.index]!]}) at t = ${ts.join(', ')}; top row q(x_t | x_0) in one jump, bottom row the chain q(x_t | x_{t-1}) run step by step\n`);
        process.stderr.write('noise part r = x_t - sqrt(alphabar_t) x_0 over 256 draws: mean and std, closed form | chain | std expected sqrt(1 - alphabar_t)\n');
        for (const c of forwardNoiseCheck(d, x0.squeeze(0), ts, 256, f.seed + 2)) {
          process.stderr.write(`  t=${String(c.t).padStart(4)}  ${c.closedFormMean.toFixed(3).padStart(7)} ${c.closedFormStd.toFixed(3)} | ${c.chainMean.toFixed(3).padStart(7)} ${c.chainStd.toFixed(3)} | ${c.expectedStd.toFixed(3)}\n`);
        }
        return;
      }
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

  addRunOptions(viz.command('reverse'))
    .description('the reverse process: x_t beside the predicted x_0 at every step (PNG rows at evenly spaced steps; GIF one frame per step)')
    .requiredOption('--out <file>', 'PNG to write')
    .option('--gif <file>', 'also write an animated GIF, one frame per step')
    .addOption(declared(O.sampler))
    .addOption(declared(O.steps, { defaultHelp: 'as `ddpm sample`, but at most 200 for ddpm and pc' }))
    .addOption(declared(O.eta))
    .addOption(declared(O.x0Processing))
    .addOption(declared(R.n, { help: 'images (one column each)', default: 4 }))
    .addOption(declared(R.class))
    .option('--rows <r>', 'steps shown in the PNG, evenly spaced', positiveInt('--rows'), 10)
    .addOption(declared(R.scale, { default: 4 }))
    .option('--delay <ms>', 'GIF frame delay (default: about 6 s for the whole animation)', positiveInt('--delay'))
    .action((f: RunFlags & { out: string; gif?: string; sampler?: SamplerName; steps?: number; eta?: number; clip?: X0Processing; n: number; class?: number; rows: number; scale: number; delay?: number }) => {
      checkExt('--out', f.out, ['.png']);
      if (f.gif) checkExt('--gif', f.gif, ['.gif']);
      if (f.eta !== undefined && f.sampler !== undefined && f.sampler !== 'ddim') throw new Error(`--eta applies to --sampler ddim only, not ${f.sampler}`);
      if (f.n > 16) throw new Error(`-n ${f.n}: at most 16 images fit a readable reverse picture`);
      const r = openRun(f);
      try {
        const T = r.diffusion.T;
        const def = samplerDefaults(runSampling(r.config), f.sampler);
        const sampler = def.sampler;
        if (f.eta !== undefined && sampler !== 'ddim') throw new Error(`--eta applies to --sampler ddim only, not ${sampler} (the run's own sampler)`);
        if (f.steps !== undefined) checkSteps('--steps', f.steps, T);
        const steps = f.steps ?? (sampler === 'ddpm' || sampler === 'pc' ? Math.min(def.steps, 200) : def.steps);
        const cond = conditioning(r.numClasses, f.n, f.class, f.run);
        const { imageChannels: c, imageSize: s } = r.config.model;
        const rec = recordReverse({
          ...runDefaults(r.config, sampler, f.clip), model: r.fn, diffusion: r.diffusion, objective: r.objective,
          shape: [f.n, c, s, s], sampler, steps,
          ...(f.eta !== undefined ? { eta: f.eta } : {}),
          ...(cond.labels ? { numClasses: r.numClasses, labels: cond.labels } : {}),
        }, f.seed);
        const rows = reverseRows(rec.t.length, f.rows);
        writePng(f.out, reversePicture(rec, rows, { scale: f.scale }));
        process.stderr.write(`wrote ${f.out}: ${sampler}, ${steps} steps, ${f.n} images (${cond.note}); left x_t, right predicted x_0; rows top to bottom at t = ${rows.map((k) => rec.t[k]).join(', ')}\n`);
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
    .addOption(declared(O.sampler, { default: 'dpmpp2m' }))
    .addOption(declared(O.steps, { default: 20 }))
    .addOption(declared(R.scale, { default: 4 }))
    .action((f: RunFlags & { out: string; weights: number[]; classes?: number[]; sampler: SamplerName; steps: number; scale: number }) => {
      checkExt('--out', f.out, ['.png']);
      const config = readRunConfig(new RunFolder(f.run));
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
          ...runDefaults(r.config, f.sampler), model: r.fn, diffusion: r.diffusion, objective: r.objective, numClasses,
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
    .addOption(declared(R.n, { help: 'images per row', default: 8 }))
    .option('--settings <list>', 'rows as sampler[:steps], comma-separated (default: ddpm:T,ddim:50,ddim:20,dpmpp2m:20,dpmpp2m:10)')
    .addOption(declared(R.class))
    .addOption(declared(R.scale, { default: 4 }))
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
          optionsFor: (st) => runDefaults(r.config, st.sampler),
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

  addRunOptions(viz.command('denoise'))
    .description('a trained model as a denoiser: a test image noised to x_t, the one-step prediction x0_hat, and the reverse process run from t (one row per t)')
    .requiredOption('--out <file>', 'PNG to write')
    .option('--index <n>', 'first Fashion-MNIST test image', nonNegativeInt('--index'), 0)
    .addOption(declared(R.n, { help: 'consecutive test images', default: 1 }))
    .option('--t <list>', 'start timesteps, comma-separated, one row each (default: about T/10, T/3 and 2T/3)', numberList('--t'))
    .addOption(declared(O.variance, { help: `reverse variance, ${VARIANCES.join(', ')}`, default: 'notebook' }))
    .option('--data <dir>', 'Fashion-MNIST folder')
    .addOption(declared(R.scale, { default: 4 }))
    .action((f: RunFlags & { out: string; index: number; n: number; t?: number[]; variance: Variance; data?: string; scale: number }) => {
      checkExt('--out', f.out, ['.png']);
      if (f.n > 8) throw new Error(`-n ${f.n}: at most 8 images fit a readable denoise picture (4 tiles each per row)`);
      const config = readRunConfig(new RunFolder(f.run));
      const T = config.schedule.kind === 'custom' ? config.schedule.betas.length : config.schedule.T;
      const ts = f.t ?? [...new Set([Math.round(T / 10), Math.round(T / 3), Math.round((2 * T) / 3)])];
      const bad = ts.find((t) => !Number.isInteger(t) || t < 0 || t >= T);
      if (bad !== undefined) throw new Error(`--t: ${bad} is not a timestep of ${f.run}, whose T = ${T}; give integers in 0..${T - 1}`);
      const ds = loadFashionMnist('test', f.data !== undefined ? { dir: f.data } : {});
      if (f.index + f.n > ds.count) throw new Error(`--index ${f.index} with -n ${f.n} is out of range: the test set has ${ds.count} images (0..${ds.count - 1})`);
      if (runNumClasses(config) > 0) process.stderr.write(`${f.run} is class-conditional; denoising it unconditionally (no class given)\n`);
      const r = openRun(f);
      try {
        const px = ds.height * ds.width;
        const { imageChannels: c, imageSize: s } = r.config.model;
        if (c !== 1) throw new Error(`denoise: ${f.run} makes ${c}-channel images, and the Fashion-MNIST test images are grey (1 channel)`);
        const x0 = prepareImages(ds.images.subarray(f.index * px, (f.index + f.n) * px), { n: f.n, c: 1, h: ds.height, w: ds.width }, s); // (n, 1, s, s)
        const rows = denoiseFrom({ model: r.fn, diffusion: r.diffusion, objective: r.objective, x0, ts, variance: f.variance, x0Processing: samplerDefaults(runSampling(r.config)).x0Processing, seed: f.seed, learnVariance: r.learnVariance });
        const size = c * s * s;
        writePng(f.out, makeGrid(denoiseTiles(x0.float().dataSync() as Float32Array, rows, f.n, size), rows.length * f.n * 4, c, s, s, { nrow: 4 * f.n, scale: f.scale }));
        const names = Array.from({ length: f.n }, (_, i) => ds.classNames[ds.labels[f.index + i]!]).join(', ');
        process.stderr.write(`wrote ${f.out}: test images ${f.index}..${f.index + f.n - 1} (${names}); per image: x_0 | x_t | x0_hat (one model call) | after the reverse process from t (${f.variance} variance)\n`);
        process.stderr.write('mean squared error to x_0 (pixels in [-1, 1]):\n');
        for (const row of rows) {
          process.stderr.write(`  t=${String(row.t).padStart(4)}  alphabar ${r.diffusion.terms.alphaBar[row.t]!.toFixed(3)}  x_t ${row.mse.xt.toFixed(4)}  x0_hat ${row.mse.x0Hat.toFixed(4)}  reversed ${row.mse.reversed.toFixed(4)}\n`);
        }
        x0.dispose();
      } finally {
        r.predictor.dispose();
      }
    });

  return viz;
}
