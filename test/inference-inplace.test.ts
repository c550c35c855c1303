// The in-place sampling path of the dli03 and ddpm U-Nets (FiLM, activations and residual sums
// computed in place on tensors a block made itself, activations freed early) against the autograd
// path, and the three ops it needs against closed-form values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed, noGrad, tidy, randn, tensor, type Tensor } from '../src/tensor/index.js';
import { createModel, type PresetName } from '../src/models/index.js';
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
