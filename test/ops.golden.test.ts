// Golden tests: every op's forward values and gradients against PyTorch's, from
// test/fixtures/ops_golden.safetensors (written by tools/golden/make_op_fixtures.py with torch).
// Each case runs in float64 and float32; the loss whose gradients are compared is
// sum_i (out_i * w_i).sum() with fixed random w_i. Set GOLDEN_REPORT=1 to print every max diff.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile, type RawTensor } from '../src/io/safetensors.js';
import {
  Generator, Tensor, cat, manualSeed, rand, randint, randn, randperm, stack, tensor, tidy, where, zerosLike,
} from '../src/tensor/index.js';
import * as F from '../src/tensor/functional.js';
import { Adam, AdamW, Conv2d, ConvTranspose2d, Embedding, Linear, clipGradNorm, type Module } from '../src/nn/index.js';

type Dk = 'f64' | 'f32';

/**
 * Max |ours - torch| allowed, per op and dtype, for values and gradients alike (inputs are O(1)).
 * Bool and integer outputs (comparisons, argmax, max indices) must be equal whatever this says.
 * The fixture comes from the same libtorch version we link, so most ops agree to the last bit
 * here; the bounds leave room for another CPU's SIMD path (a few ulps, more where a sum over
 * many terms is reassociated: reductions, matmul, conv, norms).
 */
const TOL: Record<string, Record<Dk, number>> = {
  // elementwise
  add: { f64: 1e-15, f32: 1e-6 }, sub: { f64: 1e-15, f32: 1e-6 }, mul: { f64: 1e-15, f32: 1e-6 },
  div: { f64: 1e-14, f32: 1e-6 }, pow: { f64: 1e-14, f32: 1e-5 }, neg: { f64: 0, f32: 0 },
  exp: { f64: 1e-14, f32: 1e-6 }, log: { f64: 1e-14, f32: 1e-6 }, sqrt: { f64: 1e-14, f32: 1e-6 },
  rsqrt: { f64: 1e-14, f32: 1e-6 }, abs: { f64: 0, f32: 0 }, square: { f64: 1e-15, f32: 1e-6 },
  reciprocal: { f64: 1e-14, f32: 1e-6 }, sin: { f64: 1e-14, f32: 1e-6 }, cos: { f64: 1e-14, f32: 1e-6 },
  maximum: { f64: 0, f32: 0 }, minimum: { f64: 0, f32: 0 }, clamp: { f64: 0, f32: 0 }, where: { f64: 0, f32: 0 },
  eq: { f64: 0, f32: 0 }, ne: { f64: 0, f32: 0 }, lt: { f64: 0, f32: 0 },
  le: { f64: 0, f32: 0 }, gt: { f64: 0, f32: 0 }, ge: { f64: 0, f32: 0 },
  // reductions
  sum: { f64: 1e-14, f32: 1e-5 }, mean: { f64: 1e-14, f32: 1e-6 }, var: { f64: 1e-14, f32: 1e-5 },
  max: { f64: 0, f32: 0 }, min: { f64: 0, f32: 0 }, argmax: { f64: 0, f32: 0 },
  norm: { f64: 1e-14, f32: 1e-5 }, cumsum: { f64: 1e-14, f32: 1e-5 },
  // linear algebra, convolution, pooling
  matmul: { f64: 1e-13, f32: 1e-5 }, linear: { f64: 1e-13, f32: 1e-5 },
  conv2d: { f64: 1e-13, f32: 1e-5 }, convTranspose2d: { f64: 1e-13, f32: 1e-5 },
  maxPool2d: { f64: 0, f32: 0 }, avgPool2d: { f64: 1e-15, f32: 1e-6 }, adaptiveAvgPool2d: { f64: 1e-15, f32: 1e-6 },
  // normalisation, activations, resampling
  batchNorm: { f64: 1e-13, f32: 1e-5 }, groupNorm: { f64: 1e-13, f32: 1e-5 }, layerNorm: { f64: 1e-13, f32: 1e-5 },
  relu: { f64: 0, f32: 0 }, gelu: { f64: 1e-14, f32: 1e-6 }, silu: { f64: 1e-14, f32: 1e-6 },
  sigmoid: { f64: 1e-14, f32: 1e-6 }, tanh: { f64: 1e-14, f32: 1e-6 },
  softmax: { f64: 1e-14, f32: 1e-6 }, logSoftmax: { f64: 1e-14, f32: 1e-6 },
  interpolate: { f64: 1e-14, f32: 1e-6 },
  // shapes and indexing: pure data movement, except gradients that accumulate (indexSelect, gather,
  // embedding, expand, repeat, interpolate-nearest) and so may sum in another order
  reshape: { f64: 0, f32: 0 }, permute: { f64: 0, f32: 0 }, transpose: { f64: 0, f32: 0 },
  flatten: { f64: 0, f32: 0 }, squeeze: { f64: 0, f32: 0 }, unsqueeze: { f64: 0, f32: 0 },
  cat: { f64: 0, f32: 0 }, stack: { f64: 0, f32: 0 }, chunk: { f64: 0, f32: 0 }, split: { f64: 0, f32: 0 },
  narrow: { f64: 0, f32: 0 }, select: { f64: 0, f32: 0 }, flip: { f64: 0, f32: 0 },
  indexSelect: { f64: 1e-15, f32: 1e-6 }, gather: { f64: 1e-15, f32: 1e-6 }, embedding: { f64: 1e-15, f32: 1e-6 },
  expand: { f64: 1e-15, f32: 1e-6 }, repeat: { f64: 1e-15, f32: 1e-6 },
  pad: { f64: 0, f32: 0 }, pixelShuffle: { f64: 0, f32: 0 }, pixelUnshuffle: { f64: 0, f32: 0 },
  // losses, attention (ours is composed of primitives and multiplies by 1/sqrt(d) where torch divides)
  mseLoss: { f64: 1e-14, f32: 1e-6 }, crossEntropy: { f64: 1e-14, f32: 1e-6 },
  sdpa: { f64: 1e-13, f32: 1e-5 },
  // seeded draws and init must be bit-equal; optimizer state after 5 steps, clipping
  rng: { f64: 0, f32: 0 }, init: { f64: 0, f32: 0 },
  adam: { f64: 1e-14, f32: 1e-6 }, adamw: { f64: 1e-14, f32: 1e-6 }, clipGradNorm: { f64: 1e-14, f32: 1e-6 },
};

