// The dli02 U-Net against the notebook's PyTorch model (fixture: tools/reference/dli02_golden.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed, noGrad, tidy, mseLoss, zerosLike, liveTensors } from '../src/tensor/index.js';
import { Dli02UNet, inferencePredictor } from '../src/models/index.js';
import { fixtureTensors, assertClose } from './helpers.js';

const ref = fixtureTensors('dli02_golden.safetensors');

function loadedModel(): Dli02UNet {
  const m = new Dli02UNet();
  const sd = new Map([...m.stateDict().keys()].map((k) => [k, ref.get(k)!]));
  m.loadStateDict(sd, 'dli02_golden.safetensors');
  return m;
}

test('parameter count equals the notebook model (240,385) and state-dict names are PyTorch\'s', () => {
  const m = new Dli02UNet();
  assert.equal(m.numParameters(), 240385);
  for (const k of m.stateDict().keys()) assert.ok(ref.has(k), `PyTorch state dict has no ${k}`);
  m.dispose();
});

test('manualSeed(0) gives the same initial conv and linear weights as torch.manual_seed(0) (bit-exact)', () => {
  manualSeed(0);
  const m = new Dli02UNet();
  let checked = 0;
  for (const [k, t] of m.stateDict()) {
    // The fixture re-randomised BatchNorm parameters and buffers after init; everything else is default init.
    const isBn = ref.has(k.replace(/\.weight$|\.bias$/, '.running_mean'));
    if (isBn || !/\.(weight|bias)$/.test(k)) continue;
    assert.deepEqual(t.toArray(), ref.get(k)!.toArray(), `${k} differs from PyTorch's initial value`);
    checked++;
  }
  assert.ok(checked >= 20, `checked ${checked} tensors`);
  m.dispose();
});

test('eval forward equals PyTorch (atol 1e-5)', () => noGrad(() => tidy(() => {
  const m = loadedModel().eval();
  assertClose('out_eval', m.forward(ref.get('x')!, ref.get('t')!), ref.get('out_eval')!, 1e-5, 1e-5);
  m.dispose();
})));

test('train forward, BatchNorm running statistics and every gradient equal PyTorch', () => tidy(() => {
  const m = loadedModel().train();
  const out = m.forward(ref.get('x')!, ref.get('t')!);
  assertClose('out_train', out, ref.get('out_train')!, 1e-5, 1e-5);
  const loss = mseLoss(out, zerosLike(out)); // = out.pow(2).mean()
  assertClose('loss', [loss.item()], [ref.get('loss')!.item()], 1e-6, 1e-5);
  loss.backward();
  for (const [k, p] of m.namedParameters()) assertClose(`grad of ${k}`, p.grad!, ref.get(`grad.${k}`)!, 1e-5, 1e-4);
  for (const [k, b] of m.namedBuffers()) assertClose(`${k} after one train forward`, b, ref.get(`after_train.${k}`)!, 1e-6, 1e-5);
  m.dispose();
}));

test('an image size the U-Net cannot halve twice is refused', () => {
  assert.throws(() => new Dli02UNet({ imageChannels: 1, imageSize: 18, downChannels: [16, 32, 64], T: 150 }), /image size 18 cannot be halved twice.*multiple of 4/);
});

test('BatchNorm folded into the convolutions gives the eval-mode outputs (atol 2e-5) and frees its own tensors', () => noGrad(() => {
  const m = loadedModel().eval();
  const before = liveTensors();
  const folded = m.foldedForInference();
  assert.equal(liveTensors(), before + 2 * 11 + 2 * 2, 'a weight and a bias per folded (conv, BatchNorm) pair, and the sub-pixel weight and bias of the two transposed ones');
  tidy(() => {
    const x = ref.get('x')!;
    const t = ref.get('t')!;
    assertClose('folded vs plain eval forward', folded.forward(x, t), m.forward(x, t), 2e-5, 1e-5);
    assertClose('folded vs PyTorch eval output', folded.forward(x, t), ref.get('out_eval')!, 2e-5, 1e-5);
  });
  folded.dispose();
  assert.equal(liveTensors(), before, 'dispose() releases the folded weights');
  assert.throws(() => inferencePredictor(m.train()), /eval mode first/);
  m.dispose();
}));
