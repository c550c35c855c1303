// The samplers on ONNX Runtime: the Philox noise generator (Random123's known answers, its
// statistics, its determinism), HostArray's operations against libtorch's, every sampler run on host
// arrays against the same sampler on libtorch tensors with the same model and noise (one copy of the
// formulas, two engines), and sampleOnnx on a small contract model (tiny-cond.onnx, built with the
// onnx package by test/fixtures/onnx/make-tiny.py) on onnxruntime-node, with its refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import ort from 'onnxruntime-node';
import { tensor, tidy, keep, cat, noGrad, liveTensors, type Tensor } from '../src/tensor/index.js';
import { makeSchedule } from '../src/diffusion/index.js';
import {
  reverseProcess, runSync, runAsync, resolveSampling, tensorOps, dynamicThreshold, SAMPLERS,
  type ArrayOps, type ModelCall, type SamplingChoice, type X0Processing,
} from '../src/samplers/index.js';
import { HostArray, hostOps, catHost } from '../src/samplers/host-array.js';
import { PhiloxNormal, philox4x32 } from '../src/samplers/philox.js';
import { readOnnxMetadata, onnxModelInfo, sampleOnnx } from '../src/samplers/onnx-model.js';
import { fixture, maxAbsDiff } from './helpers.js';

const hex = (w: number[]): string => w.map((x) => x.toString(16).padStart(8, '0')).join(' ');

test('Philox4x32-10 reproduces the Random123 known-answer vectors', () => {
  assert.equal(hex(philox4x32([0, 0, 0, 0], [0, 0])), '6627e8d5 e169c58d bc57ac4c 9b00dbd8');
  assert.equal(hex(philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff])), '408f276d 41c83b0e a20bc7c6 6d5451fd');
  assert.equal(hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])), 'd16cfe09 94fdcceb 5001e420 24126ea1');
});

test('Philox normals: moments of N(0, 1), tail masses, no lag-1 correlation; same seed same numbers, calls continue the stream', () => {
  const n = 200_000;
  const z = new PhiloxNormal(12345).randn(n);
  let m1 = 0; let m2 = 0; let m3 = 0; let m4 = 0; let lag = 0; let beyond2 = 0;
  for (let i = 0; i < n; i++) {
    const v = z[i]!;
    m1 += v; m2 += v * v; m3 += v ** 3; m4 += v ** 4;
    if (i > 0) lag += v * z[i - 1]!;
    if (Math.abs(v) > 2) beyond2++;
  }
  // Standard errors at n = 2e5: mean 0.0022, variance 0.0032, skewness 0.0055, kurtosis 0.011.
  assert.ok(Math.abs(m1 / n) < 0.01, `mean ${m1 / n}`);
  assert.ok(Math.abs(m2 / n - 1) < 0.015, `variance ${m2 / n}`);
  assert.ok(Math.abs(m3 / n) < 0.03, `third moment ${m3 / n}`);
  assert.ok(Math.abs(m4 / n - 3) < 0.06, `fourth moment ${m4 / n}`);
  assert.ok(Math.abs(lag / n) < 0.01, `lag-1 correlation ${lag / n}`);
  assert.ok(Math.abs(beyond2 / n - 0.0455) < 0.002, `P(|z| > 2) = ${beyond2 / n}, expected 0.0455`);
  assert.deepEqual(new PhiloxNormal(12345).randn(10), z.subarray(0, 10));
  assert.notDeepEqual(new PhiloxNormal(12346).randn(10), z.subarray(0, 10));
  const g = new PhiloxNormal(12345);
  const first = g.randn(8);
  assert.deepEqual(first, z.subarray(0, 8));
  assert.deepEqual(g.randn(8), z.subarray(8, 16), 'a second call continues where the first stopped');
  assert.throws(() => new PhiloxNormal(-1), /seed must be an integer in \[0, 2\^53\), got -1/);
});

const rand = (shape: number[], seed: number): HostArray => new HostArray(new PhiloxNormal(seed).randn(shape.reduce((a, b) => a * b, 1)), shape);
const asTensor = (a: HostArray): Tensor => tensor(Float32Array.from(a.data), a.shape);

