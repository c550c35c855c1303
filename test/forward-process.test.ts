// The forward process q: closed-form moments, the Markov chain against the closed form, and the
// posterior mean against the noise form of the reverse mean (Ho et al. 2020, eqs. 2, 4, 7, 11).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, full, tensor, tidy, randn, noGrad } from '../src/tensor/index.js';
import { Diffusion, makeSchedule } from '../src/diffusion/index.js';
import { assertClose } from './helpers.js';

const d = new Diffusion(makeSchedule({ kind: 'linear', T: 150, betaStart: 1e-4, betaEnd: 0.02 }));

function moments(v: number[]): { mean: number; variance: number } {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1);
  return { mean, variance };
}

test('qSample: mean sqrt(abar_t) x0 and variance 1 - abar_t over 65,536 draws (within 5 standard errors)', () => tidy(() => {
  const n = 65536;
  const gen = new Generator(7);
  for (const t of [0, 74, 149]) {
    const x0 = full([n, 1, 1, 1], 0.6);
    const { xt } = d.qSample(x0, full([n], t, { dtype: 'int64' }), undefined, gen);
    const { mean, variance } = moments(xt.toArray());
    const m = d.terms.sqrtAlphaBar[t]! * 0.6;
    const v = 1 - d.terms.alphaBar[t]!;
    const seMean = Math.sqrt(v / n);
    const seVar = v * Math.sqrt(2 / (n - 1));
    assert.ok(Math.abs(mean - m) < 5 * seMean + 1e-7, `t=${t}: mean ${mean} vs ${m} (se ${seMean})`);
    assert.ok(Math.abs(variance - v) < 5 * seVar + 1e-9, `t=${t}: variance ${variance} vs ${v} (se ${seVar})`);
  }
}));

test('qSample returns the noise it used: x_t = sqrt(abar) x0 + sqrt(1 - abar) eps exactly', () => tidy(() => {
  const x0 = randn([4, 1, 8, 8], { generator: new Generator(1) });
  const t = tensor([0, 10, 74, 149], [4], { dtype: 'int64' });
  const { xt, noise } = d.qSample(x0, t, undefined, new Generator(2));
  const expected = [0, 10, 74, 149].map((ti, i) => x0.select(0, i).mul(d.terms.sqrtAlphaBar[ti]!).add(noise.select(0, i).mul(d.terms.sqrtOneMinusAlphaBar[ti]!)));
  expected.forEach((e, i) => assertClose(`x_t of example ${i}`, xt.select(0, i), e, 1e-6));
}));

test('the Markov chain q(x_t | x_{t-1}) and the closed form q(x_t | x_0) agree in distribution', () => tidy(() => {
  const n = 32768;
  const gen = new Generator(3);
  const x0 = full([n, 1, 1, 1], -0.4);
  for (const tEnd of [20, 149]) {
    let x = x0;
    for (let t = 0; t <= tEnd; t++) x = d.qStep(x, t, gen);
    const chain = moments(x.toArray());
    const closed = moments(d.qSample(x0, full([n], tEnd, { dtype: 'int64' }), undefined, gen).xt.toArray());
    const v = 1 - d.terms.alphaBar[tEnd]!;
    const seMean = Math.sqrt((2 * v) / n);
    assert.ok(Math.abs(chain.mean - closed.mean) < 5 * seMean, `t=${tEnd}: chain mean ${chain.mean}, closed form ${closed.mean}`);
    assert.ok(Math.abs(chain.variance - closed.variance) < 5 * v * Math.sqrt(4 / n), `t=${tEnd}: chain variance ${chain.variance}, closed form ${closed.variance}`);
    // And both against the exact values.
    assert.ok(Math.abs(chain.mean - -0.4 * d.terms.sqrtAlphaBar[tEnd]!) < 5 * Math.sqrt(v / n));
  }
}));

test('posterior mean from (x0, x_t) equals the noise form of the reverse mean when the true noise is used', () => noGrad(() => tidy(() => {
  const x0 = randn([6, 1, 16, 16], { generator: new Generator(4) }).clamp(-1, 1);
  const t = tensor([1, 2, 30, 74, 120, 149], [6], { dtype: 'int64' });
  const { xt, noise } = d.qSample(x0, t, undefined, new Generator(5));
  const posterior = d.qPosterior(x0, xt, t).mean;
  const noiseForm = d.meanFromNoise(xt, t, noise);
  assertClose('posterior mean vs noise-form mean', noiseForm, posterior, 2e-5);
  // x0 recovered from the true noise.
  assertClose('predictStartFromNoise', d.predictStartFromNoise(xt, t, noise), x0, 5e-5);
})));

test('timesteps of the wrong dtype or length are refused', () => tidy(() => {
  assert.throws(() => d.qSample(randn([2, 1, 4, 4]), tensor([1, 2], [2])), /timesteps must be an int64 tensor of shape \[2\], got Tensor\(shape=\[2\], dtype=float32/);
  assert.throws(() => d.qSample(randn([2, 1, 4, 4]), tensor([1], [1], { dtype: 'int64' })), /shape \[2\]/);
}));
