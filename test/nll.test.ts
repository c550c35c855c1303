// The variational bound in bits per dimension (src/eval/nll.ts): its pieces against closed forms,
// the whole bound against an analytic model, and a briefly trained dli02 against an untrained one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tensor, full, tidy, noGrad, manualSeed, Generator, zerosLike, liveTensors, type Tensor } from '../src/tensor/index.js';
import { Diffusion, makeSchedule } from '../src/diffusion/index.js';
import {
  normalKl, discretizedGaussianLogLikelihood, approxStandardNormalCdf, reverseLogVariance, variationalBound,
} from '../src/eval/nll.js';
import { lossByT, lossTimesteps } from '../src/eval/loss-by-t.js';
import { quantize8 } from '../src/eval/reference.js';
import { createModel, inferencePredictor } from '../src/models/index.js';
import { presetDefaults, type RunConfig } from '../src/train/config.js';
import { train } from '../src/train/trainer.js';
import { loadRun } from '../src/train/checkpoint.js';
import { RunFolder } from '../src/io/run.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { prepareImages } from '../src/data/transforms.js';
import { assertClose } from './helpers.js';

const hasData = existsSync('/usr/share/datasets/fashion-mnist') || process.env.FASHION_MNIST_DIR !== undefined;

/** erf by its Maclaurin series (exact to ~1e-15 for |x| <= 3) and the continued fraction beyond: an independent Phi. */
function phi(x: number): number {
  const z = x / Math.SQRT2;
  if (Math.abs(z) > 3) {
    // erfc(z) = exp(-z^2)/sqrt(pi) * 1/(z + 1/2/(z + 1/(z + 3/2/(z + ...)))) (Lentz, 60 terms)
    const a = Math.abs(z);
    let f = a;
    for (let k = 60; k >= 1; k--) f = a + (k / 2) / f;
    const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
    return z > 0 ? 1 - erfc / 2 : erfc / 2;
  }
  let sum = 0;
  let term = z;
  for (let n = 0; n < 200; n++) {
    sum += term / (2 * n + 1);
    term *= (-z * z) / (n + 1);
  }
  return 0.5 * (1 + (2 / Math.sqrt(Math.PI)) * sum);
}

const f64 = (v: number[], shape = [v.length]): Tensor => tensor(Float64Array.from(v), shape);

test('normalKl equals log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2', () => tidy(() => {
  const cases = [[0, 1, 0, 1], [1, 1, 0, 1], [0.3, 0.5, -0.2, 2], [2, 0.01, 1.9, 0.02], [-1, 3, 1, 0.5]] as const;
  const kl = normalKl(f64(cases.map((c) => c[0])), f64(cases.map((c) => 2 * Math.log(c[1]))), f64(cases.map((c) => c[2])), f64(cases.map((c) => 2 * Math.log(c[3]))));
  const expected = cases.map(([m1, s1, m2, s2]) => Math.log(s2 / s1) + (s1 * s1 + (m1 - m2) ** 2) / (2 * s2 * s2) - 0.5);
  assertClose('normalKl', kl, expected, 1e-12, 1e-12);
  assert.equal(kl.toArray()[0], 0);
  // Numbers broadcast in place of tensors (the prior term's N(0, I)).
  assertClose('normalKl against N(0, 1)', normalKl(f64([0.5]), Math.log(0.25), 0, 0), [Math.log(1 / 0.5) + (0.25 + 0.25) / 2 - 0.5], 1e-12);
}));

test('approxStandardNormalCdf is improved-diffusion\'s tanh formula and within 2e-4 of Phi', () => tidy(() => {
  const xs = [-4, -2.5, -1, -0.3, 0, 0.2, 1, 1.7, 3, 5];
  const got = approxStandardNormalCdf(f64(xs)).toArray();
  xs.forEach((x, i) => {
    assert.ok(Math.abs(got[i]! - 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)))) < 1e-15);
    assert.ok(Math.abs(got[i]! - phi(x)) < 2e-4, `cdf(${x}) = ${got[i]} vs Phi ${phi(x)}`);
  });
}));

