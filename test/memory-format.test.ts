// Channels-last parameters (Module.toMemoryFormat, Tensor.setData): same values, same tensors,
// kept through loading and optimizer state, and training steps equal to the row-major model's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, manualSeed, rand, randint, randn, tidy, zeros, zerosLike } from '../src/tensor/index.js';
import { Adam } from '../src/nn/index.js';
import { Dli02UNet } from '../src/models/index.js';
import { Diffusion, makeSchedule, simpleLoss } from '../src/diffusion/index.js';
import { assertClose } from './helpers.js';

function convWeights(m: Dli02UNet): [string, ReturnType<Dli02UNet['parameters']>[number]][] {
  return m.namedParameters().filter(([, p]) => p.rank === 4);
}

test('dli02 lays its convolution weights out channels-last, with PyTorch\'s values, as the same leaf tensors', () => {
  manualSeed(0);
  const m = new Dli02UNet();
  manualSeed(0);
  const rowMajor = new Dli02UNet();
  const before = new Map(rowMajor.namedParameters());
  rowMajor.toMemoryFormat('contiguous');
  assert.equal(convWeights(m).length, 12, '10 convolutions and 2 transposed convolutions');
  for (const [k, p] of convWeights(m)) {
    // With one input channel (down0's first convolution) the two layouts are the same strides.
    assert.ok(p.isContiguous('channelsLast') && (p.shape[1] === 1 || !p.isContiguous()), `${k} is channels-last`);
    const q = rowMajor.namedParameters().find(([n]) => n === k)![1];
    assert.ok(q.isContiguous(), `${k} is row-major after toMemoryFormat('contiguous')`);
    assert.equal(q, before.get(k), `${k} is the same tensor object after conversion`);
    assert.ok(q.requiresGrad && q.isLeaf, `${k} is still a leaf that requires grad`);
    assert.deepEqual(p.toArray(), q.toArray(), `${k} has the same values in both layouts`);
  }
  m.dispose();
  rowMajor.dispose();
});

test('loading a row-major state dict keeps channels-last weights; Adam\'s moments follow the layout', () => {
  const m = new Dli02UNet();
  const source = new Dli02UNet().toMemoryFormat('contiguous');
  m.loadStateDict(source.stateDict(), 'a row-major model');
  for (const [k, p] of convWeights(m)) {
    assert.ok(p.isContiguous('channelsLast'), `${k} stays channels-last after loading`);
    assert.deepEqual(p.toArray(), source.stateDict().get(k)!.toArray(), `${k} loaded`);
  }
  const opt = new Adam(m.namedParameters());
  tidy(() => {
    m.forward(randn([4, 1, 16, 16]), randint(0, 150, [4])).square().mean().backward();
    opt.step();
  });
  for (const [k, t] of opt.stateDict().tensors) if (t.rank === 4) assert.ok(t.isContiguous('channelsLast'), `${k} is channels-last`);
  tidy(() => {
    const z = zerosLike(m.stateDict().get('down1.model.0.weight')!); // (32, 16, 3, 3)
    assert.ok(z.isContiguous('channelsLast') && !z.isContiguous(), 'zerosLike preserves channels-last');
    assert.ok(zerosLike(zeros([2, 3, 4, 5])).isContiguous(), 'and row-major');
  });
  m.dispose();
  source.dispose();
});

test('the channels-last model trains as the row-major one: first-step gradients (1e-5) and three losses (2e-5)', () => {
  // Only the first steps: Adam divides by sqrt(v), so rounding differences in near-zero gradients
  // grow into lr-sized ones over a few steps, in either layout.
  const diffusion = new Diffusion(makeSchedule({ kind: 'linear', T: 150, betaStart: 1e-4, betaEnd: 0.02 }));
  const run = (channelsLast: boolean): { losses: number[]; grads: Map<string, number[]> } => {
    manualSeed(1);
    const m = new Dli02UNet().train();
    if (!channelsLast) m.toMemoryFormat('contiguous');
    const opt = new Adam(m.namedParameters(), { lr: 1e-3 });
    const gen = new Generator(7);
    const losses: number[] = [];
    let grads = new Map<string, number[]>();
    for (let i = 0; i < 3; i++) {
      tidy(() => {
        const x0 = rand([32, 1, 16, 16], { generator: gen }).mul(2).sub(1);
        opt.zeroGrad();
        const loss = simpleLoss(diffusion, (xt, t) => m.forward(xt, t), x0, gen);
        loss.backward();
        if (i === 0) grads = new Map(m.namedParameters().map(([k, p]) => [k, p.grad!.toArray()]));
        opt.step();
        losses.push(loss.item());
      });
    }
    m.dispose();
    return { losses, grads };
  };
  const cl = run(true);
  const rm = run(false);
  for (const [k, g] of cl.grads) assertClose(`gradient of ${k}`, g, rm.grads.get(k)!, 1e-5, 1e-4);
  assertClose('losses', cl.losses, rm.losses, 2e-5);
});

test('setData refuses a tensor of another shape or dtype, naming both', () => tidy(() => {
  const t = zeros([2, 3, 4, 5]);
  assert.throws(() => t.setData(zeros([2, 3, 5, 4])), /setData: source Tensor\(shape=\[2, 3, 5, 4\].*does not match Tensor\(shape=\[2, 3, 4, 5\]/);
  assert.throws(() => t.setData(zeros([2, 3, 4, 5], { dtype: 'float64' })), /dtype=float64.*does not match.*dtype=float32/);
}));