type Inputs = Record<string, Tensor>;
type Runner = (i: Inputs) => Tensor | Tensor[];

/** Our call for each fixture case; arguments mirror the lambdas in make_op_fixtures.py. */
const RUN: Record<string, Runner> = {
  'add.tensor': ({ x, y }) => x.add(y),
  'add.scalar': ({ x }) => x.add(0.75),
  'sub.tensor': ({ x, y }) => x.sub(y),
  'sub.scalar': ({ x }) => x.sub(1.5),
  'sub.rscalar': ({ x }) => x.rsub(2),
  'mul.tensor': ({ x, y }) => x.mul(y),
  'mul.scalar': ({ x }) => x.mul(-1.25),
  'div.tensor': ({ x, y }) => x.div(y),
  'div.scalar': ({ x }) => x.div(3),
  'pow.tensor': ({ x, y }) => x.pow(y),
  'pow.square': ({ x }) => x.pow(2),
  'pow.frac': ({ x }) => x.pow(1.5),
  neg: ({ x }) => x.neg(),
  exp: ({ x }) => x.exp(),
  log: ({ x }) => x.log(),
  sqrt: ({ x }) => x.sqrt(),
  rsqrt: ({ x }) => x.rsqrt(),
  abs: ({ x }) => x.abs(),
  square: ({ x }) => x.square(),
  reciprocal: ({ x }) => x.reciprocal(),
  sin: ({ x }) => x.sin(),
  cos: ({ x }) => x.cos(),
  maximum: ({ x, y }) => x.maximum(y),
  minimum: ({ x, y }) => x.minimum(y),
  'clamp.both': ({ x }) => x.clamp(-0.5, 0.7),
  'clamp.min': ({ x }) => x.clamp(0),
  'clamp.max': ({ x }) => x.clamp(null, 0.3),
  where: ({ cond, x, y }) => where(cond, x, y),
  'eq.tensor': ({ x, y }) => x.eq(y), 'eq.scalar': ({ x }) => x.eq(1),
  'ne.tensor': ({ x, y }) => x.ne(y), 'ne.scalar': ({ x }) => x.ne(1),
  'lt.tensor': ({ x, y }) => x.lt(y), 'lt.scalar': ({ x }) => x.lt(1),
  'le.tensor': ({ x, y }) => x.le(y), 'le.scalar': ({ x }) => x.le(1),
  'gt.tensor': ({ x, y }) => x.gt(y), 'gt.scalar': ({ x }) => x.gt(1),
  'ge.tensor': ({ x, y }) => x.ge(y), 'ge.scalar': ({ x }) => x.ge(1),

  'sum.all': ({ x }) => x.sum(),
  'sum.dim': ({ x }) => x.sum(1),
  'sum.negdim': ({ x }) => x.sum(-1),
  'sum.dims_keepdim': ({ x }) => x.sum([0, 2], true),
  'mean.all': ({ x }) => x.mean(),
  'mean.dim_keepdim': ({ x }) => x.mean(1, true),
  'mean.dims': ({ x }) => x.mean([1, 2]),
  'var.all': ({ x }) => x.var(),
  'var.dim': ({ x }) => x.var(1),
  'var.dims_keepdim_biased': ({ x }) => x.var([0, 2], { unbiased: false, keepdim: true }),
  'max.all': ({ x }) => x.max(),
  'max.dim': ({ x }) => x.max(1),
  'max.dim_keepdim': ({ x }) => x.max(-1, true),
  'min.dim': ({ x }) => x.min(0),
  'argmax.all': ({ x }) => x.argmax(),
  'argmax.dim': ({ x }) => x.argmax(1),
  'argmax.dim_keepdim': ({ x }) => x.argmax(0, true),
  norm: ({ x }) => x.norm(),
  cumsum: ({ x }) => x.cumsum(1),

  'matmul.2d': ({ x, y }) => x.matmul(y),
  'matmul.batched_broadcast': ({ x, y }) => x.matmul(y),
  'matmul.vec': ({ x, y }) => x.matmul(y),
  'linear.bias': ({ x, weight, bias }) => F.linear(x, weight, bias),
  'linear.nobias': ({ x, weight }) => F.linear(x, weight),
  'conv2d.basic': ({ x, weight, bias }) => F.conv2d(x, weight, bias),
  'conv2d.stride_pad': ({ x, weight, bias }) => F.conv2d(x, weight, bias, { stride: 2, padding: 1 }),
  'conv2d.dilation': ({ x, weight }) => F.conv2d(x, weight, null, { padding: 2, dilation: 2 }),
  'conv2d.asym': ({ x, weight, bias }) => F.conv2d(x, weight, bias, { stride: [1, 2], padding: [2, 1], dilation: [2, 1] }),
  'conv2d.groups': ({ x, weight, bias }) => F.conv2d(x, weight, bias, { padding: 1, groups: 2 }),
  'conv2d.depthwise': ({ x, weight }) => F.conv2d(x, weight, null, { padding: 1, groups: 3 }),
  'convTranspose2d.basic': ({ x, weight, bias }) => F.convTranspose2d(x, weight, bias),
  'convTranspose2d.stride_pad_outpad': ({ x, weight, bias }) => F.convTranspose2d(x, weight, bias, { stride: 2, padding: 1, outputPadding: 1 }),
  'convTranspose2d.groups': ({ x, weight }) => F.convTranspose2d(x, weight, null, { stride: 2, groups: 2 }),
  'convTranspose2d.dilation': ({ x, weight, bias }) =>
    F.convTranspose2d(x, weight, bias, { stride: 2, padding: [1, 0], outputPadding: [1, 0], dilation: [2, 1] }),

  'maxPool2d.k2': ({ x }) => F.maxPool2d(x, 2),
  'maxPool2d.k3s2p1': ({ x }) => F.maxPool2d(x, 3, { stride: 2, padding: 1 }),
  'maxPool2d.ceil': ({ x }) => F.maxPool2d(x, 2, { stride: 2, ceilMode: true }),
  'maxPool2d.dilation': ({ x }) => F.maxPool2d(x, 2, { stride: 1, dilation: 2 }),
  'avgPool2d.k2': ({ x }) => F.avgPool2d(x, 2),
  'avgPool2d.k3s2p1': ({ x }) => F.avgPool2d(x, 3, { stride: 2, padding: 1 }),
  'avgPool2d.exclude_pad': ({ x }) => F.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }),
  'avgPool2d.ceil': ({ x }) => F.avgPool2d(x, 2, { stride: 2, ceilMode: true }),
  'adaptiveAvgPool2d.divisible': ({ x }) => F.adaptiveAvgPool2d(x, 3),
  'adaptiveAvgPool2d.uneven': ({ x }) => F.adaptiveAvgPool2d(x, [3, 2]),
  'adaptiveAvgPool2d.global': ({ x }) => F.adaptiveAvgPool2d(x, 1),

  // training batch norm updates rm/rv in place; they are compared as outputs 1 and 2
  'batchNorm.train': ({ x, rm, rv, weight, bias }) => [F.batchNorm(x, rm, rv, weight, bias, { training: true, momentum: 0.1, eps: 1e-5 }), rm, rv],
  'batchNorm.train_noaffine': ({ x, rm, rv }) => [F.batchNorm(x, rm, rv, null, null, { training: true, momentum: 0.3, eps: 1e-3 }), rm, rv],
  'batchNorm.eval': ({ x, rm, rv, weight, bias }) => F.batchNorm(x, rm, rv, weight, bias, { training: false, eps: 1e-5 }),
  'groupNorm.affine': ({ x, weight, bias }) => F.groupNorm(x, 3, weight, bias, 1e-5),
  'groupNorm.noaffine_3d': ({ x }) => F.groupNorm(x, 2, null, null, 1e-3),
  'layerNorm.last': ({ x, weight, bias }) => F.layerNorm(x, [5], weight, bias, 1e-5),
  'layerNorm.last2': ({ x, weight, bias }) => F.layerNorm(x, [3, 4], weight, bias, 1e-3),
  'layerNorm.noaffine': ({ x }) => F.layerNorm(x, [4]),

  relu: ({ x }) => x.relu(),
  'gelu.exact': ({ x }) => x.gelu(),
  'gelu.tanh': ({ x }) => x.gelu('tanh'),
  silu: ({ x }) => x.silu(),
  sigmoid: ({ x }) => x.sigmoid(),
  tanh: ({ x }) => x.tanh(),
  'softmax.dim1': ({ x }) => F.softmax(x, 1),
  'softmax.last': ({ x }) => F.softmax(x, -1),
  'logSoftmax.dim1': ({ x }) => F.logSoftmax(x, 1),
  'logSoftmax.last': ({ x }) => F.logSoftmax(x, -1),

  'interpolate.nearest_up': ({ x }) => F.interpolate(x, { size: [6, 8] }),
  'interpolate.nearest_down': ({ x }) => F.interpolate(x, { size: [3, 4], mode: 'nearest' }),
  'interpolate.bilinear_up': ({ x }) => F.interpolate(x, { size: [5, 7], mode: 'bilinear' }),
  'interpolate.bilinear_align': ({ x }) => F.interpolate(x, { size: [5, 7], mode: 'bilinear', alignCorners: true }),
  'interpolate.bilinear_down': ({ x }) => F.interpolate(x, { size: [3, 5], mode: 'bilinear' }),
  'interpolate.antialias_down': ({ x }) => F.interpolate(x, { size: [4, 3], mode: 'bilinear', antialias: true }),
  'interpolate.antialias_up': ({ x }) => F.interpolate(x, { size: [5, 6], mode: 'bilinear', antialias: true }),

  reshape: ({ x }) => x.reshape([4, -1]),
  permute: ({ x }) => x.permute([2, 0, 1]),
  transpose: ({ x }) => x.transpose(-1, 0),
  'flatten.all': ({ x }) => x.flatten(),
  'flatten.range': ({ x }) => x.flatten(1, 2),
  'squeeze.all': ({ x }) => x.squeeze(),
  'squeeze.dim': ({ x }) => x.squeeze(1),
  'unsqueeze.dim': ({ x }) => x.unsqueeze(1),
  'unsqueeze.neg': ({ x }) => x.unsqueeze(-1),
  'cat.dim0': ({ a, b }) => cat([a, b], 0),
  'cat.last': ({ a, b, c }) => cat([a, b, c], -1),
  'stack.dim0': ({ a, b }) => stack([a, b], 0),
  'stack.last': ({ a, b, c }) => stack([a, b, c], 2),
  'chunk.uneven': ({ x }) => x.chunk(3, 0),
  'chunk.dim1': ({ x }) => x.chunk(2, 1),
  split: ({ x }) => x.split([1, 3, 2], 0),
  narrow: ({ x }) => x.narrow(1, 1, 3),
  select: ({ x }) => x.select(1, -1),
  indexSelect: ({ x, index }) => x.indexSelect(0, index),
  gather: ({ x, index }) => x.gather(1, index),
  expand: ({ x }) => x.expand([2, 3, 4]),
  'expand.infer': ({ x }) => x.expand([2, -1, 4]),
  repeat: ({ x }) => x.repeat([2, 1, 3]),
  flip: ({ x }) => x.flip([0, 2]),
  'pad.constant': ({ x }) => F.pad(x, [1, 2, 0, 1], 'constant', 0.5),
  'pad.constant_last': ({ x }) => F.pad(x, [2, 1]),
  'pad.reflect': ({ x }) => F.pad(x, [1, 2, 2, 1], 'reflect'),
  'pad.replicate': ({ x }) => F.pad(x, [2, 0, 1, 1], 'replicate'),
  pixelShuffle: ({ x }) => F.pixelShuffle(x, 2),
  pixelUnshuffle: ({ x }) => F.pixelUnshuffle(x, 2),
  embedding: ({ weight, index }) => F.embedding(weight, index),

  'mseLoss.mean': ({ input, target }) => F.mseLoss(input, target),
  'mseLoss.sum': ({ input, target }) => F.mseLoss(input, target, 'sum'),
  'mseLoss.none': ({ input, target }) => F.mseLoss(input, target, 'none'),
  'crossEntropy.mean': ({ logits, target }) => F.crossEntropy(logits, target),
  'crossEntropy.sum_smooth': ({ logits, target }) => F.crossEntropy(logits, target, { reduction: 'sum', labelSmoothing: 0.1 }),
  'crossEntropy.ignore': ({ logits, target }) => F.crossEntropy(logits, target, { ignoreIndex: 1 }),
  'crossEntropy.none': ({ logits, target }) => F.crossEntropy(logits, target, { reduction: 'none' }),

  // torch side: the explicit softmax(q k^T / sqrt(d) + mask) v
  'sdpa.nomask': ({ q, k, v }) => F.scaledDotProductAttention(q, k, v),
  'sdpa.heads_d5': ({ q, k, v }) => F.scaledDotProductAttention(q, k, v),
  'sdpa.mask': ({ q, k, v, mask }) => F.scaledDotProductAttention(q, k, v, mask),
};

