// Learned reverse variances and the hybrid loss (Nichol & Dhariwal 2021): the interpolation of log
// beta and log beta~ against its closed form, the L_vlb term and its gradient against a PyTorch
// implementation written from improved-diffusion (tools/golden/make_hybrid_loss_fixtures.py), the
// stop-gradient, each preset's output channels, the learned DDPM step against one computed by hand,
// which samplers read the variance and which ignore it, and the refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tensor, tidy, keep, noGrad, manualSeed, randn, full, cat, zeros, Generator, type Tensor } from '../src/tensor/index.js';
import {
  Diffusion, makeSchedule, learnedLogVariance, vbTermsBpd, hybridVbTerm, diffusionLoss, HYBRID_LAMBDA, type ScheduleConfig, type Objective,
} from '../src/diffusion/index.js';
import { createModel, outputChannels, PRESETS } from '../src/models/index.js';
import {
  sample, ancestralStep, planSteps, resolveSampling, denoisedFrom, samplerDefaults, reverseSigma, learnedVarianceNote, SAMPLERS, type SamplerName,
} from '../src/samplers/index.js';
import { HostArray, hostOps } from '../src/samplers/host-array.js';
import { variationalBound } from '../src/eval/nll.js';
import { checkRunConfig, presetDefaults, runSampling } from '../src/train/config.js';
import { reverseProcess, runSync } from '../src/samplers/index.js';
import { readOnnxMetadata, onnxModelInfo, sampleOnnx } from '../src/samplers/onnx-model.js';
import { modelToOnnx } from '../src/models/onnx-export.js';
import { encodeOnnx, decodeOnnx } from '../src/io/onnx.js';
import { onnxMetadata } from '../src/train/export.js';
import { inferencePredictor } from '../src/models/index.js';
import ort from 'onnxruntime-node';
import { fixture, assertClose, maxAbsDiff } from './helpers.js';

const f32 = (v: number[], shape: number[]): Tensor => tensor(Float32Array.from(v), shape);

test('learnedLogVariance: v = 1 is log beta, v = -1 log beta~, v = 0 their mean, linear in v; tensors and host arrays agree', () => tidy(() => {
  const lb = Math.log(0.02);
  const lbt = Math.log(0.004);
  const vs = [-1, -0.5, 0, 0.5, 1, 1.5];
  // The closed form: ((1 + v) / 2) log beta + ((1 - v) / 2) log beta~.
  const expected = vs.map((v) => ((1 + v) / 2) * lb + ((1 - v) / 2) * lbt);
  assertClose('tensor', learnedLogVariance(f32(vs, [6]), lb, lbt), expected, 1e-6);
  assertClose('host array', learnedLogVariance(new HostArray(Float32Array.from(vs), [6]), lb, lbt).data, expected, 1e-6);
  // Per example (the loss's one t per row): tensors that broadcast.
  const perRow = learnedLogVariance(f32([1, -1], [2, 1]), f32([lb, Math.log(0.5)], [2, 1]), f32([lbt, Math.log(0.1)], [2, 1]));
  assertClose('per row', perRow, [lb, Math.log(0.1)], 1e-6);
}));

interface GoldenCase {
  name: string; schedule: ScheduleConfig; T: number; objective: Objective; shape: number[]; t: number[];
  x0: number[]; xt: number[]; meanOut: number[]; v: number[]; vb: number[]; hybridTerm: number; gradV: number[];
}
const golden = JSON.parse(readFileSync(fixture('hybrid_loss_golden.json'), 'utf8')) as { cases: GoldenCase[] };

for (const g of golden.cases) {
  test(`L_vlb per example and lambda T mean(vb) equal improved-diffusion's in PyTorch, with its gradient on v only (${g.name})`, () => {
    const d = new Diffusion(makeSchedule(g.schedule));
    try {
      tidy(() => {
        const x0 = f32(g.x0, g.shape);
        const xt = f32(g.xt, g.shape);
        const t = tensor(BigInt64Array.from(g.t, BigInt), [g.t.length]);
        const vb = vbTermsBpd(d, g.objective, f32(g.meanOut, g.shape), f32(g.v, g.shape), x0, xt, t);
        // float32 here against float64 there: the decoder and the small-variance KLs lose a few digits.
        assertClose('vb (bits/dim)', vb, g.vb, 2e-5, 2e-4);
        const out = cat([f32(g.meanOut, g.shape), f32(g.v, g.shape)], 1).requiresGrad_(true); // (B, 2C, H, W)
        const term = hybridVbTerm(d, g.objective, out, x0, xt, t);
        assertClose('lambda T mean(vb)', [term.item()], [g.hybridTerm], 1e-6, 2e-4);
        assert.equal(HYBRID_LAMBDA * g.T, g.T / 1000, 'RESCALED_MSE\'s T / 1000 is lambda T');
        term.backward();
        const grad = out.grad!;
        const c = g.shape[1]!;
        assert.equal(grad.narrow(1, 0, c).abs().max().item(), 0, 'the stop-gradient: L_vlb does not train the mean');
        assertClose('d term / d v', grad.narrow(1, c, c), g.gradV, 1e-7, 1e-3);
      });
    } finally {
      d.dispose();
    }
  });
}

