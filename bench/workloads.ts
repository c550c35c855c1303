// The ddpm-ts side of `npm run bench`: the same workloads as bench/pytorch_dli02.py, on the same
// libtorch kernels, printed as one JSON line in the same shape.
//   node dist/bench/workloads.js --what train|sample|stack|opcall [--threads 2] [--batch N] [--steps N] [--repeats N] [--warmup N]
import { parseArgs } from 'node:util';
import os from 'node:os';
import {
  Generator, ones, rand, randint, tidy, noGrad, setNumThreads, configureRuntime, blasInfo, libtorchVersion, manualSeed, type Tensor,
} from '../src/tensor/index.js';
import { Adam, Sequential, Conv2d, BatchNorm2d, ReLU, MaxPool2d, type Layer } from '../src/nn/index.js';
import { Dli02UNet, inferencePredictor } from '../src/models/index.js';
import { Diffusion, makeSchedule, simpleLoss } from '../src/diffusion/index.js';
import { ddpmSample } from '../src/samplers/index.js';
import { native } from '../src/tensor/native.js';

const { values: a } = parseArgs({
  options: {
    what: { type: 'string', default: 'train' }, threads: { type: 'string', default: '2' }, batch: { type: 'string' },
    steps: { type: 'string' }, repeats: { type: 'string', default: '5' }, warmup: { type: 'string', default: '3' },
    blas: { type: 'string' },
  },
});
const what = a.what!;
const threads = Number(a.threads);
const repeats = Number(a.repeats);
const warmup = Number(a.warmup);
const batch = Number(a.batch ?? (what === 'sample' ? 500 : 128));
const steps = Number(a.steps ?? ({ train: 20, stack: 20, sample: 150, opcall: 100000 } as Record<string, number>)[what]);
// The `ddpm` command's process settings (BLAS threads from --blas or $OPENBLAS_NUM_THREADS, tuned malloc), before libtorch loads.
configureRuntime(a.blas !== undefined ? { blasThreads: Number(a.blas) } : {});
setNumThreads(threads);
manualSeed(0);
const gen = new Generator(0);
const diffusion = new Diffusion(makeSchedule({ kind: 'linear', T: 150, betaStart: 1e-4, betaEnd: 0.02 }));

function fakeImages(n: number): Tensor { return rand([n, 1, 16, 16], { generator: gen }).mul(2).sub(1); } // (B, 1, 16, 16)

function timeRepeats(fn: () => void): number[] {
  const s: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    fn();
    s.push((performance.now() - t0) / 1000);
  }
  return s;
}

function trainLike(forwardLoss: (x: Tensor) => Tensor, params: [string, Tensor][]): number[] {
  const opt = new Adam(params, { lr: 1e-3 });
  const x = fakeImages(batch);
  const step = (): void => tidy(() => {
    opt.zeroGrad();
    forwardLoss(x).backward();
    opt.step();
  });
  for (let i = 0; i < warmup; i++) step();
  return timeRepeats(() => { for (let i = 0; i < steps; i++) step(); }).map((s) => (batch * steps) / s);
}

function bench(): { perRepeat: number[]; unit: string } {
  switch (what) {
    case 'train': {
      const model = new Dli02UNet().train();
      return { perRepeat: trainLike((x) => simpleLoss(diffusion, (xt, t) => model.forward(xt, t), x), model.namedParameters()), unit: 'img/s' };
    }
    case 'stack': {
      const cbr = (i: number, o: number): Layer[] => [new Conv2d(i, o, 3, { stride: 1, padding: 1 }), new BatchNorm2d(o), new ReLU()];
      const model = new Sequential(...cbr(1, 16), ...cbr(16, 32), ...cbr(32, 32), new MaxPool2d(2), ...cbr(32, 64), ...cbr(64, 64)).train();
      return { perRepeat: trainLike((x) => model.forward(x).square().mean(), model.namedParameters()), unit: 'img/s' };
    }
    case 'sample': {
      const model = new Dli02UNet().eval();
      // What `ddpm sample` runs: the eval-mode model with BatchNorm folded into its convolutions.
      const predictor = inferencePredictor(model);
      const eps = (xt: Tensor, t: Tensor): Tensor => predictor.forward(xt, t);
      noGrad(() => { for (let i = 0; i < warmup; i++) tidy(() => eps(fakeImages(batch), randint(1, 2, [batch]))); });
      // One repeat is the full 150-step reverse loop, as the PyTorch script's default.
      const seconds = timeRepeats(() => tidy(() => { ddpmSample(eps, diffusion, { shape: [batch, 1, 16, 16], generator: gen }); }));
      predictor.dispose();
      return { perRepeat: seconds.map((s) => batch / s), unit: 'img/s' };
    }
    case 'opcall': {
      const x = ones([1]);
      const y = ones([1]);
      const add = native.add!;
      const disp = native.dispose!;
      // One op call through the addon: argument unwrapping, the libtorch call, a new handle (released here).
      const run = (): void => { for (let i = 0; i < steps; i++) disp(add(x.handle, y.handle)); };
      for (let i = 0; i < warmup; i++) run();
      return { perRepeat: timeRepeats(run).map((s) => (s / steps) * 1e6), unit: 'us' };
    }
    default:
      throw new Error(`--what must be one of train, sample, stack, opcall; got "${what}"`);
  }
}

const { perRepeat, unit } = bench();
const sorted = [...perRepeat].sort((x, y) => x - y);
const median = sorted[Math.floor(sorted.length / 2)]!;
console.log(JSON.stringify({
  engine: 'ddpm-ts', libtorch: libtorchVersion(), what, threads, batch, steps, repeats, warmup,
  openblas_threads: process.env.OPENBLAS_NUM_THREADS ?? null, blas: blasInfo(),
  per_repeat: perRepeat.map((v) => Number(v.toFixed(3))), median: Number(median.toFixed(3)), unit, loadavg: os.loadavg().slice(0, 2),
}));
