// Sampler speed on one trained run: DDPM over all T steps against DDIM and DPM-Solver++(2M) at a
// few steps, same seed and images, median of repeats; one grid PNG per sampler/steps to compare by eye.
//   node dist/bench/samplers.js --run DIR [--out DIR] [--n 64] [--repeats 3] [--threads 2] [--seed 0] [--no-ema]
import { parseArgs } from 'node:util';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Generator, configureRuntime, setNumThreads, blasInfo, libtorchVersion, type Tensor } from '../src/tensor/index.js';
import { loadRun } from '../src/train/checkpoint.js';
import { runObjective, runNumClasses } from '../src/train/config.js';
import { inferencePredictor } from '../src/models/index.js';
import { sample, assertFinite, defaultX0Processing, type SamplerName, type ConditionalModelFn } from '../src/samplers/index.js';
import { writePng } from '../src/io/png.js';
import { tensorGrid } from '../src/viz/tensor-grid.js';

const { values: a } = parseArgs({
  options: {
    run: { type: 'string' }, out: { type: 'string' }, n: { type: 'string', default: '64' }, repeats: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' }, seed: { type: 'string', default: '0' }, 'no-ema': { type: 'boolean', default: false },
  },
});
if (!a.run) throw new Error('bench/samplers: give --run DIR (a run folder written by `ddpm train`)');
const n = Number(a.n);
const repeats = Number(a.repeats);
const threads = Number(a.threads);
configureRuntime(); // the `ddpm` command's process settings, before libtorch loads
setNumThreads(threads);
const out = a.out ?? path.join(a.run, 'bench-samplers');
mkdirSync(out, { recursive: true });

const { config, model, diffusion, checkpoint } = loadRun(a.run, undefined, { ema: !a['no-ema'] });
const objective = runObjective(config);
const numClasses = runNumClasses(config);
const T = diffusion.T;
const { imageChannels: c, imageSize: s } = config.model;
const predictor = inferencePredictor(model);
let calls = 0;
const net: ConditionalModelFn = (x, t, cond) => { calls++; return predictor.forward(x, t, cond); };
// A class-conditional run draws one row per class, conditional only.
const perRow = numClasses > 0 ? Math.ceil(n / numClasses) : Math.ceil(Math.sqrt(n));
const count = numClasses > 0 ? perRow * numClasses : n;
const labels = numClasses > 0 ? { numClasses, labels: Array.from({ length: count }, (_, i) => Math.floor(i / perRow)) } : {};

// DDIM with eta = 1 (DDPM's posterior variance on 50 steps) as well: the stochastic fast sampler.
const configs: [SamplerName, number, number?][] = [['ddpm', T], ['ddim', 50], ['ddim', 50, 1], ['ddim', 20], ['dpmpp2m', 20], ['dpmpp2m', 10]];
const rows: string[] = [];
for (const [sampler, want, eta] of configs) {
  const steps = Math.min(want, T);
  const name = eta === undefined ? sampler : `${sampler} (eta ${eta})`;
  const seconds: number[] = [];
  let images: Tensor | null = null;
  for (let r = 0; r < repeats; r++) {
    images?.dispose();
    calls = 0;
    const t0 = performance.now();
    images = sample({ model: net, diffusion, objective, shape: [count, c, s, s], sampler, steps, ...(eta !== undefined ? { eta } : {}), x0Processing: defaultX0Processing(objective), generator: new Generator(Number(a.seed)), ...labels });
    seconds.push((performance.now() - t0) / 1000);
  }
  assertFinite(images!, `${sampler} ${steps} samples`);
  const file = path.join(out, `${sampler}-${steps}${eta !== undefined ? `-eta${eta}` : ''}.png`);
  writePng(file, tensorGrid(images!, { nrow: perRow, scale: 4 }));
  images!.dispose();
  const median = [...seconds].sort((x, y) => x - y)[Math.floor(seconds.length / 2)]!;
  rows.push(`| ${name} | ${steps} | ${median.toFixed(2)} | ${(count / median).toFixed(1)} | ${calls} |`);
  process.stderr.write(`${name} ${steps}: ${seconds.map((v) => v.toFixed(2)).join(', ')} s; wrote ${file}\n`);
}
predictor.dispose();

console.log(`${count} images of ${c}x${s}x${s} from ${checkpoint} (${config.model.preset}, ${objective} objective, T = ${T}); seed ${a.seed}; median of ${repeats};`);
console.log(`libtorch ${libtorchVersion()}, ${threads} threads, BLAS: ${blasInfo().split('\n')[0]}\n`);
console.log('| sampler | steps | seconds | images/s | model calls |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(r);
