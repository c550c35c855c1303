// The in-place sampling path of the dli03 and ddpm U-Nets (FiLM, activations and residual sums
// computed in place on tensors a block made itself, activations freed early) against the autograd
// path, the three ops it needs against closed-form values, and sampling's chunked model calls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed, noGrad, tidy, randn, tensor, type Tensor } from '../src/tensor/index.js';
import { createModel, inferencePredictor, inferenceRows, type PresetName } from '../src/models/index.js';
import { assertClose } from './helpers.js';

test('addcmul is a + v b c with broadcasting; silu_ and gelu_ change the tensor itself to silu and exact gelu', () => tidy(() => {
  const a = tensor([1, 2, 3, 4], [2, 2]);
  const b = tensor([0.5, -1], [2, 1]);
  const c = tensor([3, 5], [1, 2]);
  // a + 0.5 b c, row r column k: a[r][k] + 0.5 b[r] c[k]
  assert.deepEqual(a.addcmul(b, c, 0.5).toArray(), [1 + 0.75, 2 + 1.25, 3 - 1.5, 4 - 2.5]);
  const xs = [-3, -0.5, 0, 0.25, 2];
  const s = tensor(xs, [5]);
  const same = s.silu_();
  assert.equal(same, s, 'silu_ returns the tensor it changed');
  assertClose('silu_', s, xs.map((x) => x / (1 + Math.exp(-x))), 1e-6);
  // Exact GELU, x Phi(x), at points where Phi is known: Phi(0) = 1/2, Phi(-3) = 0.0013499, Phi(2) = 0.9772499.
  const g = tensor([-3, 0, 2], [3]);
  assert.equal(g.gelu_(), g, 'gelu_ returns the tensor it changed');
  assertClose('gelu_', g, [-3 * 0.0013499, 0, 2 * 0.9772499], 1e-5);
}));

for (const preset of ['dli03', 'ddpm'] as PresetName[]) {
  test(`${preset}: the in-place sampling forward equals the autograd forward and leaves x, t and c as they were`, () => tidy(() => {
    manualSeed(3);
    const size = preset === 'ddpm' ? 28 : 16;
    const model = createModel({ preset, imageChannels: 1, imageSize: size, T: preset === 'ddpm' ? 1000 : 150, numClasses: 10 }).eval();
    const x = randn([3, 1, size, size]); // (3, 1, S, S)
    const t = tensor([0, 7, 120], [3], { dtype: 'int64' });
    const c = tensor(Array.from({ length: 30 }, (_, i) => (i % 11 === 0 ? 1 : 0)), [3, 10]); // one-hot rows 0, 1, 2
    const x0 = x.toArray();
    const c0 = c.toArray();
    const withGrad: Tensor = model.forward(x, t, c); // grad enabled: the autograd path
    const inPlace = noGrad(() => model.forward(x, t, c));
    assertClose(`${preset} in-place forward`, inPlace, withGrad.detach(), 1e-5);
    assert.deepEqual(x.toArray(), x0, 'x was changed');
    assert.deepEqual(c.toArray(), c0, 'c was changed');
    assert.deepEqual(t.toArray(), [0, 7, 120], 't was changed');
    model.dispose();
  }));
}

test('inferencePredictor runs a batch wider than inferenceRows in equal chunks with the outputs of one call; ddpm and dli03 chunk at the mmap threshold', () => tidy(() => {
  manualSeed(5);
  const model = createModel({ preset: 'ddpm', imageChannels: 1, imageSize: 28, T: 1000, numClasses: 10 }).eval();
  // 64 channels at 28x28 in float32: 200,704 bytes an image, 167 rows under 32 MiB.
  assert.equal(model.widestActivation, 64 * 28 * 28);
  assert.equal(inferenceRows(model), 167);
  assert.equal(inferenceRows(createModel({ preset: 'dli03', imageChannels: 1, imageSize: 16, T: 150, numClasses: 0 })), 256);
  assert.equal(inferenceRows(createModel({ preset: 'dli02', imageChannels: 1, imageSize: 16, T: 150, numClasses: 0 })), Infinity);
  // Pretend the widest activation is 16 MiB an image: 2 rows a call, so 5 rows run as 2 + 2 + 1.
  Object.defineProperty(model, 'widestActivation', { value: 4 * 1024 * 1024 });
  assert.equal(inferenceRows(model), 2);
  const x = randn([5, 1, 28, 28]);
  const t = tensor([999, 500, 3, 0, 42], [5], { dtype: 'int64' });
  const c = tensor(Array.from({ length: 50 }, (_, i) => (i % 10 === Math.floor(i / 10) % 3 ? 1 : 0)), [5, 10]);
  const whole = noGrad(() => model.forward(x, t, c));
  const p = inferencePredictor(model);
  const chunked = noGrad(() => p.forward(x, t, c));
  assert.deepEqual(chunked.shape, [5, 1, 28, 28]);
  assertClose('chunked forward', chunked, whole, 1e-5);
  p.dispose();
  model.dispose();
}));
