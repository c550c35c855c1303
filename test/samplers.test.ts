// Samplers: timestep lists against diffusers' formulas, the denoiser (conversions, x0 processing,
// classifier-free guidance), full seeded sampling loops of every sampler against an independent
// PyTorch implementation (tools/golden/make_sampler_fixtures.py), the properties the papers state
// (DDIM eta = 0 is deterministic, eta = 1 is DDPM's posterior variance) and every refusal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Generator, tensor, tidy, keep, randn, full, noGrad, liveTensors, type Tensor } from '../src/tensor/index.js';
import { Diffusion, makeSchedule, objectiveTarget, OBJECTIVES, type Objective, type ScheduleConfig } from '../src/diffusion/index.js';
import {
  sample, ddpmSample, spacedTimesteps, dpmSolverTimesteps, roundHalfEven, makeDenoiser, dynamicThreshold, guidedOutput, oneHot,
  SAMPLERS, type ConditionalModelFn, type SamplerOptions, type StepResult, type Spacing, type Variance, type X0Processing, type SamplerName,
} from '../src/samplers/index.js';
import { createModel } from '../src/models/index.js';
import { presetDefaults } from '../src/train/config.js';
import { serializeTensors } from '../src/io/tensors.js';
import { decodePng } from '../src/io/png.js';
import { sampleCommand } from '../src/cli/sample.js';
import { fixture, assertClose, maxAbsDiff, ROOT } from './helpers.js';

interface GoldenCase {
  name: string; schedule: string; objective: Objective; sampler: SamplerName; steps: number; seed: number; shape: [number, number, number, number];
  eta?: number; spacing?: Spacing; variance?: Variance; x0Processing?: X0Processing; labels?: number[]; guidance?: number;
  correctorSteps?: number; snr?: number; sum: number; meanAbs: number; x: number[];
}
interface Golden {
  meta: { numClasses: number };
  schedules: Record<string, ScheduleConfig>;
  timesteps: { T: number; K: number; spacing: Spacing | 'dpmpp2m'; list: number[] }[];
  cases: GoldenCase[];
}
const golden = JSON.parse(readFileSync(fixture('samplers_golden.json'), 'utf8')) as Golden;
const K_CLASSES = golden.meta.numClasses;

const diffusions = new Map<string, Diffusion>();
function diffusionOf(name: string): Diffusion {
  let d = diffusions.get(name);
  if (!d) { d = new Diffusion(makeSchedule(golden.schedules[name]!)); diffusions.set(name, d); }
  return d;
}

const classW = keep(tensor(Float32Array.from({ length: K_CLASSES }, (_, k) => (k + 1) / K_CLASSES - 0.5), [K_CLASSES, 1]));

/**
 * The stand-in model of make_sampler_fixtures.py, op for op: the ideal denoiser for data N(m, 0.5^2 I),
 * x0_hat = m + k_t (x - a m), m = 0.1 sin(t / T) + 0.3 (c . w), written as an eps, x0 or v output.
 */
function standIn(d: Diffusion, objective: Objective): ConditionalModelFn {
  const ab = d.terms.alphaBar;
  const sa = Float64Array.from(ab, (v) => Math.sqrt(v));
  const ss = Float64Array.from(ab, (v) => Math.sqrt(1 - v));
  const a32 = d.table(sa, 'standin-a');
  const s32 = d.table(ss, 'standin-s');
  const k32 = d.table(Float64Array.from(sa, (a, i) => (0.25 * a) / (0.25 * a * a + ss[i]! * ss[i]!)), 'standin-k');
  return (x, t, c) => tidy(() => {
    const b = x.shape[0]!;
    const col = (table: Tensor): Tensor => table.indexSelect(0, t).reshape([b, 1, 1, 1]); // (B, 1, 1, 1)
    const [a, s, k] = [col(a32), col(s32), col(k32)];
    let m = t.double().div(d.T).sin().float().reshape([b, 1, 1, 1]).mul(0.1);
    if (c) m = m.add(c.matmul(classW).reshape([b, 1, 1, 1]).mul(0.3));
    const x0 = x.sub(m.mul(a)).mul(k).add(m);
    if (objective === 'x0') return x0;
    const eps = x.sub(x0.mul(a)).div(s);
    return objective === 'eps' ? eps : eps.mul(a).sub(x0.mul(s));
  });
}