test('discretised Gaussian log-likelihood: the 1/255 bins, open outer bins, and probabilities that sum to 1', () => tidy(() => {
  const approx = (x: number): number => 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  const mean = 0.1;
  const sigma = 0.05;
  const levels = Array.from({ length: 256 }, (_, k) => k / 127.5 - 1);
  const x = f64(levels);
  const ll = discretizedGaussianLogLikelihood(x, full([256], mean, { dtype: 'float64' }), Math.log(sigma)).toArray();
  levels.forEach((v, k) => {
    const hi = k === 255 ? 1 : approx((v - mean + 1 / 255) / sigma);
    const lo = k === 0 ? 0 : approx((v - mean - 1 / 255) / sigma);
    const want = Math.log(Math.max(hi - lo, 1e-12));
    assert.ok(Math.abs(ll[k]! - want) < 1e-9 * Math.max(1, Math.abs(want)), `level ${k}: ${ll[k]} vs ${want}`);
  });
  // The bins tile the real line, so the probabilities of all 256 levels add up to 1.
  const total = ll.reduce((acc, v) => acc + Math.exp(v), 0);
  assert.ok(Math.abs(total - 1) < 1e-6, `sum of bin probabilities ${total}`);
  // Closed form with the exact Phi, within the tanh approximation's error: the bin at the mean.
  const centre = discretizedGaussianLogLikelihood(f64([0]), f64([0]), f64([Math.log(0.1)])).item();
  const exact = Math.log(phi(1 / 255 / 0.1) - phi(-1 / 255 / 0.1));
  assert.ok(Math.abs(centre - exact) < 2e-3, `log p at the mean ${centre} vs exact ${exact}`);
  // Edges: x = -1 keeps everything below its upper edge, x = 1 everything above its lower edge.
  const edge = discretizedGaussianLogLikelihood(f64([-1, 1]), f64([-1, 1]), Math.log(0.01)).toArray();
  assert.ok(Math.abs(edge[0]! - Math.log(approx(1 / 255 / 0.01))) < 1e-12 && Math.abs(edge[1]! - edge[0]!) < 1e-12);
  assert.throws(() => discretizedGaussianLogLikelihood(f64([0, 0]), f64([0]), 0), /x has shape \[2\] but means has \[1\]/);
}));

test('reverse log-variances: fixed small, fixed large and the notebook\'s, with beta~_1 for the decoder', () => {
  const s = makeSchedule({ kind: 'linear', T: 10, betaStart: 1e-4, betaEnd: 0.02 });
  const small = reverseLogVariance(s, 'posterior');
  const large = reverseLogVariance(s, 'beta');
  const notebook = reverseLogVariance(s, 'notebook');
  for (const v of [small, large, notebook]) assert.equal(v[0], Math.log(s.posteriorVariance[1]!));
  assert.equal(small[5], Math.log(s.posteriorVariance[5]!));
  assert.equal(large[5], Math.log(s.beta[5]!));
  assert.equal(notebook[5], Math.log(s.beta[4]!));
  assert.throws(() => reverseLogVariance(s, 'huge' as 'beta'), /reverse variance must be one of notebook, beta, posterior/);
});

test('quantize8 snaps to the 256 levels k/127.5 - 1', () => tidy(() => {
  const q = quantize8(tensor(Float32Array.from([-1.2, -1, -0.9990, 0.0031, 0.5, 1, 1.5]))).toArray();
  const want = [-1, -1, -1, 128 / 127.5 - 1, 191 / 127.5 - 1, 1, 1];
  assertClose('levels', q, want, 1e-6);
}));

/** N copies of one 8-bit image: the data distribution is a point mass, so the ideal denoiser is known. */
function pointMass(n: number): { x: Tensor; star: Float32Array } {
  const star = Float32Array.from({ length: 16 }, (_, i) => (i * 17 % 256) / 127.5 - 1); // includes -1 and 1
  const x = tensor(Float32Array.from({ length: n * 16 }, (_, i) => star[i % 16]!), [n, 1, 4, 4]);
  return { x, star };
}