test('diffusionLoss with a learned variance is the simple MSE of the mean channels plus lambda L_vlb, and refuses a C-channel output', () => {
  const d = new Diffusion(makeSchedule({ kind: 'linear', T: 150, betaStart: 1e-4, betaEnd: 0.02 }));
  try {
    tidy(() => {
      manualSeed(3);
      const x0 = randn([4, 1, 4, 4]).clamp(-1, 1);
      const outFixed = randn([4, 2, 4, 4]);
      let seen: { xt: Tensor; t: Tensor } | null = null;
      const model = (xt: Tensor, t: Tensor): Tensor => { seen = { xt: keep(xt.clone()), t: keep(t.clone()) }; return outFixed; };
      const loss = diffusionLoss(d, model, x0, { learnVariance: true, generator: new Generator(5) }).item();
      // The same draws without the variance term: the same t and noise from the same seed.
      const simple = diffusionLoss(d, () => outFixed.narrow(1, 0, 1), x0, { generator: new Generator(5) }).item();
      const s = seen as unknown as { xt: Tensor; t: Tensor };
      const vb = hybridVbTerm(d, 'eps', outFixed, x0, s.xt, s.t).item();
      assertClose('loss', [loss], [simple + vb], 1e-6, 1e-6);
      s.xt.dispose();
      s.t.dispose();
      assert.throws(() => diffusionLoss(d, () => zeros([4, 1, 4, 4]), x0, { learnVariance: true }), /loss: the model's output has shape \[4, 1, 4, 4\], expected 2 channels \(1 for the mean and 1 for the learned variance\)/);
      assert.throws(() => diffusionLoss(d, () => zeros([4, 2, 4, 4]), x0), /expected 1 channels \(one per image channel\)/);
    });
  } finally {
    d.dispose();
  }
});

test('every preset doubles its output channels with a learned variance', () => {
  for (const preset of PRESETS) {
    const size = preset === 'ddpm' ? 8 : 16;
    for (const learnVariance of [false, true]) {
      const m = createModel({ preset, imageChannels: 1, imageSize: size, T: 50, learnVariance });
      try {
        m.eval();
        const shape = noGrad(() => tidy(() => m.forward(randn([2, 1, size, size]), tensor(BigInt64Array.from([3n, 40n]), [2])).shape));
        assert.deepEqual(shape, [2, outputChannels({ imageChannels: 1, learnVariance }), size, size], `${preset} learnVariance ${learnVariance}`);
        assert.equal(shape[1], learnVariance ? 2 : 1);
      } finally {
        m.dispose();
      }
    }
  }
});

test('the learned DDPM step equals one computed by hand: posterior mean plus exp(log Sigma / 2) z, on the full and on a respaced schedule', () => tidy(() => {
  const cfg: ScheduleConfig = { kind: 'linear', T: 150, betaStart: 1e-4, betaEnd: 0.02 };
  const terms = makeSchedule(cfg);
  // By hand from the betas alone (Ho et al. 2020, eqs. 6-7).
  const beta = Array.from({ length: 150 }, (_, i) => 1e-4 + ((0.02 - 1e-4) * i) / 149);
  const ab: number[] = [];
  beta.reduce((p, b, i) => (ab[i] = p * (1 - b)), 1);
  const x = [0.3, -0.7, 1.1, 0.05];
  const x0 = [0.2, -0.9, 0.8, 0.0];
  const v = [-1, 0, 0.6, 1.3];
  const z = [0.5, -1.2, 0.1, 2.0];
  for (const ts of [[70, 69], [70, 35]]) {
    const [t, tp] = ts as [number, number];
    const abT = ab[t]!;
    const abP = ab[tp]!;
    const betaP = 1 - abT / abP; // the respaced beta (= beta_t when tp = t - 1)
    const tilde = (betaP * (1 - abP)) / (1 - abT);
    const expected = x.map((xi, i) => {
      const mean = ((betaP * Math.sqrt(abP)) / (1 - abT)) * x0[i]! + (((1 - abP) * Math.sqrt(abT / abP)) / (1 - abT)) * xi;
      const frac = (v[i]! + 1) / 2;
      return mean + Math.exp(0.5 * (frac * Math.log(betaP) + (1 - frac) * Math.log(tilde))) * z[i]!;
    });
    const [p] = planSteps({ terms }, [t, tp]);
    const step = ancestralStep(p!, f32(x, [1, 1, 2, 2]), f32(x0, [1, 1, 2, 2]), 'learned', () => f32(z, [1, 1, 2, 2]), f32(v, [1, 1, 2, 2]));
    assertClose(`x_${tp} from x_${t}`, step.x, expected, 1e-6, 1e-5);
    const sigmas = v.map((vi) => Math.exp(0.5 * (((vi + 1) / 2) * Math.log(betaP) + ((1 - vi) / 2) * Math.log(tilde))));
    assertClose('the reported sigma is the mean learned sigma', [step.sigma], [sigmas.reduce((a, b) => a + b) / 4], 1e-7, 1e-5);
    // The host-array formula is the same code: the same numbers.
    const host = ancestralStep(p!, new HostArray(Float32Array.from(x), [1, 1, 2, 2]), new HostArray(Float32Array.from(x0), [1, 1, 2, 2]), 'learned',
      () => new HostArray(Float32Array.from(z), [1, 1, 2, 2]), new HostArray(Float32Array.from(v), [1, 1, 2, 2]));
    assertClose('host arrays', host.x.data, expected, 1e-6, 1e-5);
  }
  // The last step adds no noise, whatever v says.
  const [last] = planSteps({ terms }, [0]);
  const end = ancestralStep(last!, f32(x, [1, 1, 2, 2]), f32(x0, [1, 1, 2, 2]), 'learned', () => { throw new Error('no noise at the last step'); }, f32(v, [1, 1, 2, 2]));
  assertClose('last step is x0_hat', end.x, x0, 1e-7);
  assert.equal(end.sigma, 0);
  assert.throws(() => ancestralStep(last!, f32(x, [1, 1, 2, 2]), f32(x0, [1, 1, 2, 2]), 'learned', () => f32(z, [1, 1, 2, 2])), /ancestralStep: the learned variance needs the model's v output/);
  assert.throws(() => reverseSigma({ terms }, 5, 'learned'), /reverseSigma: the learned variance comes from the model's output/);
}));

/** A stand-in with a learned variance: eps = 0.3 x and v = tanh(x), as a (B, 2C, H, W) output. */
const learnedModel = (x: Tensor): Tensor => cat([x.mul(0.3), x.tanh()], 1);

test('ddpm and pc use the learned variance; ddim and dpmpp2m read only the mean (the same images as the mean-only model)', () => {
  const d = new Diffusion(makeSchedule({ kind: 'linear', T: 40, betaStart: 1e-4, betaEnd: 0.02 }));
  try {
    const run = (sampler: SamplerName, learned: boolean, extra: object = {}): Float32Array => noGrad(() => tidy(() => Float32Array.from(sample({
      model: learned ? learnedModel : (x: Tensor) => x.mul(0.3), diffusion: d, objective: 'eps', shape: [3, 1, 4, 4], sampler, steps: 10,
      generator: new Generator(11), ...(learned ? { learnVariance: true } : {}), ...extra,
    }).dataSync() as Float32Array)));
    for (const sampler of ['ddim', 'dpmpp2m'] as const) assert.deepEqual(run(sampler, true), run(sampler, false), `${sampler} ignores the variance channels`);
    assert.deepEqual(run('ddim', true, { eta: 1 }), run('ddim', false, { eta: 1 }), 'ddim with eta > 0 keeps its own sigma (eq. 16)');
    for (const sampler of ['ddpm', 'pc'] as const) {
      const learned = run(sampler, true);
      assert.notDeepEqual(learned, run(sampler, false, { variance: 'posterior' }), `${sampler} adds the learned noise`);
      // A fixed variance may still be asked of a learned-variance model: its v is then ignored.
      assert.deepEqual(run(sampler, true, { variance: 'posterior' }), run(sampler, false, { variance: 'posterior' }));
      assert.ok(learned.every(Number.isFinite));
    }
    // The default of ddpm and pc on a learned-variance model is the learned variance.
    for (const sampler of ['ddpm', 'pc'] as const) {
      assert.equal(resolveSampling({ diffusion: d, objective: 'eps', shape: [1, 1, 4, 4], sampler, learnVariance: true }).variance, 'learned');
      assert.deepEqual(run(sampler, true), run(sampler, true, { variance: 'learned' }));
    }
  } finally {
    d.dispose();
  }
});

test('learned-variance refusals: a model without one, an output of the wrong width, a config that asks for it without the model', () => {
  const d = new Diffusion(makeSchedule({ kind: 'linear', T: 40, betaStart: 1e-4, betaEnd: 0.02 }));
  try {
    for (const sampler of ['ddpm', 'pc'] as const) {
      assert.throws(() => resolveSampling({ diffusion: d, objective: 'eps', shape: [1, 1, 4, 4], sampler, variance: 'learned' }),
        /sample: variance learned needs a model trained with --learn-variance \(its output has 2C channels, the second C the variance\), and this one predicts no variance; use notebook, beta or posterior/);
    }
    for (const sampler of ['ddim', 'dpmpp2m'] as const) {
      assert.throws(() => resolveSampling({ diffusion: d, objective: 'eps', shape: [1, 1, 4, 4], sampler, variance: 'learned', learnVariance: true }), /variance applies to ddpm and pc only/);
    }
    tidy(() => {
      const x = zeros([2, 1, 4, 4]);
      assert.throws(() => denoisedFrom(d.terms, 'eps', 'none', zeros([2, 1, 4, 4]), x, 5, true), /the model's output at t=5 has shape \[2, 1, 4, 4\], expected \[2, 2, 4, 4\] \(1 channels of the mean and 1 of the learned variance\)/);
      assert.throws(() => denoisedFrom(d.terms, 'eps', 'none', zeros([2, 2, 4, 4]), x, 5), /expected x's \[2, 1, 4, 4\]; a 2C output is a learned-variance model/);
      assert.throws(() => sample({ model: (xt: Tensor) => xt, diffusion: d, objective: 'eps', shape: [1, 1, 4, 4], sampler: 'ddpm', learnVariance: true, steps: 2 }), /expected \[1, 2, 4, 4\]/);
      assert.throws(() => variationalBound(full([1, 1, 4, 4], 0), { model: (xt: Tensor) => xt, diffusion: d, objective: 'eps', variance: 'learned' }),
        /nll: variance learned needs a model trained with --learn-variance, and this one predicts no variance/);
    });
    const c = presetDefaults('dli02');
    c.samples.variance = 'learned';
    assert.throws(() => checkRunConfig(c), /config: samples.variance is learned, but model.learnVariance is not set/);
    c.model.learnVariance = true;
    checkRunConfig(c);
    // A learned-variance run's samplers default to its variance, its grid included.
    const ddpm = presetDefaults('ddpm');
    ddpm.model.learnVariance = true;
    assert.equal(samplerDefaults(runSampling(ddpm), 'ddpm').variance, 'learned');
    assert.equal(samplerDefaults(runSampling(ddpm), 'pc').variance, 'learned');
    assert.equal(samplerDefaults(runSampling(ddpm)).variance, null, 'its own DDIM grid has no variance');
    assert.equal(samplerDefaults(runSampling(presetDefaults('ddpm')), 'ddpm').variance, 'notebook');
    // ddim and dpmpp2m say that they ignore it; ddpm and pc use it.
    assert.match(learnedVarianceNote('ddim', 0.5)!, /ddim reads only the mean channels of this learned-variance model: its noise is eta's \(0.5; Song et al. 2021, eq. 16\)/);
    assert.match(learnedVarianceNote('dpmpp2m')!, /dpmpp2m reads only the mean channels .* no variance/);
    assert.deepEqual(SAMPLERS.filter((s) => learnedVarianceNote(s) === null), ['ddpm', 'pc']);
  } finally {
    d.dispose();
  }
});

test('the bound of a learned-variance model reads log Sigma from v: v = -1 everywhere gives the fixed-small (posterior) bound', () => {
  const d = new Diffusion(makeSchedule({ kind: 'linear', T: 20, betaStart: 1e-3, betaEnd: 0.1 }));
  try {
    const x0 = tidy(() => tensor(Float32Array.from({ length: 32 }, (_, i) => ((i * 37) % 256) / 127.5 - 1), [2, 1, 4, 4]));
    const mean = (x: Tensor): Tensor => x.mul(0.2);
    const opts = { diffusion: d, objective: 'eps' as const, generator: new Generator(1) };
    const fixed = variationalBound(x0, { ...opts, model: mean, variance: 'posterior' });
    const small = variationalBound(x0, { ...opts, generator: new Generator(1), model: (x: Tensor) => cat([mean(x), full(x.shape, -1)], 1), learnVariance: true });
    assert.equal(small.variance, 'learned');
    assertClose('bpd', [small.bpd], [fixed.bpd], 1e-5, 1e-5);
    const fixedLarge = variationalBound(x0, { ...opts, generator: new Generator(1), model: mean, variance: 'beta' });
    const large = variationalBound(x0, { ...opts, generator: new Generator(1), model: (x: Tensor) => cat([mean(x), full(x.shape, 1)], 1), learnVariance: true });
    // v = 1 is log beta_t at every t >= 1; at t = 0 both use log beta_0 vs beta~_1 (fixed large keeps the clipped beta~_1 there).
    const kl = (r: typeof large): number => r.bpd - r.terms.decoder;
    assertClose('KL terms with v = 1 equal fixed large', [kl(large)], [kl(fixedLarge)], 1e-5, 1e-5);
    x0.dispose();
  } finally {
    d.dispose();
  }
});

test('ONNX: a learned-variance model exports 2C output channels equal to libtorch\'s, and sampleOnnx uses its variance as the libtorch model does on the same noise', async () => {
  const config = { ...presetDefaults('dli02'), model: { ...presetDefaults('dli02').model, learnVariance: true }, samples: { count: 4, seed: 0, variance: 'learned' as const } };
  manualSeed(21);
  const model = createModel(config.model);
  model.eval();
  const metadata = onnxMetadata(config, JSON.stringify(config), { ema: false, step: null });
  assert.equal(metadata['learn_variance'], 'true');
  const bytes = encodeOnnx(modelToOnnx(model, config.model, { metadata }));
  const file = decodeOnnx(bytes);
  assert.deepEqual(file.graph.outputs.map((v) => [v.name, v.shape]), [['prediction', ['batch', 2, 16, 16]]]);
  const session = await ort.InferenceSession.create(bytes);
  const predictor = inferencePredictor(model);
  try {
    // One call: ORT's 2C channels against libtorch's forward of the same weights.
    manualSeed(4);
    const x = randn([3, 1, 16, 16]);
    const expected = noGrad(() => tidy(() => predictor.forward(x, tensor(BigInt64Array.from([0n, 70n, 149n]), [3])).dataSync() as Float32Array));
    const got = (await session.run({ x_t: new ort.Tensor('float32', x.dataSync() as Float32Array, [3, 1, 16, 16]), t: new ort.Tensor('int64', BigInt64Array.from([0n, 70n, 149n]), [3]) }))['prediction']!;
    assert.deepEqual(got.dims, [3, 2, 16, 16]);
    assert.ok(maxAbsDiff(got.data as Float32Array, expected) <= 1e-4, `max |ORT - libtorch| = ${maxAbsDiff(got.data as Float32Array, expected)}`);
    x.dispose();
    // A whole ddpm sampling on ONNX Runtime against the same sampler, the same Philox noise, with libtorch computing each call.
    const info = onnxModelInfo(readOnnxMetadata(bytes, 'learned.onnx'), 'learned.onnx');
    assert.equal(info.learnVariance, true);
    for (const sampler of ['ddpm', 'pc'] as const) {
      const o = { n: 3, seed: 9, sampler, steps: 12 };
      const onOrt = await sampleOnnx(session, ort.Tensor, info, o);
      const sampling = resolveSampling({ diffusion: { T: info.terms.T, terms: info.terms }, objective: 'eps', shape: [3, 1, 16, 16], sampler, steps: 12, learnVariance: true });
      assert.equal(sampling.variance, 'learned');
      const onTorch = runSync(reverseProcess({ ops: hostOps(9), terms: info.terms, sampling, shape: [3, 1, 16, 16] }), (call) => noGrad(() => tidy(() => {
        const b = call.x.shape[0]!;
        const out = predictor.forward(tensor(call.x.data, call.x.shape), full([b], call.t, { dtype: 'int64' }));
        return new HostArray(Float32Array.from(out.dataSync() as Float32Array), out.shape);
      })));
      assert.ok(maxAbsDiff(onOrt.data, onTorch.data) <= 1e-3, `${sampler}: max |ORT - libtorch| over the sampling = ${maxAbsDiff(onOrt.data, onTorch.data)}`);
      // And the variance mattered: the fixed small variance gives other images.
      assert.ok(maxAbsDiff((await sampleOnnx(session, ort.Tensor, info, { ...o, variance: 'posterior' })).data, onOrt.data) > 1e-3);
    }
  } finally {
    predictor.dispose();
    model.dispose();
    await session.release();
  }
});
