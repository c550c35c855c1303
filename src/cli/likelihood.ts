// `ddpm eval --nll` and `ddpm eval --loss-by-t`: how well a run models the test images, as the
// variational bound in bits per dimension (eval/nll.ts) and as its loss resolved by timestep
// (eval/loss-by-t.ts).
import path from 'node:path';
import { Generator } from '../tensor/index.js';
import type { Variance } from '../samplers/index.js';
import { writeFileAtomic } from '../io/atomic.js';
import { writeChart, lossByTSpec } from '../viz/plot.js';
import { variationalBound } from '../eval/nll.js';
import { lossByT, lossTimesteps, defaultLossPoints } from '../eval/loss-by-t.js';
import { checkExt } from './args.js';
import { openRun, evalImages, progress, type RunFlags } from './open-run.js';

export interface NllFlags extends RunFlags { n: number; json?: string; variance?: Variance; clip: boolean; batchSize: number; data?: string }

export interface LossByTFlags extends RunFlags { out?: string; json?: string; n: number; points?: number; batchSize: number; data?: string }

/** Prints the bound and its three parts; writes per-t terms as JSON when asked. */
export function runNll(f: NllFlags): void {
  if (f.json) checkExt('--json', f.json, ['.json']);
  const r = openRun(f);
  try {
    const variance = f.variance ?? r.config.samples.variance ?? 'posterior';
    const data = evalImages(r.config, f.n, f.data);
    const t0 = performance.now();
    let res;
    try {
      res = variationalBound(data.x, {
        model: r.fn, diffusion: r.diffusion, objective: r.objective, variance, clipDenoised: f.clip, learnVariance: r.learnVariance,
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
}

/** Prints the loss at the first, middle and last t; writes the chart and the JSON when asked. */
export async function runLossByT(f: LossByTFlags): Promise<void> {
  if (f.out) checkExt('--out', f.out, ['.svg', '.png']);
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
        model: r.fn, diffusion: r.diffusion, objective: r.objective, weighting: loss.weighting, minSnrGamma: loss.minSnrGamma, learnVariance: r.learnVariance,
        timesteps: ts, batchSize: f.batchSize, seed: f.seed,
        ...(r.numClasses > 0 ? { numClasses: r.numClasses, labels: data.labels } : {}),
        onProgress: progress('loss-by-t'),
      });
    } finally {
      data.x.dispose();
    }
    if (f.out) await writeChart(f.out, lossByTSpec(res, { title: `Loss by timestep: ${path.basename(path.resolve(f.run))}` }));
    if (f.json) writeFileAtomic(f.json, `${JSON.stringify({ run: f.run, checkpoint: r.checkpoint, data: data.what, seconds: (performance.now() - t0) / 1000, ...res }, null, 2)}\n`);
    const at = (i: number): string => `t=${res.t[i]}: ${res.loss[i]!.toFixed(4)}`;
    process.stdout.write(`loss by t (${res.objective}, ${res.weighting}) over ${res.images} images, ${res.t.length} timesteps: ${at(0)}, ${at(Math.floor(res.t.length / 2))}, ${at(res.t.length - 1)}\n`);
    const wrote = [f.out, f.json].filter((x) => x !== undefined);
    process.stderr.write(wrote.length > 0 ? `wrote ${wrote.join(' and ')}\n` : 'give --out FILE (.svg or .png) for the chart, --json FILE for every number\n');
  } finally {
    r.predictor.dispose();
  }
}
