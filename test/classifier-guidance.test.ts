// Classifier guidance (Dhariwal & Nichol 2021) against exact cases, with no copy of the code under
// test: for data from a known Gaussian mixture (test/gaussian-mixture.ts), the exact posterior
// p(k | x_t) of the components is a "classifier", and guiding the unconditional mixture's eps with
// it at scale 1 must give exactly the conditional eps of component k, since
// grad log p(k | x_t) = grad log p(x_t | k) - grad log p(x_t) and eps = -sqrt(1 - alphabar) grad log p.
// Every sampler is checked end to end that way. With classifier-free guidance w as well, the exact
// classifier at scale s adds s (eps_k - eps) to (1 + w) eps_k - w eps: classifier-free guidance at
// w + s, the check of "classifier-free guidance first, then the classifier term". The gradient
// itself is checked against central finite differences through a real NoisyClassifier.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Tensor, Generator, tensor, stack, noGrad, tidy, manualSeed, randn, logSoftmax, full } from '../src/tensor/index.js';
import { Diffusion, makeSchedule, type Objective } from '../src/diffusion/index.js';
import { sample, classifierGradient, type SamplerName, type SamplerOptions } from '../src/samplers/index.js';
import { NoisyClassifier, noisyClassifierConfig } from '../src/models/noisy-classifier.js';
import { MIXTURE, COSINE, cholesky } from './gaussian-mixture.js';
import { maxAbsDiff } from './helpers.js';

const D = MIXTURE.dim;
const K = MIXTURE.components.length;
const diffusion = new Diffusion(makeSchedule(COSINE));

/** Inverse and log-determinant of a symmetric positive definite matrix, through its Cholesky factor. */
function inverse(m: number[][]): { inv: number[][]; logDet: number } {
  const n = m.length;
  const l = cholesky(m);
  const logDet = l.reduce((acc, row, i) => acc + 2 * Math.log(row[i]!), 0);
  const inv = m.map(() => new Array<number>(n).fill(0));
  for (let c = 0; c < n; c++) {
    const y = new Array<number>(n).fill(0);
    for (let i = 0; i < n; i++) y[i] = ((i === c ? 1 : 0) - l[i]!.slice(0, i).reduce((acc, v, k) => acc + v * y[k]!, 0)) / l[i]![i]!;
    for (let i = n - 1; i >= 0; i--) inv[i]![c] = (y[i]! - l.slice(i + 1).reduce((acc, row, k) => acc + row[i]! * inv[i + 1 + k]![c]!, 0)) / l[i]![i]!;
  }
  return { inv, logDet };
}

/**
 * The exact posterior of the mixture's components at noise level t as classifier logits, in tensor
 * ops so that autograd can differentiate it: log w_k - 1/2 log det S_k - 1/2 (x - a mu_k)^T S_k^-1 (x - a mu_k),
 * S_k = a^2 Sigma_k + s^2 I. Images are single points: x (B, D, 1, 1).
 */
function exactClassifier(x: Tensor, t: Tensor): Tensor {
  const ab = diffusion.terms.alphaBar[Number(t.toArray()[0])]!;
  const a = Math.sqrt(ab);
  const logits = MIXTURE.components.map((c) => {
    const { inv, logDet } = inverse(c.sigma.map((row, i) => row.map((v, j) => ab * v + (i === j ? 1 - ab : 0))));
    const diff = x.reshape([x.shape[0]!, D]).sub(tensor(Float32Array.from(c.mu, (m) => a * m), [1, D])); // (B, D)
    const quad = diff.matmul(tensor(Float32Array.from(inv.flat()), [D, D])).mul(diff).sum(1); // (B,)
    return quad.mul(-0.5).add(Math.log(c.w) - 0.5 * logDet);
  });
  return stack(logits, 1); // (B, K)
}

const N = 256;
const labels = Array.from({ length: N }, (_, i) => i % K);
const xT = randn([N, D, 1, 1], { generator: new Generator(7) });