test('HostArray operations equal libtorch\'s (broadcasting, reductions, quantile, narrow, cat, reshape)', () => {
  tidy(() => {
    const a = rand([3, 2, 4, 4], 1);
    const b = rand([3, 2, 4, 4], 2);
    const s = rand([3, 1, 1, 1], 3).abs().add(0.5);
    const [ta, tb, ts] = [asTensor(a), asTensor(b), asTensor(s)];
    const cases: [string, HostArray, Tensor][] = [
      ['add', a.add(b), ta.add(tb)], ['sub', a.sub(b), ta.sub(tb)], ['mul', a.mul(b), ta.mul(tb)], ['div', a.div(s), ta.div(ts)],
      ['mul scalar', a.mul(0.3), ta.mul(0.3)], ['sub scalar', a.sub(1.7), ta.sub(1.7)], ['broadcast mul', a.mul(s), ta.mul(ts)],
      ['maximum', a.maximum(s.neg()), ta.maximum(ts.neg())], ['minimum', a.minimum(s), ta.minimum(ts)],
      ['clamp', a.clamp(-0.5, 0.5), ta.clamp(-0.5, 0.5)], ['clamp low', a.clamp(0.2, null), ta.clamp(0.2, null)],
      ['abs sqrt square neg', a.abs().sqrt().square().neg(), ta.abs().sqrt().square().neg()],
      ['sum', a.reshape([3, -1]).sum(1), ta.reshape([3, -1]).sum(1)],
      ['quantile', a.reshape([3, -1]).abs().quantile(0.995, 1), ta.reshape([3, -1]).abs().quantile(0.995, 1)],
      ['quantile dim 0', a.quantile(0.3, 0), ta.quantile(0.3, 0)],
      ['narrow', a.narrow(0, 1, 2), ta.narrow(0, 1, 2)], ['narrow dim 1', a.narrow(1, 1, 1), ta.narrow(1, 1, 1)],
      ['cat', catHost([a, b], 0), cat([ta, tb], 0)], ['cat dim 1', catHost([a, b], 1), cat([ta, tb], 1)],
      ['dynamic threshold', dynamicThreshold(a.mul(3)), dynamicThreshold(ta.mul(3))],
    ];
    for (const [what, host, torch] of cases) {
      assert.deepEqual(host.shape, torch.shape, `${what}: shape`);
      const d = maxAbsDiff(host.data, torch.toArray());
      assert.ok(d <= 1e-6, `${what}: max |host - libtorch| = ${d}`);
    }
    assert.throws(() => a.add(rand([2, 4, 4, 4], 5)), /HostArray.add: shapes \[3, 2, 4, 4\] and \[2, 4, 4, 4\] cannot broadcast \(size 3 vs 2 at dim -4\)/);
    assert.throws(() => a.reshape([5, -1]), /HostArray.reshape: cannot view \[3, 2, 4, 4\] \(96 values\) as \[5, -1\]/);
    assert.throws(() => a.narrow(0, 2, 2), /HostArray.narrow: \[2, 4\) is outside dim 0 of size 3/);
  });
});

// A model both engines run identically: the same float32 function of (x, t, labels), outside either engine's arithmetic.
const K = 3;
function modelValues(x: Float32Array, shape: readonly number[], t: number, labels: readonly number[] | null): Float32Array {
  const [b, ...rest] = shape as number[];
  const per = rest.reduce((p, q) => p * q, 1);
  const out = new Float32Array(x.length);
  for (let i = 0; i < b!; i++) {
    const l = labels ? labels[i]! : -1;
    for (let j = 0; j < per; j++) out[i * per + j] = Math.tanh(0.8 * x[i * per + j]! + 0.002 * t + (l >= 0 ? 0.3 * (l + 1) * Math.sin(j) : 0));
  }
  return out;
}

/** libtorch tensors with the host's Philox noise: the only difference left between the two runs is the engine. */
function tensorOpsWithPhilox(seed: number): ArrayOps<Tensor> {
  const noise = new PhiloxNormal(seed);
  return { ...tensorOps(), randn: (shape) => tensor(noise.randn(shape.reduce((a, b) => a * b, 1)), shape), randnLike: (like) => tensor(noise.randn(like.numel), like.shape) };
}