test('the bound of the ideal denoiser of a point mass is prior + decoder in closed form (every KL term 0 with fixed small variance)', () => {
  const d = new Diffusion(makeSchedule({ kind: 'linear', T: 20, betaStart: 1e-3, betaEnd: 0.2 }));
  const { x, star } = pointMass(3);
  const xStar = tensor(star, [1, 1, 4, 4]);
  // The exact noise eps = (x_t - sqrt(alphabar) x*) / sqrt(1 - alphabar), so x0_hat = x* at every t; as each objective's output.
  const oracle = (objective: 'eps' | 'x0' | 'v') => (xt: Tensor, t: Tensor): Tensor => {
    const { a, s } = d.coefs(t.toArray()[0]!);
    const eps = xt.sub(xStar.mul(a)).div(s);
    return objective === 'eps' ? eps : objective === 'x0' ? xt.mul(0).add(xStar) : eps.mul(a).sub(xStar.mul(s));
  };
  const ab = d.terms.alphaBar[19]!;
  const prior = Array.from(star, (v) => 0.5 * (-1 - Math.log(1 - ab) + (1 - ab) + ab * v * v)).reduce((a, b) => a + b) / 16 / Math.LN2;
  const sigma = Math.sqrt(d.terms.posteriorVariance[1]!);
  const approx = (z: number): number => 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3)));
  const decoder = -Array.from(star, (v) => {
    const hi = v > 0.999 ? 1 : approx(1 / 255 / sigma);
    const lo = v < -0.999 ? 0 : approx(-1 / 255 / sigma);
    return Math.log(hi - lo);
  }).reduce((a, b) => a + b) / 16 / Math.LN2;
  for (const objective of ['eps', 'x0', 'v'] as const) {
    const r = variationalBound(x, { model: oracle(objective), diffusion: d, objective, variance: 'posterior', generator: new Generator(0), batchSize: 2 });
    assert.ok(Math.abs(r.terms.prior - prior) < 1e-9, `${objective}: prior ${r.terms.prior} vs ${prior}`);
    assert.ok(Math.abs(r.terms.decoder - decoder) < 1e-4, `decoder ${r.terms.decoder} vs ${decoder}`);
    for (let t = 1; t < 20; t++) assert.ok(Math.abs(r.terms.vb[t]!) < 1e-6, `${objective}: KL term at t=${t} is ${r.terms.vb[t]}, expected 0`);
    assert.ok(Math.abs(r.bpd - (prior + decoder)) < 1e-4, `bpd ${r.bpd} vs ${prior + decoder}`);
    assert.equal(r.perImage.length, 3);
    assert.ok(r.x0Mse.every((v) => v < 1e-9), `${objective}: x0_hat is x*`);
  }
  // Fixed large: the same means, so each KL is the variance mismatch alone, 0.5 (-1 + lv2 - lv1 + exp(lv1 - lv2)).
  const large = variationalBound(x, { model: oracle('eps'), diffusion: d, objective: 'eps', variance: 'beta', generator: new Generator(0) });
  const lv = reverseLogVariance(d.terms, 'beta');
  for (const t of [1, 7, 19]) {
    const lv1 = d.terms.posteriorLogVarianceClipped[t]!;
    const want = 0.5 * (-1 + lv[t]! - lv1 + Math.exp(lv1 - lv[t]!)) / Math.LN2;
    assert.ok(Math.abs(large.terms.vb[t]! - want) < 1e-6, `fixed-large KL at t=${t}: ${large.terms.vb[t]} vs ${want}`);
  }
  x.dispose();
  xStar.dispose();
  d.dispose();
});

test('a model that predicts eps = 0 (or x0 = 0, v = 0) gets a finite bound; bad input is refused', () => {
  const d = new Diffusion(makeSchedule({ kind: 'cosine', T: 16, s: 0.008 }));
  const { x } = pointMass(2);
  const before = liveTensors();
  const zero = variationalBound(x, { model: (xt) => zerosLike(xt), diffusion: d, objective: 'eps', generator: new Generator(1) });
  assert.ok(Number.isFinite(zero.bpd) && zero.bpd > 0, `bpd ${zero.bpd}`);
  for (const v of zero.terms.vb) assert.ok(Number.isFinite(v));
  assert.equal(liveTensors(), before, 'the bound frees every tensor it makes');
  // x0 = 0 and v = 0 are other models; finite too.
  for (const objective of ['x0', 'v'] as const) {
    const r = variationalBound(x, { model: (xt) => zerosLike(xt), diffusion: d, objective, generator: new Generator(1) });
    assert.ok(Number.isFinite(r.bpd), `${objective}: ${r.bpd}`);
  }
  assert.throws(() => variationalBound(x.mul(2), { model: (xt) => xt, diffusion: d, objective: 'eps' }), /images must lie in \[-1, 1\]/);
  assert.throws(() => variationalBound(x, { model: (xt) => xt, diffusion: d, objective: 'eps', variance: 'wide' as 'beta' }), /reverse variance must be one of/);
  const zts = new Diffusion(makeSchedule({ kind: 'linear', T: 8, betaStart: 1e-4, betaEnd: 0.02, zeroTerminalSnr: true }));
  assert.throws(() => variationalBound(x, { model: (xt) => xt, diffusion: zts, objective: 'eps' }), /eps objective cannot give x0_hat where alphabar = 0/);
  // A v model on a zero-terminal-SNR schedule is fine: q(x_T | x_0) is N(0, I) and the prior term is 0.
  const r = variationalBound(x, { model: (xt) => zerosLike(xt), diffusion: zts, objective: 'v', generator: new Generator(2) });
  assert.ok(Math.abs(r.terms.prior) < 1e-12 && Number.isFinite(r.bpd));
  x.dispose();
  d.dispose();
  zts.dispose();
});

