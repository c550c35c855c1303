// The ddpm-ts side of `npm run bench`: the workloads of bench/pytorch_bench.py, run through the code
// `ddpm train` and `ddpm sample` run (trainStep on a TrainingSession built as trainer.ts builds it;
// inferencePredictor and sample() with the preset's default sampler), printed as one JSON line in
// the same shape: img/s per repeat, the process's peak resident memory (VmHWM) and minor page
// faults per step.
//   node dist/bench/workloads.js --preset dli02|dli03|ddpm --what train|sample|stack|opcall [--threads 2]
//     [--batch N] [--steps N] [--repeats N] [--warmup N] [--classes N] [--guidance W]
import { parseArgs } from 'node:util';
import os from 'node:os';
import { readFileSync } from 'node:fs';
import {
  Generator, ones, rand, tensor, keep, tidy, setNumThreads, configureRuntime, blasInfo, libtorchVersion, manualSeed, type Tensor,
} from '../src/tensor/index.js';
import { Adam, Sequential, Conv2d, BatchNorm2d, ReLU, MaxPool2d, type Layer } from '../src/nn/index.js';
import { createModel, inferencePredictor, PRESETS, type PresetName } from '../src/models/index.js';
import { Diffusion, makeSchedule } from '../src/diffusion/index.js';
import { sample, samplerDefaults } from '../src/samplers/index.js';
import { presetDefaults, runSampling, runObjective, type RunConfig } from '../src/train/config.js';
import { trainStep, stepSettings, type TrainingSession } from '../src/train/trainer.js';
import { EMA } from '../src/train/ema.js';
import { BatchLoader } from '../src/data/loader.js';
import { native } from '../src/tensor/native.js';

const { values: a } = parseArgs({
  options: {
    preset: { type: 'string', default: 'dli02' }, what: { type: 'string', default: 'train' }, threads: { type: 'string', default: '2' },
    batch: { type: 'string' }, steps: { type: 'string' }, repeats: { type: 'string', default: '3' }, warmup: { type: 'string', default: '3' },
    classes: { type: 'string', default: '0' }, guidance: { type: 'string', default: '0' }, blas: { type: 'string' },
  },
});
const preset = a.preset as PresetName;
if (!(PRESETS as readonly string[]).includes(preset)) throw new Error(`--preset must be one of ${PRESETS.join(', ')}; got "${a.preset}"`);
const what = a.what!;
const threads = Number(a.threads);
const repeats = Number(a.repeats);
const warmup = Number(a.warmup);
const classes = Number(a.classes);
const guidance = Number(a.guidance);
if (guidance !== 0 && classes === 0) throw new Error('--guidance needs --classes');
const config: RunConfig = presetDefaults(preset);
config.model.numClasses = classes;
const size = config.model.imageSize;
const grid = samplerDefaults(runSampling(config));
const batch = Number(a.batch ?? ({ train: config.train.batchSize, stack: 128, opcall: 1, check: 4 } as Record<string, number>)[what] ?? (size === 16 ? 500 : 256));
const steps = Number(a.steps ?? ({ train: 10, stack: 10, opcall: 100000, sample: grid.steps } as Record<string, number>)[what]);

// The `ddpm` command's process settings (BLAS threads from --blas or $OPENBLAS_NUM_THREADS, tuned malloc), before libtorch loads.
configureRuntime(a.blas !== undefined ? { blasThreads: Number(a.blas) } : {});
setNumThreads(threads);
manualSeed(0);
const gen = new Generator(0);
const diffusion = new Diffusion(makeSchedule(config.schedule));

function fakeImages(n: number, s = size): Tensor { return rand([n, 1, s, s], { generator: gen }).mul(2).sub(1); } // (B, 1, S, S)

/** Seconds per call of fn, and the minor page faults of all its calls. */
function timeRepeats(fn: () => void): { seconds: number[]; faults: number } {
  const seconds: number[] = [];
  const f0 = process.resourceUsage().minorPageFault;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    fn();
    seconds.push((performance.now() - t0) / 1000);
  }
  return { seconds, faults: process.resourceUsage().minorPageFault - f0 };
}