test('every sampler on host arrays equals the same sampler on libtorch tensors (same model, same noise; guidance, clipping, thresholding, corrector)', () => {
  const terms = makeSchedule({ kind: 'cosine', T: 60, s: 0.008 });
  const shape: [number, number, number, number] = [5, 2, 4, 4];
  const labels = [0, 1, 2, 1, 0];
  const before = liveTensors();
  const configs: (Omit<SamplingChoice, 'diffusion' | 'shape'> & { what: string })[] = [];
  for (const sampler of SAMPLERS) {
    for (const x0Processing of ['none', 'clip', 'dynamic'] as X0Processing[]) {
      configs.push({ what: `${sampler} ${x0Processing} guided`, sampler, objective: 'eps', steps: 12, x0Processing, numClasses: K, labels, guidance: 1.5, batchSize: 3, ...(sampler === 'pc' ? { correctorSteps: 2 } : {}) });
    }
    configs.push({ what: `${sampler} v unconditional`, sampler, objective: 'v', steps: 8, ...(sampler === 'ddim' ? { eta: 0.6 } : {}) });
  }
  configs.push({ what: 'ddpm every step (the notebook form)', sampler: 'ddpm', objective: 'eps', steps: 60 });
  for (const { what, ...c } of configs) {
    const sampling = resolveSampling({ ...c, diffusion: { T: terms.T, terms }, shape });
    const lab = c.labels ? { labels: c.labels } : {};
    const host = runSync(reverseProcess({ ops: hostOps(9), terms, sampling, shape, ...lab }), (call: ModelCall<HostArray>) => new HostArray(modelValues(call.x.data, call.x.shape, call.t, call.labels), call.x.shape));
    const torch = noGrad(() => runSync(reverseProcess({ ops: tensorOpsWithPhilox(9), terms, sampling, shape, ...lab }),
      (call: ModelCall<Tensor>) => keep(tensor(modelValues(call.x.dataSync() as Float32Array, call.x.shape, call.t, call.labels), call.x.shape))));
    const expected = torch.toArray();
    torch.dispose();
    // Relative to the images' range: the float32 sums of the corrector's norms round differently (libtorch sums in float32 lanes).
    const scale = Math.max(1, ...expected.map(Math.abs));
    const d = maxAbsDiff(host.data, expected);
    assert.ok(d <= 2e-5 * scale, `${what}: max |host - libtorch| = ${d} (largest |x| ${scale})`);
  }
  assert.equal(liveTensors(), before, 'the libtorch runs freed every tensor they made');
});

test('the async driver gives the sync driver\'s result, and a failing model call reaches the caller with the generator closed', async () => {
  const terms = makeSchedule({ kind: 'linear', T: 20, betaStart: 1e-4, betaEnd: 0.2 });
  const shape: [number, number, number, number] = [2, 1, 3, 3];
  const sampling = resolveSampling({ diffusion: { T: 20, terms }, objective: 'eps', shape, sampler: 'dpmpp2m', steps: 5 });
  const model = (call: ModelCall<HostArray>): HostArray => new HostArray(modelValues(call.x.data, call.x.shape, call.t, null), call.x.shape);
  const sync = runSync(reverseProcess({ ops: hostOps(4), terms, sampling, shape }), model);
  const async = await runAsync(reverseProcess({ ops: hostOps(4), terms, sampling, shape }), (call) => Promise.resolve(model(call)));
  assert.deepEqual(async.data, sync.data);
  let calls = 0;
  await assert.rejects(runAsync(reverseProcess({ ops: hostOps(4), terms, sampling, shape }), () => (++calls === 3 ? Promise.reject(new Error('engine failed')) : Promise.resolve(model({ x: HostArray.zeros(shape), t: 0, labels: null })))), /engine failed/);
  assert.equal(calls, 3);
});

const TINY = fixture('onnx/tiny-cond.onnx');