test('loss by t: evenly spaced timesteps, the run\'s loss, and eps-MSE that equals it for an eps model', () => {
  assert.deepEqual(lossTimesteps(10, 4), [0, 3, 6, 9]);
  assert.equal(lossTimesteps(150).length, 150);
  assert.equal(lossTimesteps(1000).length, 100);
  assert.throws(() => lossTimesteps(10, 11), /must be an integer in \[1, 10\]/);
  const d = new Diffusion(makeSchedule({ kind: 'linear', T: 12, betaStart: 1e-3, betaEnd: 0.2 }));
  const { x } = pointMass(5);
  const live = liveTensors();
  const r = lossByT(x, { model: (xt) => zerosLike(xt), diffusion: d, objective: 'eps', timesteps: [0, 5, 11], batchSize: 2, seed: 3 });
  assert.equal(liveTensors(), live, 'loss by t frees every tensor it makes');
  assert.deepEqual(r.t, [0, 5, 11]);
  // eps_hat = 0: the loss is E[eps^2] ~ 1 at every t, and the same draws at every t make it identical.
  assert.ok(r.loss.every((v) => Math.abs(v - r.loss[0]!) < 1e-6 && v > 0.5 && v < 1.5), `${r.loss}`);
  assertClose('eps-MSE = loss for eps', r.epsMse, r.loss, 1e-6);
  const again = lossByT(x, { model: (xt) => zerosLike(xt), diffusion: d, objective: 'eps', timesteps: [0, 5, 11], batchSize: 5, seed: 3 });
  assert.ok(again.loss.every((v, i) => Number.isFinite(v) && Math.abs(v - r.loss[i]!) < 0.5), 'seeded, finite');
  // v with min-SNR-5: where SNR < 5, min(SNR, 5)/(SNR + 1) * v-MSE = eps-MSE.
  const v = lossByT(x, { model: (xt) => zerosLike(xt), diffusion: d, objective: 'v', weighting: 'min-snr', minSnrGamma: 5, timesteps: [11], seed: 0 });
  assert.ok(d.terms.snr[11]! < 5);
  assertClose('min-snr v loss = eps-MSE below gamma', v.loss, v.epsMse, 1e-5, 1e-5);
  assert.throws(() => lossByT(x, { model: (xt) => xt, diffusion: d, objective: 'eps', timesteps: [12] }), /timestep 12 is outside 0..11/);
  x.dispose();
  d.dispose();
});

test('the bound of dli02 after 150 training steps is finite and below the untrained model\'s', { skip: !hasData && 'Fashion-MNIST not installed' }, async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'ddpm-nll-'));
  try {
    const ds = loadFashionMnist('train');
    const px = ds.height * ds.width;
    const images = prepareImages(ds.images.subarray(0, 2048 * px), { n: 2048, c: 1, h: 28, w: 28 }, 16);
    const base = presetDefaults('dli02');
    const config: RunConfig = { ...base, train: { ...base.train, epochs: 10, limit: 2048 } };
    const run = new RunFolder(path.join(work, 'run'));
    await train(config, run, { threads: 2, sampleGrids: false, maxSteps: 150, dataset: { images, labels: null, classNames: null, dataDir: 'memory' } });
    images.dispose();
    const test8 = loadFashionMnist('test');
    const x = tidy(() => quantize8(prepareImages(test8.images.subarray(0, 48 * px), { n: 48, c: 1, h: 28, w: 28 }, 16)));
    const bound = (model: ReturnType<typeof createModel>): number => noGrad(() => {
      const p = inferencePredictor(model.eval());
      try {
        return variationalBound(x, { model: (a, t, c) => p.forward(a, t, c), diffusion: d, objective: 'eps', variance: 'posterior', generator: new Generator(0) }).bpd;
      } finally {
        p.dispose();
      }
    });
    const trained = loadRun(run.root);
    const d = trained.diffusion;
    manualSeed(0);
    const untrained = createModel(config.model);
    const bUntrained = bound(untrained);
    const bTrained = bound(trained.model);
    assert.ok(Number.isFinite(bTrained) && Number.isFinite(bUntrained), `bounds ${bTrained}, ${bUntrained}`);
    assert.ok(bTrained < bUntrained - 0.5, `trained ${bTrained.toFixed(3)} bits/dim should be well below untrained ${bUntrained.toFixed(3)}`);
    assert.ok(bTrained > 0.5 && bTrained < 12, `trained bound ${bTrained} is in a plausible range for 16x16 8-bit images`);
    process.stderr.write(`# dli02 bound on 48 test images: untrained ${bUntrained.toFixed(3)}, 150 steps ${bTrained.toFixed(3)} bits/dim\n`);
    x.dispose();
    untrained.dispose();
    trained.model.dispose();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
