// `ddpm sample`: generate images from a trained run with DDPM ancestral sampling.
import { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Generator, setNumThreads, setBlasThreads, tidy, keep, type Tensor } from '../tensor/index.js';
import { loadRun } from '../train/checkpoint.js';
import { inferencePredictor } from '../models/index.js';
import { ddpmSample, assertFinite, VARIANCES, type Variance } from '../samplers/index.js';
import { writePng } from '../io/png.js';
import { tensorGrid, tensorTrajectoryGrid } from '../viz/tensor-grid.js';
import { toUint8Image, trajectorySteps } from '../viz/grid.js';
import { choice, defaultThreads, nonNegativeInt, positiveInt } from './args.js';

interface SampleFlags {
  run: string; checkpoint?: string; n: number; seed: number; batchSize?: number; threads: number;
  grid?: string; outDir?: string; trajectory?: string; variance: Variance; scale: number;
}

export function sampleCommand(): Command {
  return new Command('sample')
    .description('generate images from a trained run (DDPM ancestral sampling)')
    .requiredOption('--run <dir>', 'run folder written by `ddpm train`')
    .option('--checkpoint <path>', 'a checkpoints/step-N folder or model.safetensors (default: the latest)')
    .option('-n, --n <count>', 'number of images', positiveInt('-n'), 64)
    .option('--seed <n>', 'seed of the sampling noise', nonNegativeInt('--seed'), 0)
    .option('--batch-size <n>', 'images per model call (default: all n at once, up to 500)', positiveInt('--batch-size'))
    .option('--threads <n>', 'libtorch threads', positiveInt('--threads'), defaultThreads())
    .option('--variance <kind>', `reverse variance: ${VARIANCES.join(', ')} (notebook: beta_{t-1} as the course notebook)`, choice('--variance', VARIANCES), 'notebook')
    .option('--grid <file>', 'write all images as one grid PNG')
    .option('--out-dir <dir>', 'write one 8-bit PNG per image (00000.png, 00001.png, ...)')
    .option('--trajectory <file>', 'write rows of x_t from noise to image (up to 8 images, 10 steps)')
    .option('--scale <n>', 'upscale grids by this integer factor (nearest)', positiveInt('--scale'), 4)
    .action((f: SampleFlags) => runSample(f));
}

function runSample(f: SampleFlags): void {
  if (!f.grid && !f.outDir && !f.trajectory) {
    throw new Error('sample: nothing to write; give --grid FILE, --out-dir DIR and/or --trajectory FILE');
  }
  setNumThreads(f.threads);
  // DESIGN.md: sampling (eval, big batches) is fastest with two OpenBLAS threads here.
  setBlasThreads(Math.min(2, f.threads));
  const { config, model, diffusion, checkpoint } = loadRun(f.run, f.checkpoint);
  const { imageChannels: c, imageSize: s } = config.model;
  const rows = Math.min(f.n, 8);
  const keepAt = new Set(trajectorySteps(diffusion.T, 10));
  const snapshots: Tensor[] = [];
  const t0 = performance.now();
  const predictor = inferencePredictor(model);
  const x = ddpmSample((xt, t) => predictor.forward(xt, t), diffusion, {
    shape: [f.n, c, s, s], variance: f.variance, generator: new Generator(f.seed), batchSize: f.batchSize ?? Math.min(f.n, 500),
    ...(f.trajectory ? {
      onStep: (st, offset) => { if (offset === 0 && keepAt.has(st.t)) snapshots.push(keep(tidy(() => st.x.narrow(0, 0, rows).clone()))); },
    } : {}),
  });
  predictor.dispose();
  const seconds = (performance.now() - t0) / 1000;
  assertFinite(x, `samples of ${checkpoint}`);
  process.stderr.write(`sampled ${f.n} images in ${seconds.toFixed(1)} s (${(f.n / seconds).toFixed(1)} img/s) from ${checkpoint}\n`);
  if (f.grid) {
    writePng(f.grid, tensorGrid(x, { nrow: Math.ceil(Math.sqrt(f.n)), scale: f.scale }));
    process.stderr.write(`wrote ${f.grid}\n`);
  }
  if (f.outDir) {
    mkdirSync(f.outDir, { recursive: true });
    const data = x.float().dataSync() as Float32Array;
    const size = c * s * s;
    for (let i = 0; i < f.n; i++) {
      writePng(path.join(f.outDir, `${String(i).padStart(5, '0')}.png`), toUint8Image(data.subarray(i * size, (i + 1) * size), c, s, s));
    }
    process.stderr.write(`wrote ${f.n} PNGs to ${f.outDir}\n`);
  }
  if (f.trajectory) {
    writePng(f.trajectory, tensorTrajectoryGrid(snapshots, { scale: f.scale }));
    process.stderr.write(`wrote ${f.trajectory} (x_t at t = ${[...keepAt].join(', ')})\n`);
  }
}