test('sampleOnnx on onnxruntime-node: every sampler with guidance and clipping, deterministic per seed, the metadata read back', async () => {
  const bytes = readFileSync(TINY);
  const meta = readOnnxMetadata(bytes, TINY);
  assert.equal(meta['ddpm_ts.format'], '1');
  assert.equal(meta['num_classes'], '3');
  const info = onnxModelInfo(meta, TINY);
  assert.equal(info.terms.T, 50);
  assert.deepEqual([info.channels, info.imageSize, info.numClasses, info.objective], [1, 8, 3, 'eps']);
  const session = await ort.InferenceSession.create(bytes);
  for (const sampler of SAMPLERS) {
    const o = { n: 4, seed: 3, sampler, steps: 10, labels: [0, 1, 2, 0], guidance: 1.5, x0Processing: 'clip' as const };
    const a = await sampleOnnx(session, ort.Tensor, info, o);
    assert.deepEqual(a.shape, [4, 1, 8, 8]);
    assert.ok(a.data.every(Number.isFinite), `${sampler}: finite`);
    assert.deepEqual((await sampleOnnx(session, ort.Tensor, info, o)).data, a.data, `${sampler}: same seed, same images`);
    assert.ok(maxAbsDiff((await sampleOnnx(session, ort.Tensor, info, { ...o, seed: 4 })).data, a.data) > 0.1, `${sampler}: another seed, other images`);
  }
  // The model's output at one call, by hand: the guided DDIM's first step sees (x_T, t = 49) and (x_T, t = 49, no class).
  let timed = 0;
  await sampleOnnx(session, ort.Tensor, info, { n: 2, seed: 0, sampler: 'ddim', steps: 2, onModelCall: (ms, b) => { timed++; assert.ok(ms >= 0 && b === 2); } });
  assert.equal(timed, 2);
  await assert.rejects(sampleOnnx(session, ort.Tensor, info, { n: 2, seed: 0, sampler: 'ddim', labels: [0, 3] }), /class label 1 is 3, outside the model's classes 0..2/);
  await session.release();
});

test('ONNX models not written by ddpm export are refused, saying what is missing', () => {
  assert.throws(() => onnxModelInfo({}, 'm.onnx'), /m.onnx: the model has no ddpm_ts.format metadata; it was not written by `ddpm export`/);
  assert.throws(() => onnxModelInfo({ 'ddpm_ts.format': '2' }, 'm.onnx'), /ddpm_ts.format is "2", and this version reads format "1"/);
  assert.throws(() => onnxModelInfo({ 'ddpm_ts.format': '1', 'ddpm_ts.run_config': '{' }, 'm.onnx'), /ddpm_ts.run_config is not valid JSON/);
  assert.throws(() => onnxModelInfo({ 'ddpm_ts.format': '1', 'ddpm_ts.run_config': '{"model":{}}' }, 'm.onnx'), /lacks model.imageChannels and model.imageSize/);
  assert.throws(() => readOnnxMetadata(Uint8Array.from([0x0a, 0xff, 0xff, 0xff]), 'bad.onnx'), /bad.onnx: not a readable ONNX model/);
});

test('ddpm sample --model: grid, one PNG per image and a trajectory with x0 rows from the .onnx alone; flags of --run refused', async () => {
  const { sampleCommand } = await import('../src/cli/sample.js');
  const { decodePng } = await import('../src/io/png.js');
  const { mkdtempSync, readdirSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = (await import('node:path')).default;
  const dir = mkdtempSync(path.join(tmpdir(), 'ddpm-sample-model-'));
  const run = (args: string[]): Promise<unknown> => sampleCommand().exitOverride().parseAsync(args, { from: 'user' });
  try {
    await run(['--model', TINY, '--sampler', 'pc', '--steps', '6', '--class', '0,2', '-n', '4', '--guidance', '1', '--batch-size', '3',
      '--grid', path.join(dir, 'g.png'), '--out-dir', path.join(dir, 'imgs'), '--trajectory', path.join(dir, 't.png'), '--trajectory-x0', '--scale', '1']);
    // Two class rows of two 8 px images with 2 px padding: 2 * 10 + 2 = 22 square.
    const g = decodePng(readFileSync(path.join(dir, 'g.png')), 'g.png');
    assert.deepEqual([g.width, g.height], [22, 22]);
    assert.deepEqual(readdirSync(path.join(dir, 'imgs')), ['00000.png', '00001.png', '00002.png', '00003.png']);
    // One row per class (first image of each), x_t and x0_hat: 4 rows; 6 steps give 6 columns.
    const t = decodePng(readFileSync(path.join(dir, 't.png')), 't.png');
    assert.deepEqual([t.width, t.height], [6 * 10 + 2, 4 * 10 + 2]);
    const refusals: [string[], RegExp][] = [
      [['--model', TINY, '--run', dir, '--grid', 'x.png'], /give --run DIR \(libtorch\) or --model FILE.onnx \(ONNX Runtime\), not both/],
      [['--grid', 'x.png'], /nothing to sample from; give --run DIR .* or --model FILE.onnx/],
      [['--model', TINY, '--checkpoint', 'c', '--grid', 'x.png'], /--checkpoint picks a checkpoint of --run; an .onnx file holds one set of weights/],
      [['--model', TINY, '--no-ema', '--grid', 'x.png'], /--no-ema applies to --run/],
      [['--model', path.join(dir, 'none.onnx'), '--grid', 'x.png'], /cannot read --model .*none.onnx \(ENOENT\)/],
      [['--model', TINY, '--steps', '51', '--grid', 'x.png'], /--steps 51 exceeds the model's T = 50/],
      [['--model', TINY, '--class', '3', '--grid', 'x.png'], /--class 3 is outside the run's classes 0..2/],
      [['--model', TINY, '--sampler', 'ddim', '--variance', 'beta', '--grid', 'x.png'], /--variance applies to --sampler ddpm and pc only/],
    ];
    for (const [args, re] of refusals) await assert.rejects(run(args), re, args.join(' '));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