function draw(o: Partial<SamplerOptions> & { sampler: SamplerName; objective: Objective }): number[] {
  return noGrad(() => tidy(() => sample({
    model: MIXTURE.model(diffusion.terms.alphaBar, o.objective), diffusion, shape: [N, D, 1, 1], xT, generator: new Generator(3), ...o,
  }).toArray() as number[]));
}

const guidance = (scale: number): SamplerOptions['classifier'] => ({ scale, numClasses: K, labels, gradLogProb: classifierGradient(exactClassifier) });

for (const [sampler, objective, steps] of [['ddpm', 'eps', 50], ['ddim', 'eps', 25], ['ddim', 'v', 25], ['dpmpp2m', 'v', 20], ['pc', 'eps', 20]] as const) {
  test(`exact mixture, ${sampler} (${objective}): the unconditional eps guided by the exact classifier at scale 1 samples the conditional model`, () => {
    const common = { sampler, objective, steps } as const;
    const guided = draw({ ...common, classifier: guidance(1) });
    const conditional = draw({ ...common, numClasses: K, labels, guidance: 0 });
    const unguided = draw(common);
    const err = maxAbsDiff(guided, conditional);
    assert.ok(err < 2e-3, `guided and conditional samples differ by up to ${err.toExponential(2)} (tolerance 2e-3)`);
    // The check can fail: the guidance moves the samples far more than the tolerance.
    assert.ok(maxAbsDiff(unguided, conditional) > 0.3, 'the unguided samples are as close to the conditional ones: the check could not fail');
  });
}

test('exact mixture: classifier-free guidance w then the exact classifier at scale s equals classifier-free guidance at w + s', () => {
  const common = { sampler: 'ddim', objective: 'eps', steps: 25, numClasses: K, labels } as const;
  const both = draw({ ...common, guidance: 1, classifier: guidance(1.5) });
  const cfg = draw({ ...common, guidance: 2.5 });
  const err = maxAbsDiff(both, cfg);
  assert.ok(err < 2e-3, `CFG 1 + classifier 1.5 differs from CFG 2.5 by up to ${err.toExponential(2)} (tolerance 2e-3)`);
  assert.ok(maxAbsDiff(draw({ ...common, guidance: 1 }), cfg) > 0.1, 'the classifier term moved nothing: the check could not fail');
});

test('the classifier gradient through a NoisyClassifier matches central finite differences of log p(y | x_t)', () => {
  manualSeed(5);
  const clf = new NoisyClassifier({ ...noisyClassifierConfig({ imageChannels: 1, imageSize: 8, T: 100, numClasses: 3 }), dim: 8, dimMults: [1, 2], resnetBlocks: 1, groups: 4, attnHeads: 2, attnDimHead: 4 });
  clf.eval();
  for (const p of clf.parameters()) p.requiresGrad_(false);
  const x = randn([2, 1, 8, 8], { generator: new Generator(11) });
  const y = [2, 0];
  const t = 40;
  const grad = classifierGradient((xt, tt) => clf.forward(xt, tt))(x, t, y).toArray() as number[];
  const logp = (xs: Tensor): number => noGrad(() => tidy(() => {
    const lp = logSoftmax(clf.forward(xs, full([2], t, { dtype: 'int64' })), 1).toArray() as number[]; // (2, 3)
    return lp[0 * 3 + y[0]!]! + lp[1 * 3 + y[1]!]!;
  }));
  const base = x.toArray() as number[];
  const h = 1e-2;
  const scale = Math.max(...grad.map(Math.abs));
  assert.ok(scale > 1e-3, `the gradient is ${scale} everywhere: nothing to compare`);
  for (const i of [0, 9, 27, 63, 64, 100, 127]) {
    const at = (d: number): number => tidy(() => logp(tensor(Float32Array.from(base, (v, j) => (j === i ? v + d : v)), [2, 1, 8, 8])));
    const fd = (at(h) - at(-h)) / (2 * h);
    assert.ok(Math.abs(fd - grad[i]!) < 2e-2 * scale, `d log p / d x[${i}]: autograd ${grad[i]}, finite differences ${fd} (tolerance ${2e-2 * scale})`);
  }
  clf.dispose();
  x.dispose();
});