function goldenOptions(c: GoldenCase): SamplerOptions {
  const d = diffusionOf(c.schedule);
  return {
    model: standIn(d, c.objective), diffusion: d, objective: c.objective, shape: c.shape, sampler: c.sampler, steps: c.steps,
    eta: c.eta, spacing: c.spacing, variance: c.variance, x0Processing: c.x0Processing, numClasses: c.labels ? K_CLASSES : 0,
    labels: c.labels, guidance: c.guidance, correctorSteps: c.correctorSteps, snr: c.snr, generator: new Generator(c.seed),
  };
}

// ------------------------------------------------------------------ timesteps

test('timestep lists: diffusers\' T = 1000, K = 10 lists for leading, linspace and trailing', () => {
  assert.deepEqual(spacedTimesteps(1000, 10, 'leading'), [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
  assert.deepEqual(spacedTimesteps(1000, 10, 'linspace'), [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
  assert.deepEqual(spacedTimesteps(1000, 10, 'trailing'), [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
  assert.deepEqual(dpmSolverTimesteps(1000, 10), [999, 899, 799, 699, 599, 500, 400, 300, 200, 100]);
  for (const s of ['leading', 'linspace', 'trailing'] as const) assert.deepEqual(spacedTimesteps(5, 5, s), [4, 3, 2, 1, 0]);
  assert.deepEqual(dpmSolverTimesteps(5, 5), [4, 3, 2, 1, 0]);
});

test('timestep lists equal numpy\'s for every spacing at several T and K (incl. half-way rounding and T = 150, K = 7)', () => {
  assert.ok(golden.timesteps.length > 40);
  for (const { T, K, spacing, list } of golden.timesteps) {
    const ours = spacing === 'dpmpp2m' ? dpmSolverTimesteps(T, K) : spacedTimesteps(T, K, spacing);
    assert.deepEqual(ours, list, `${spacing} T=${T} K=${K}`);
  }
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, 74.5, 3.2].map(roundHalfEven), [0, 2, 2, -0, 74, 3]);
});

test('timestep lists refuse K < 1, K > T, fractional K and unknown spacings', () => {
  assert.throws(() => spacedTimesteps(100, 0, 'leading'), /number of steps must be an integer in \[1, T = 100\], got 0/);
  assert.throws(() => spacedTimesteps(100, 101, 'trailing'), /got 101 \(a sampler cannot visit more timesteps than the schedule has\)/);
  assert.throws(() => spacedTimesteps(100, 2.5, 'linspace'), /got 2.5/);
  assert.throws(() => dpmSolverTimesteps(100, 200), /got 200/);
  assert.throws(() => spacedTimesteps(100, 10, 'middle' as Spacing), /spacing must be one of leading, linspace, trailing, got "middle"/);
});

// ------------------------------------------------------------------ the denoiser

test('eps, x0 and v invert exactly (1e-6) through the denoiser at several t, on linear, cosine and zero-SNR schedules', () => noGrad(() => tidy(() => {
  for (const name of ['linear', 'cosine', 'linear-zsnr']) {
    const d = diffusionOf(name);
    for (const t of [0, 1, 37, 80, 99]) {
      const x0 = randn([3, 2, 4, 4], { generator: new Generator(t), dtype: 'float64' });
      const eps = randn([3, 2, 4, 4], { generator: new Generator(t + 1), dtype: 'float64' });
      const { a, s } = d.coefs(t);
      const xt = x0.mul(a).add(eps.mul(s));
      for (const objective of OBJECTIVES) {
        if (objective === 'eps' && a === 0) continue; // x0 from eps divides by sqrt(alphabar) = 0 there
        const target = objectiveTarget(objective, x0, eps, a, s);
        const den = makeDenoiser({ model: () => target, diffusion: d, objective })(xt, t);
        assertClose(`${name} t=${t} ${objective}: eps`, den.eps, eps, 1e-6);
        assertClose(`${name} t=${t} ${objective}: x0`, den.x0, x0, 1e-6);
        assertClose(`${name} t=${t} ${objective}: the target again`, objectiveTarget(objective, den.x0, den.eps, a, s), target, 1e-6);
      }
    }
  }
})));

test('eps objective without processing: eps is the model output itself (the notebook\'s arithmetic)', () => tidy(() => {
  const out = randn([2, 1, 4, 4]);
  const den = makeDenoiser({ model: () => out, diffusion: diffusionOf('linear'), objective: 'eps' })(randn([2, 1, 4, 4]), 50);
  assert.equal(den.eps, out);
  assert.equal(den.out, out);
}));

test('dynamic thresholding (Saharia et al. 2022) on known values; clip; eps re-derived from the processed x0', () => tidy(() => {
  const inRange = Array.from({ length: 200 }, (_, i) => (i % 2 ? 1 : -1) * 0.004 * (i + 1)); // |x| <= 0.8: s = 1, unchanged
  const wide = Array.from({ length: 200 }, (_, i) => (i % 2 ? -1 : 1) * 0.02 * (i + 1)); // |x| = 0.02 .. 4.0
  const x0 = tensor([...inRange, ...wide], [2, 1, 10, 20]);
  const out = dynamicThreshold(x0).toArray();
  assertClose('a sample inside [-1, 1] is kept', out.slice(0, 200), inRange, 1e-7);
  // quantile 0.995 of |x| sorted 0.02 .. 4.00 (200 values): position 199 * 0.995 = 198.005 -> 3.98 + 0.005 * 0.02.
  const s = 3.98 + 0.005 * 0.02;
  assertClose('a wide sample is clamped to [-s, s] and divided by s', out.slice(200), wide.map((v) => Math.max(-s, Math.min(s, v)) / s), 1e-6);
  assert.equal(Math.max(...out.map(Math.abs)), 1);

  const d = diffusionOf('cosine');
  const xt = randn([2, 1, 10, 20], { generator: new Generator(3) });
  const { a, s: sigma } = d.coefs(40);
  for (const processing of ['clip', 'dynamic'] as const) {
    const den = makeDenoiser({ model: () => x0.mul(3), diffusion: d, objective: 'x0', x0Processing: processing })(xt, 40);
    assert.ok(den.x0.abs().max().item() <= 1 + 1e-6, `${processing}: x0 within [-1, 1]`);
    assertClose(`${processing}: eps = (x_t - a x0) / s from the processed x0`, den.eps, xt.sub(den.x0.mul(a)).div(sigma), 1e-5);
  }
}));

test('classifier-free guidance: w = 0 is the conditional output (one forward of B); the batched form equals two separate forwards', () => tidy(() => {
  const d = diffusionOf('linear');
  const inner = standIn(d, 'v');
  const batches: (number | null)[][] = [];
  const model: ConditionalModelFn = (x, t, c) => {
    batches.push([x.shape[0]!, c ? c.shape[0]! : null]);
    return inner(x, t, c).mul(inner(x, t, c)).add(x.sin()); // nonlinear in x and c
  };
  const x = randn([3, 2, 4, 4], { generator: new Generator(5) });
  const c = oneHot([0, 2, 1], K_CLASSES);
  const tt = full([3], 60, { dtype: 'int64' });
  const cond = model(x, tt, c);
  const uncond = model(x, tt, c.mul(0));
  batches.length = 0;
  assert.deepEqual(guidedOutput(model, x, 60, c, 0).toArray(), cond.toArray());
  assert.deepEqual(batches, [[3, 3]]);
  for (const w of [2, -0.5]) {
    batches.length = 0;
    const guided = guidedOutput(model, x, 60, c, w);
    assert.deepEqual(batches, [[6, 6]], 'one forward on the doubled batch');
    assertClose(`w=${w}: (1 + w) cond - w uncond`, guided, cond.mul(1 + w).sub(uncond.mul(w)), 1e-5);
  }
  batches.length = 0;
  guidedOutput(model, x, 60, null, 3);
  assert.deepEqual(batches, [[3, null]], 'no labels: one unconditional forward');
  assert.deepEqual(oneHot([1, -1], 3).toArray(), [0, 1, 0, 0, 0, 0]);
  assert.throws(() => oneHot([3], 3), /label 0 is 3; expected an integer in \[0, 2\]/);
}));

// ------------------------------------------------------------------ full sampling loops

test(`golden: ${golden.cases.length} seeded sampling loops (ddpm x 3 variances, ddim, dpmpp2m, pc; eps/x0/v; linear, cosine, zero SNR) match PyTorch to 1e-4`, () => {
  let worst = 0;
  for (const c of golden.cases) {
    tidy(() => {
      const x = sample(goldenOptions(c));
      const values = x.toArray();
      const diff = maxAbsDiff(values, c.x);
      worst = Math.max(worst, diff);
      assertClose(c.name, values, c.x, 1e-4, 1e-4);
      const sum = values.reduce((p, v) => p + v, 0);
      const meanAbs = values.reduce((p, v) => p + Math.abs(v), 0) / values.length;
      assert.ok(Math.abs(sum - c.sum) <= 1e-3 * Math.max(1, Math.abs(c.sum)), `${c.name}: sum ${sum} vs ${c.sum}`);
      assert.ok(Math.abs(meanAbs - c.meanAbs) <= 1e-4 * Math.max(1, c.meanAbs), `${c.name}: mean |x| ${meanAbs} vs ${c.meanAbs}`);
    });
  }
  assert.ok(worst < 1e-4, `worst difference ${worst}`);
  process.stdout.write(`# golden: worst |difference| ${worst.toExponential(2)}\n`);
});

test('the stand-in is an ideal denoiser for N(m, 0.25): every sampler ends near std 0.5 on 512 images', () => tidy(() => {
  const d = diffusionOf('cosine');
  for (const sampler of SAMPLERS) {
    const x = sample({ model: standIn(d, 'v'), diffusion: d, objective: 'v', shape: [512, 1, 4, 4], sampler, steps: sampler === 'ddpm' || sampler === 'pc' ? 100 : 25, generator: new Generator(1) });
    const std = Math.sqrt(x.var().item());
    // DPM-Solver's and DDIM's ODE at 25 steps and pc's corrector shift the spread a little; all stay near 0.5.
    assert.ok(std > 0.4 && std < 0.62, `${sampler}: std ${std}`);
  }
}));

test('ddpmSample with an eps model over every step is today\'s notebook loop bit for bit', () => noGrad(() => tidy(() => {
  const d = new Diffusion(makeSchedule({ kind: 'linear', T: 150, betaStart: 1e-4, betaEnd: 0.02 }));
  const model = standIn(d, 'eps');
  for (const variance of ['notebook', 'beta', 'posterior'] as const) {
    const ours = ddpmSample(model, d, { shape: [3, 1, 5, 5], variance, generator: new Generator(9) });
    const gen = new Generator(9);
    let x = randn([3, 1, 5, 5], { generator: gen });
    for (let t = d.T - 1; t >= 0; t--) {
      const eps = model(x, full([3], t, { dtype: 'int64' }), null);
      const mean = x.sub(eps.mul(d.terms.predNoiseCoeff[t]!)).mul(d.terms.sqrtRecipAlpha[t]!);
      const sigma = t === 0 ? 0 : Math.sqrt({ notebook: d.terms.beta[t - 1]!, beta: d.terms.beta[t]!, posterior: d.terms.posteriorVariance[t]! }[variance]);
      x = sigma === 0 ? mean : mean.add(randn([3, 1, 5, 5], { generator: gen }).mul(sigma));
    }
    assert.equal(maxAbsDiff(ours.toArray(), x.toArray()), 0, variance);
  }
})));

test('DDIM eta = 0 is deterministic: the same x_T gives the same images under two generator seeds; eta = 0.5 does not', () => tidy(() => {
  const d = diffusionOf('linear');
  const xT = randn([2, 2, 4, 4], { generator: new Generator(11) });
  const run = (eta: number, seed: number): number[] => sample({ model: standIn(d, 'eps'), diffusion: d, objective: 'eps', shape: [2, 2, 4, 4], sampler: 'ddim', steps: 10, eta, xT, generator: new Generator(seed) }).toArray();
  assert.deepEqual(run(0, 1), run(0, 2));
  assert.ok(maxAbsDiff(run(0.5, 1), run(0.5, 2)) > 1e-2);
}));

test('DDIM with eta = 1 is DDPM with the posterior variance on the same steps (Song et al. 2021, section 4.1)', () => tidy(() => {
  for (const name of ['linear', 'cosine', 'linear-zsnr']) {
    const d = diffusionOf(name);
    for (const spacing of ['leading', 'trailing'] as const) {
      const common = { model: standIn(d, 'v'), diffusion: d, objective: 'v' as const, shape: [2, 2, 4, 4] as [number, number, number, number], steps: 10, spacing };
      const ddim = sample({ ...common, sampler: 'ddim', eta: 1, generator: new Generator(4) });
      const ddpm = sample({ ...common, sampler: 'ddpm', variance: 'posterior', generator: new Generator(4) });
      assertClose(`${name} ${spacing}`, ddim, ddpm, 1e-4, 1e-4);
    }
  }
}));

test('splitting into batches changes nothing for deterministic samplers; guidance and labels follow their images', () => tidy(() => {
  const d = diffusionOf('cosine');
  const xT = randn([5, 2, 4, 4], { generator: new Generator(2) });
  for (const sampler of ['ddim', 'dpmpp2m'] as const) {
    const o: SamplerOptions = { model: standIn(d, 'x0'), diffusion: d, objective: 'x0', shape: [5, 2, 4, 4], sampler, steps: 8, xT, numClasses: K_CLASSES, labels: [0, 1, 2, 1, 0], guidance: 1.5 };
    assertClose(sampler, sample({ ...o, batchSize: 2 }), sample(o), 1e-6);
  }
}));

test('onStep hands back t, tPrev, x, x0, eps and sigma of each sampler\'s own steps', () => tidy(() => {
  const d = diffusionOf('linear');
  const seen = new Map<string, Pick<StepResult, 't' | 'tPrev' | 'index' | 'steps' | 'sigma'>[]>();
  for (const sampler of SAMPLERS) {
    const steps: Pick<StepResult, 't' | 'tPrev' | 'index' | 'steps' | 'sigma'>[] = [];
    const last = sample({
      model: standIn(d, 'eps'), diffusion: d, objective: 'eps', shape: [2, 1, 4, 4], sampler, steps: 4, x0Processing: 'clip', generator: new Generator(1),
      ...(sampler === 'ddim' ? { eta: 0.5 } : {}),
      onStep: (st) => {
        steps.push({ t: st.t, tPrev: st.tPrev, index: st.index, steps: st.steps, sigma: st.sigma });
        for (const k of ['x', 'eps', 'x0', 'mean'] as const) assert.deepEqual(st[k].shape, [2, 1, 4, 4]);
        assert.ok(st.x0.abs().max().item() <= 1, 'x0 is clipped');
        if (sampler === 'dpmpp2m' && st.tPrev === -1) assert.deepEqual(st.x.toArray(), st.x0.toArray());
      },
    });
    assert.ok(last.abs().max().item() <= 1 + 1e-6, `${sampler}: the last step lands on the clipped x0`);
    seen.set(sampler, steps);
  }
  const ts = (s: string): number[][] => seen.get(s)!.map((st) => [st.t, st.tPrev]);
  assert.deepEqual(ts('ddpm'), [[99, 66], [66, 33], [33, 0], [0, -1]]);
  assert.deepEqual(ts('pc'), [[99, 66], [66, 33], [33, 0], [0, -1]]);
  assert.deepEqual(ts('ddim'), [[99, 74], [74, 49], [49, 24], [24, -1]]);
  assert.deepEqual(ts('dpmpp2m'), [[99, 74], [74, 50], [50, 25], [25, -1]]);
  assert.deepEqual(seen.get('ddim')!.map((st) => st.index), [0, 1, 2, 3]);
  assert.ok(seen.get('ddim')!.every((st) => st.steps === 4));
  assert.ok(seen.get('dpmpp2m')!.every((st) => st.sigma === 0));
  assert.equal(seen.get('ddpm')!.at(-1)!.sigma, 0);
  assert.ok(seen.get('ddim')!.slice(0, 3).every((st) => st.sigma > 0) && seen.get('ddim')!.at(-1)!.sigma === 0);
}));

test('sampling keeps no tensors behind, for every sampler', () => {
  const d = diffusionOf('cosine');
  for (const sampler of SAMPLERS) {
    const o: SamplerOptions = { model: standIn(d, 'v'), diffusion: d, objective: 'v', shape: [4, 1, 4, 4], sampler, steps: 6, batchSize: 3, numClasses: K_CLASSES, labels: [0, 1, 2, 0], guidance: 1, x0Processing: 'dynamic', generator: new Generator(0) };
    sample(o).dispose(); // warm the caches (schedule tables)
    const before = liveTensors();
    for (let i = 0; i < 3; i++) sample(o).dispose();
    // <=, not ===: tensors other tests left to the garbage collector may be released meanwhile.
    assert.ok(liveTensors() <= before, `${sampler}: ${liveTensors()} live tensors after, ${before} before`);
  }
});

// ------------------------------------------------------------------ refusals

test('sample refuses bad options with a message saying what and why', () => tidy(() => {
  const d = diffusionOf('linear');
  const base: SamplerOptions = { model: standIn(d, 'eps'), diffusion: d, objective: 'eps', shape: [2, 1, 4, 4], sampler: 'ddim' };
  const cases: [Partial<SamplerOptions>, RegExp][] = [
    [{ eta: 1.5 }, /ddim: eta must be a number in \[0, 1\], got 1.5 \(0: deterministic DDIM, 1: DDPM's posterior variance\)/],
    [{ eta: -0.1 }, /eta must be a number in \[0, 1\]/],
    [{ sampler: 'ddpm', eta: 0.5 }, /eta applies to ddim only \(ddpm has no eta/],
    [{ sampler: 'dpmpp2m', eta: 0 }, /eta applies to ddim only/],
    [{ steps: 101 }, /sample \(ddim\): the number of steps must be an integer in \[1, T = 100\], got 101/],
    [{ steps: 0 }, /got 0/],
    [{ sampler: 'heun' as SamplerName }, /sampler must be one of ddpm, ddim, dpmpp2m, pc, got "heun"/],
    [{ objective: 'score' as Objective }, /objective must be one of eps, x0, v, got "score"/],
    [{ sampler: 'dpmpp2m', spacing: 'leading' }, /dpmpp2m has its own timesteps/],
    [{ variance: 'beta' }, /variance applies to ddpm and pc only \(ddim's noise is set by eta\)/],
    [{ sampler: 'ddpm', variance: 'huge' as Variance }, /variance must be one of notebook, beta, posterior, learned, got "huge"/],
    [{ correctorSteps: 2 }, /correctorSteps and snr apply to pc only, not ddim/],
    [{ sampler: 'pc', snr: 0 }, /pc: snr must be a positive number, got 0 \(Song et al. use 0.16\)/],
    [{ sampler: 'pc', correctorSteps: 1.5 }, /pc: correctorSteps must be a non-negative integer, got 1.5/],
    [{ x0Processing: 'soft' as X0Processing }, /x0 processing must be one of none, clip, dynamic, got "soft"/],
    [{ guidance: 2 }, /guidance 2 needs a class-conditional model .* and this one is unconditional/],
    [{ labels: [0, 1] }, /class labels need a class-conditional model, and this one is unconditional/],
    [{ numClasses: 3, labels: [0, 3] }, /class label 1 is 3, outside the model's classes 0..2/],
    [{ numClasses: 3, labels: [0] }, /there are 1 class labels for 2 images; give one per image/],
    [{ numClasses: 3, guidance: 1 }, /guidance 1 needs class labels: without them every image is unconditional/],
    [{ guidance: Number.NaN, numClasses: 3 }, /guidance must be a finite number, got NaN/],
    [{ shape: [0, 1, 4, 4] }, /shape n must be a positive integer, got 0/],
    [{ batchSize: 0 }, /batch size must be a positive integer, got 0/],
    [{ xT: randn([3, 1, 4, 4]) }, /xT has shape \[3, 1, 4, 4\], expected the sample shape \[2, 1, 4, 4\]/],
  ];
  for (const [o, re] of cases) assert.throws(() => tidy(() => sample({ ...base, ...o })), re, JSON.stringify(o));
  const z = diffusionOf('linear-zsnr');
  assert.throws(() => sample({ ...base, diffusion: z, model: standIn(z, 'v') }), /the eps objective cannot sample from t = 99, where alphabar = 0 \(a zero-terminal-SNR schedule\).*use a v or x0 model/);
  assert.throws(() => sample({ ...base, model: () => randn([2, 1, 3, 3]) }), /denoiser: the model's output at t=99 has shape \[2, 1, 3, 3\], expected x's \[2, 1, 4, 4\]/);
}));

// ------------------------------------------------------------------ `ddpm sample`

/** A run folder holding an untrained dli02 model: enough for the command's plumbing, no training needed. */
function fakeRun(dir: string, numClasses: number, objective: Objective): string {
  const config = presetDefaults('dli02');
  config.model.numClasses = numClasses;
  config.objective = objective;
  const ckpt = path.join(dir, 'checkpoints', 'step-1');
  mkdirSync(ckpt, { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const model = createModel(config.model);
  writeFileSync(path.join(ckpt, 'model.safetensors'), serializeTensors(model.stateDict()));
  writeFileSync(path.join(ckpt, 'optimizer.safetensors'), serializeTensors(new Map()));
  writeFileSync(path.join(ckpt, 'state.json'), '{}');
  return dir;
}

function ddpm(...args: string[]): { code: number; err: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'ddpm.js'), ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
  return { code: r.status ?? -1, err: r.stderr };
}

const size = (file: string): [number, number] => { const img = decodePng(readFileSync(file), file); return [img.width, img.height]; };

test('ddpm sample: class grids (one row per class), --class with guidance, trajectories with x0 for the fast samplers', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'ddpm-samplers-'));
  try {
    const cond = fakeRun(path.join(work, 'cond'), 10, 'v');
    const f = (name: string): string => path.join(work, name);
    let r = ddpm('sample', '--run', cond, '-n', '20', '--sampler', 'ddim', '--steps', '5', '--grid', f('g.png'), '--trajectory', f('t.png'), '--trajectory-x0', '--scale', '1');
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(size(f('g.png')), [2 * 18 + 2, 10 * 18 + 2], '10 class rows of 2');
    // One trajectory row pair (x_t, x0_hat) per class; 5 columns: every step of a 5-step sampler.
    assert.deepEqual(size(f('t.png')), [5 * 18 + 2, 20 * 18 + 2]);
    assert.match(r.err, /ddim, 5 steps, x0 clip/);
    assert.match(r.err, /x_t and x0_hat at t = 149, 119, 89, 59, 29/);

    r = ddpm('sample', '--run', cond, '-n', '4', '--class', '3', '--guidance', '-1.5', '--sampler', 'dpmpp2m', '--steps', '4', '--grid', f('c.png'), '--trajectory', f('ct.png'), '--scale', '1');
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(size(f('c.png')), [2 * 18 + 2, 2 * 18 + 2]);
    assert.deepEqual(size(f('ct.png')), [4 * 18 + 2, 4 * 18 + 2]);
    assert.match(r.err, /guidance -1.5/);

    r = ddpm('sample', '--run', cond, '--sampler', 'pc', '--steps', '3', '--corrector-steps', '2', '--snr', '0.2', '--batch-size', '32', '--grid', f('p.png'), '--scale', '1');
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /drawing 70 images \(7 per class row\) instead of 64/);
    assert.deepEqual(size(f('p.png')), [7 * 18 + 2, 10 * 18 + 2]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('ddpm sample refuses flags a sampler or run does not have, saying why', async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'ddpm-samplers-'));
  // In-process (sampleCommand().parseAsync) rather than one node per case: the same checks, much faster.
  const refusal = async (args: string[]): Promise<string> => {
    const cmd = sampleCommand().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
    try {
      await cmd.parseAsync(['--threads', '1', ...args], { from: 'user' });
    } catch (e) {
      return (e as Error).message;
    }
    return assert.fail(`ddpm sample ${args.join(' ')} should be refused`);
  };
  try {
    const cond = fakeRun(path.join(work, 'cond'), 10, 'x0');
    const plain = fakeRun(path.join(work, 'plain'), 0, 'eps');
    const g = ['--grid', path.join(work, 'never.png')];
    const cases: [string[], RegExp][] = [
      [['--run', plain, '--eta', '0.5'], /--eta applies to --sampler ddim only; ddpm has no eta/],
      [['--run', plain, '--sampler', 'ddim', '--eta', '2'], /eta must be a number in \[0, 1\]/],
      [['--run', plain, '--sampler', 'ddim', '--variance', 'beta'], /--variance applies to --sampler ddpm and pc only; ddim's noise is set by --eta/],
      [['--run', plain, '--sampler', 'dpmpp2m', '--spacing', 'leading'], /--spacing does not apply to dpmpp2m/],
      [['--run', plain, '--sampler', 'ddim', '--snr', '0.2'], /--corrector-steps and --snr apply to --sampler pc only, not ddim/],
      [['--run', plain, '--steps', '151'], /--steps 151 exceeds the run's T = 150 timesteps/],
      [['--run', plain, '--guidance', '2'], /--guidance needs a class-conditional run .* was trained without classes/],
      [['--run', plain, '--class', '1'], /--class needs a class-conditional run/],
      [['--run', plain, '--trajectory-x0'], /--trajectory-x0 adds rows to the --trajectory picture; give --trajectory FILE too/],
      [['--run', plain, '--sampler', 'euler'], /--sampler must be one of ddpm, ddim, dpmpp2m, pc, got "euler"/],
      [['--run', plain, '--clip', 'soft'], /--clip must be one of none, clip, dynamic, got "soft"/],
      [['--run', plain, '--guidance', 'strong'], /--guidance must be a finite number, got "strong"/],
      [['--run', cond, '--class', '12'], /--class 12 is outside the run's classes 0..9/],
      [['--run', cond, '--class', '1,x'], /--class must be a class index or a comma-separated list/],
      [['--run', cond, '-n', '64'], /-n 64 does not make whole rows for 10 classes \(one row per class\); give a multiple of 10, or one --class/],
    ];
    for (const [args, re] of cases) assert.match(await refusal([...args, ...g]), re, args.join(' '));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