// ------------------------------------------------------------------ fixture access
const FIXTURE = fileURLToPath(new URL('../../test/fixtures/ops_golden.safetensors', import.meta.url));
const file = readSafetensorsFile(FIXTURE);

function raw(name: string): RawTensor {
  const r = file.tensors.get(name);
  if (!r) throw new Error(`${FIXTURE}: no tensor ${name}; regenerate with /usr/bin/python3 tools/golden/make_op_fixtures.py`);
  return r;
}

function load(name: string): Tensor {
  const { dtype, shape, data } = raw(name);
  const bytes = data.slice(); // aligned copy
  switch (dtype) {
    case 'F64': return tensor(new Float64Array(bytes.buffer), shape);
    case 'F32': return tensor(new Float32Array(bytes.buffer), shape);
    case 'I64': return tensor(new BigInt64Array(bytes.buffer), shape);
    case 'BOOL': return tensor(bytes, shape, { dtype: 'bool' });
    default: throw new Error(`${name}: fixture dtype ${dtype} is not used by this test`);
  }
}

/** Names under `prefix` (one path level), in file order. */
function children(prefix: string): string[] {
  return [...file.tensors.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
}

// ------------------------------------------------------------------ comparison
const report: string[] = [];

/** Asserts shape, dtype and max |got - want| <= tol (equality for bool/int), naming op and tolerance. */
function expectClose(what: string, op: string, got: Tensor | number, want: Tensor, tol: number): void {
  const g = typeof got === 'number' ? [got] : got.toArray();
  const w = want.toArray();
  if (typeof got !== 'number') {
    assert.deepEqual(got.shape, want.shape, `${what}: shape [${got.shape}] but torch gives [${want.shape}]`);
    assert.equal(got.dtype, want.dtype, `${what}: dtype ${got.dtype} but torch gives ${want.dtype}`);
  }
  const exact = typeof got !== 'number' && !(got.dtype === 'float32' || got.dtype === 'float64');
  let max = 0;
  let at = -1;
  for (let i = 0; i < w.length; i++) {
    const d = g[i] === w[i] ? 0 : Math.abs(g[i]! - w[i]!); // equal infinities count as 0
    if (!(d <= max)) { max = d; at = i; } // NaN propagates as a failure
  }
  const limit = exact ? 0 : tol;
  report.push(`${what.padEnd(48)} max |diff| ${max.toExponential(2)}  tol ${limit}`);
  if (!(max <= limit)) {
    assert.fail(`${what}: max |ours - torch| = ${max} at flat index ${at} (ours ${g[at]}, torch ${w[at]}) exceeds the ${op} tolerance ${limit}`);
  }
}

function tolFor(op: string, dk: Dk): number {
  const t = TOL[op];
  if (!t) throw new Error(`no tolerance stated for op ${op}: add it to TOL`);
  return t[dk];
}

after(() => {
  if (process.env.GOLDEN_REPORT) console.log(report.join('\n'));
});

// ------------------------------------------------------------------ one test per case and dtype
const cases = JSON.parse(file.metadata.cases ?? '{}') as Record<string, string[]>;

test('fixture and runners cover the same cases', () => {
  assert.ok(file.metadata.torch_version, 'fixture metadata names the torch version');
  const missing = Object.keys(cases).filter((c) => !(c in RUN));
  const stale = Object.keys(RUN).filter((c) => !(c in cases));
  assert.deepEqual({ missing, stale }, { missing: [], stale: [] });
});

for (const [name, gradInputs] of Object.entries(cases)) {
  const op = name.split('.')[0]!;
  for (const dk of ['f64', 'f32'] as const) {
    test(`${name} (${dk}) matches torch ${file.metadata.torch_version}`, () => {
      const run = RUN[name];
      assert.ok(run, `no runner for fixture case ${name}`);
      const tol = tolFor(op, dk);
      const base = `${name}/${dk}/`;
      tidy(() => {
        const inputs: Inputs = {};
        for (const k of children(`${base}in/`)) {
          inputs[k] = load(`${base}in/${k}`);
          if (gradInputs.includes(k)) inputs[k].requiresGrad_(true);
        }
        const result = run(inputs);
        const outs = Array.isArray(result) ? result : [result];
        const expected = children(`${base}out/`);
        assert.equal(outs.length, expected.length, `${name}: ${outs.length} outputs, torch gives ${expected.length}`);
        let loss: Tensor | null = null;
        outs.forEach((o, i) => {
          expectClose(`${name} (${dk}) output ${i}`, op, o, load(`${base}out/${i}`), tol);
          if (file.tensors.has(`${base}w/${i}`)) {
            const term = o.mul(load(`${base}w/${i}`)).sum();
            loss = loss === null ? term : loss.add(term);
          }
        });
        if (gradInputs.length === 0) return;
        assert.ok(loss !== null, `${name}: inputs require grad but no output is differentiable`);
        (loss as Tensor).backward();
        for (const k of gradInputs) {
          const g = inputs[k]!.grad;
          assert.ok(g, `${name} (${dk}): input ${k} got no gradient`);
          expectClose(`${name} (${dk}) grad ${k}`, op, g, load(`${base}grad/${k}`), tol);
        }
      });
    });
  }
}

// ------------------------------------------------------------------ random numbers
test('randn/rand/randint/randperm from Generator(1234) are bit-equal to torch', () => {
  const g = new Generator(1234);
  const draws: [string, () => Tensor][] = [
    ['randn', () => randn([3, 5], { generator: g })],
    ['randn', () => randn([40], { generator: g })],
    ['randn', () => randn([2, 10], { generator: g, dtype: 'float64' })],
    ['rand', () => rand([7], { generator: g })],
    ['rand', () => rand([3, 9], { generator: g, dtype: 'float64' })],
    ['randint', () => randint(0, 10, [12], { generator: g })],
    ['randint', () => randint(-5, 5, [3, 4], { generator: g })],
    ['randperm', () => randperm(10, { generator: g })],
    ['randperm', () => randperm(37, { generator: g })],
    ['randn', () => randn([17], { generator: g })],
  ];
  tidy(() => draws.forEach(([kind, draw], i) => {
    expectClose(`rng draw ${i} (${kind})`, 'rng', draw(), load(`rng/${i}/${kind}`), 0);
  }));
});

// ------------------------------------------------------------------ nn init
test('manualSeed(0) then Linear, Conv2d, ConvTranspose2d, Embedding init bit-equal to torch', () => {
  manualSeed(0);
  const modules: [string, Module][] = [
    ['linear', new Linear(5, 3)],
    ['conv2d', new Conv2d(2, 4, 3)],
    ['convTranspose2d', new ConvTranspose2d(4, 2, 3, { stride: 2, padding: 1, outputPadding: 1 })],
    ['embedding', new Embedding(7, 3)],
  ];
  try {
    tidy(() => {
      for (const [m, mod] of modules) {
        const params = mod.namedParameters();
        assert.deepEqual(params.map(([n]) => n), children(`init/${m}/`), `${m}: parameter names`);
        for (const [n, p] of params) expectClose(`init ${m}.${n}`, 'init', p.detach(), load(`init/${m}/${n}`), 0);
      }
    });
  } finally {
    for (const [, mod] of modules) mod.dispose();
  }
});

// ------------------------------------------------------------------ optimizers
const OPTIMIZERS = {
  adam: (p: Tensor) => new Adam([['p', p]], { lr: 0.01 }),
  adam_wd: (p: Tensor) => new Adam([['p', p]], { lr: 0.02, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.05 }),
  adamw: (p: Tensor) => new AdamW([['p', p]], { lr: 0.01, weightDecay: 0.1 }),
};

for (const [oname, make] of Object.entries(OPTIMIZERS)) {
  const op = oname.startsWith('adamw') ? 'adamw' : 'adam';
  for (const dk of ['f64', 'f32'] as const) {
    test(`${oname} (${dk}): params and moments after each of 5 steps match torch`, () => {
      const tol = tolFor(op, dk);
      tidy(() => {
        const p = load(`optim/${dk}/param0`).requiresGrad_(true);
        const opt = make(p);
        for (let s = 0; s < 5; s++) {
          p.grad = load(`optim/${dk}/grad/${s}`);
          opt.step();
          const st = opt.stateDict().tensors;
          expectClose(`${oname} (${dk}) step ${s + 1} param`, op, p.detach(), load(`optim/${dk}/${oname}/${s}/param`), tol);
          expectClose(`${oname} (${dk}) step ${s + 1} exp_avg`, op, st.get('p.exp_avg')!, load(`optim/${dk}/${oname}/${s}/exp_avg`), tol);
          expectClose(`${oname} (${dk}) step ${s + 1} exp_avg_sq`, op, st.get('p.exp_avg_sq')!, load(`optim/${dk}/${oname}/${s}/exp_avg_sq`), tol);
        }
        for (const t of opt.stateDict().tensors.values()) t.dispose(); // optimizer state is kept outside tidy
      });
    });
  }
}

for (const dk of ['f64', 'f32'] as const) {
  test(`clipGradNorm (${dk}) returns torch's total norm and scales grads as clip_grad_norm_`, () => {
    const tol = tolFor('clipGradNorm', dk);
    tidy(() => {
      for (const c of ['clipped', 'unclipped']) {
        const base = `clip/${dk}/${c}/`;
        const a = zerosLike(load(`${base}grad_in/a`)).requiresGrad_(true);
        const b = zerosLike(load(`${base}grad_in/b`)).requiresGrad_(true);
        a.grad = load(`${base}grad_in/a`);
        b.grad = load(`${base}grad_in/b`);
        const maxNorm = c === 'clipped' ? 0.5 : 100;
        const total = clipGradNorm([a, b], maxNorm);
        expectClose(`clipGradNorm (${dk}) ${c} total norm`, 'clipGradNorm', total, load(`${base}total_norm`), tol);
        expectClose(`clipGradNorm (${dk}) ${c} grad a`, 'clipGradNorm', a.grad!, load(`${base}grad_out/a`), tol);
        expectClose(`clipGradNorm (${dk}) ${c} grad b`, 'clipGradNorm', b.grad!, load(`${base}grad_out/b`), tol);
      }
    });
  });
}