function bench(): { perRepeat: number[]; faultsPerStep: number; unit: string } {
  switch (what) {
    case 'train': {
      // A TrainingSession as trainer.ts builds it, over an in-memory set of 8 batches of random images.
      manualSeed(config.train.seed);
      const model = createModel(config.model);
      const n = batch * 8;
      const labels = classes ? keep(tensor(Array.from({ length: n }, (_, i) => i % classes), [n], { dtype: 'int64' })) : null;
      const s: TrainingSession = {
        model,
        optimizer: new Adam(model.namedParameters(), { lr: config.train.lr }),
        loader: new BatchLoader(keep(fakeImages(n)), labels, { batchSize: batch, seed: 1, flip: config.train.flip }),
        noiseGen: new Generator(2),
        step: 0,
        ema: (config.train.emaDecay ?? 0) > 0 ? new EMA(model, { decay: config.train.emaDecay! }) : null,
      };
      const settings = stepSettings(config, 1000);
      const step = (): void => {
        let r = trainStep(s, diffusion, settings);
        if (r === 'end-of-epoch') r = trainStep(s, diffusion, settings);
        if (typeof r === 'string') throw new Error(`training step skipped: ${r}`);
        s.step += 1;
      };
      for (let i = 0; i < warmup; i++) step();
      const { seconds, faults } = timeRepeats(() => { for (let i = 0; i < steps; i++) step(); });
      return { perRepeat: seconds.map((x) => (batch * steps) / x), faultsPerStep: faults / (repeats * steps), unit: 'img/s' };
    }
    case 'sample': {
      // What `ddpm sample` runs: the eval-mode model behind inferencePredictor (BatchNorm folded where
      // the preset has it) and the preset's default sampler, `steps` of its step list.
      const model = createModel(config.model).eval();
      const predictor = inferencePredictor(model);
      const labels = classes ? Array.from({ length: batch }, (_, i) => i % classes) : undefined;
      const run = (k: number): void => tidy(() => {
        sample({
          model: (x, t, c) => predictor.forward(x, t, c), diffusion, objective: runObjective(config), shape: [batch, 1, size, size],
          sampler: grid.sampler, steps: grid.steps, x0Processing: grid.x0Processing, ...(grid.variance ? { variance: grid.variance } : {}),
          ...(labels ? { labels, numClasses: classes, guidance } : {}), generator: gen,
          // A shortened loop (--steps below the sampler's count) stops after k steps.
          ...(k < grid.steps ? { onStep: (st) => { if (st.index + 1 >= k) throw new StopLoop(); } } : {}),
        });
      });
      const runTo = (k: number): void => { try { run(k); } catch (e) { if (!(e instanceof StopLoop)) throw e; } };
      runTo(Math.min(warmup, grid.steps));
      const { seconds, faults } = timeRepeats(() => runTo(steps));
      predictor.dispose();
      return { perRepeat: seconds.map((x) => (batch * steps) / grid.steps / x), faultsPerStep: faults / (repeats * steps), unit: 'img/s' };
    }
    case 'stack': {
      const cbr = (i: number, o: number): Layer[] => [new Conv2d(i, o, 3, { stride: 1, padding: 1 }), new BatchNorm2d(o), new ReLU()];
      const model = new Sequential(...cbr(1, 16), ...cbr(16, 32), ...cbr(32, 32), new MaxPool2d(2), ...cbr(32, 64), ...cbr(64, 64)).train();
      const opt = new Adam(model.namedParameters(), { lr: 1e-3 });
      const x = keep(fakeImages(batch, 16));
      const step = (): void => tidy(() => { opt.zeroGrad(); model.forward(x).square().mean().backward(); opt.step(); });
      for (let i = 0; i < warmup; i++) step();
      const { seconds, faults } = timeRepeats(() => { for (let i = 0; i < steps; i++) step(); });
      return { perRepeat: seconds.map((x) => (batch * steps) / x), faultsPerStep: faults / (repeats * steps), unit: 'img/s' };
    }
    case 'opcall': {
      const x = ones([1]);
      const y = ones([1]);
      const add = native.add!;
      const disp = native.dispose!;
      // One op call through the addon: argument unwrapping, the libtorch call, a new handle (released here).
      const run = (): void => { for (let i = 0; i < steps; i++) disp(add(x.handle, y.handle)); };
      for (let i = 0; i < warmup; i++) run();
      const { seconds, faults } = timeRepeats(run);
      return { perRepeat: seconds.map((s) => (s / steps) * 1e6), faultsPerStep: faults / (repeats * steps), unit: 'us' };
    }
    default:
      throw new Error(`--what must be one of train, sample, stack, opcall; got "${what}"`);
  }
}

class StopLoop extends Error {}

/** The process's peak resident set (VmHWM of /proc/self/status), in MB. */
function peakRssMb(): number | null {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : null;
}

const params = (m: { parameters(): Tensor[] }): number => m.parameters().reduce((n, p) => n + p.numel, 0);
if (what === 'check') {
  // The full default reverse process for a few images from the seeded weights and x_T; bench/compare.ts
  // checks it against the PyTorch twin's (same model, same generator draws, same sampler arithmetic).
  const model = createModel(config.model).eval();
  const predictor = inferencePredictor(model);
  const labels = classes ? Array.from({ length: batch }, (_, i) => i % classes) : undefined;
  const x0 = tidy(() => sample({
    model: (x, t, c) => predictor.forward(x, t, c), diffusion, objective: runObjective(config), shape: [batch, 1, size, size],
    sampler: grid.sampler, steps: grid.steps, x0Processing: grid.x0Processing, ...(grid.variance ? { variance: grid.variance } : {}),
    ...(labels ? { labels, numClasses: classes, guidance } : {}), generator: gen,
  }).toArray());
  console.log(JSON.stringify({ engine: 'ddpm-ts', preset, params: params(model), x0 }));
  process.exit(0);
}

const load0 = os.loadavg()[0]!;
const { perRepeat, faultsPerStep, unit } = bench();
const sorted = [...perRepeat].sort((x, y) => x - y);
const m = sorted.length >> 1;
const median = sorted.length % 2 ? sorted[m]! : (sorted[m - 1]! + sorted[m]!) / 2;
console.log(JSON.stringify({
  engine: 'ddpm-ts', libtorch: libtorchVersion(), preset, what, threads, batch, steps, repeats, warmup, classes, guidance,
  openblas_threads: process.env.OPENBLAS_NUM_THREADS ?? null, blas: blasInfo(),
  per_repeat: perRepeat.map((v) => Number(v.toFixed(3))), median: Number(median.toFixed(3)), unit,
  params: what === 'train' || what === 'sample' ? params(createModel(config.model)) : null,
  peak_rss_mb: Number(peakRssMb()?.toFixed(1)), minor_faults_per_step: Number(faultsPerStep.toFixed(1)),
  loadavg: [Number(load0.toFixed(2)), Number(os.loadavg()[0]!.toFixed(2))],
}));
