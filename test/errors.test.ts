// Errors: libtorch's exceptions reach JS as Errors naming the op; our TypeScript checks refuse bad
// arguments first, naming both sides of a mismatch; a failed loadStateDict changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArgumentError, Tensor, cat, liveTensors, ones, tensor, tidy, zeros } from '../src/tensor/index.js';
import { native } from '../src/tensor/native.js';
import * as F from '../src/tensor/functional.js';
import { Linear, ReLU, Sequential } from '../src/nn/index.js';

/** Asserts fn throws an instance of cls whose message matches re, and returns the message. */
function throwsWith(fn: () => unknown, cls: new (...a: never[]) => Error, re: RegExp): string {
  let msg = '';
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    msg = (e as Error).message;
    assert.match(msg, re);
    return true;
  });
  return msg;
}

// A tensor on the "meta" device (shape and dtype, no data): lets the device checks run without a GPU.
function onMeta(t: Tensor): Tensor {
  return new Tensor(native.to!(t.handle, 6 /* float32 */, 'meta'));
}

// ------------------------------------------------------------------ libtorch exceptions
test('a libtorch exception reaches JS as an Error with the op name and libtorch\'s message', () => tidy(() => {
  const [img2, k3, table, badIndex, logits, badTarget] = [
    ones([1, 1, 2, 2]), ones([1, 1, 3, 3]), ones([3, 2]), tensor([5], [1], { dtype: 'int64' }), zeros([2, 3]), tensor([0, 7], [2], { dtype: 'int64' }),
  ];
  const before = liveTensors();
  // Our checks pass (channels agree), libtorch refuses: the kernel is larger than the input.
  const msg = throwsWith(() => F.conv2d(img2, k3), Error, /^conv2d: .*Kernel size can't be greater than actual input size/);
  assert.ok(!/ArgumentError/.test(msg));
  throwsWith(() => F.maxPool2d(img2, 3), Error, /^maxPool2d: .*Output size is too small/);
  throwsWith(() => table.indexSelect(0, badIndex), Error, /^indexSelect: index out of range/);
  throwsWith(() => F.crossEntropy(logits, badTarget), Error, /^crossEntropy: Target 7 is out of bounds/);
  assert.equal(liveTensors(), before, 'a failed call leaves no handle behind');
}));

test('calling the addon directly: libtorch\'s shape error, prefixed with the entry point', () => tidy(() => {
  const a = ones([2, 3]);
  const b = ones([4, 5]);
  throwsWith(() => native.matmul!(a.handle, b.handle), Error, /^matmul: mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)/);
  throwsWith(() => native.matmul!(a.handle, null), TypeError, /^matmul: argument 1 must be a tensor handle made by ddpm-ts, got null$/);
  assert.deepEqual(a.matmul(ones([3, 1])).toArray(), [3, 3], 'the engine works after an exception');
}));

test('backward twice through a freed graph: libtorch\'s message under "backward"', () => tidy(() => {
  const x = ones([2], { requiresGrad: true });
  const y = x.mul(x).sum();
  y.backward();
  throwsWith(() => y.backward(), Error, /^backward: Trying to backward through the graph a second time/);
}));

// ------------------------------------------------------------------ TypeScript checks: shapes
test('shape mismatches are refused before libtorch, naming both shapes', () => tidy(() => {
  throwsWith(() => ones([2, 3]).add(ones([4])), ArgumentError, /^add: shapes \[2, 3\] and \[4\] cannot broadcast \(size 3 vs 4 at dim -1\)/);
  throwsWith(() => ones([2, 3]).matmul(ones([4, 5])), ArgumentError,
    /^matmul: shapes \[2, 3\] and \[4, 5\] do not match: the last dim of the first \(3\) must equal the second-to-last dim of the second \(4\)/);
  throwsWith(() => F.conv2d(ones([1, 2, 4, 4]), ones([1, 3, 3, 3])), ArgumentError,
    /^conv2d: input \[1, 2, 4, 4\] has 2 channels, but weight \[1, 3, 3, 3\] with groups=1 expects 3/);
  throwsWith(() => F.conv2d(ones([1, 3, 4, 4]), ones([2, 3, 3, 3]), ones([3])), ArgumentError, /^conv2d: bias must have shape \[2\], got \[3\]/);
  throwsWith(() => cat([ones([2, 3]), ones([2, 4])], 0), ArgumentError,
    /^cat: tensor 1 has shape \[2, 4\], which does not match tensor 0's \[2, 3\] outside dim 0/);
  throwsWith(() => F.linear(ones([2, 3]), ones([4, 5])), ArgumentError,
    /^linear: input of shape \[2, 3\] does not match weight \[4, 5\]: the last input dim must be 5/);
  throwsWith(() => F.mseLoss(ones([2, 3]), ones([3])), ArgumentError, /^mseLoss: input \[2, 3\] and target \[3\] must have the same shape/);
}));

// ------------------------------------------------------------------ dtypes
test('mixed float dtypes promote as torch does in add, cat and mseLoss', () => tidy(() => {
  const f = ones([2, 3]);
  const d = ones([2, 3], { dtype: 'float64' });
  assert.equal(f.add(d).dtype, 'float64');
  assert.equal(cat([f, d]).dtype, 'float64');
  assert.equal(F.mseLoss(f, d).dtype, 'float64');
}));

test('dtype mismatches in matmul, linear and conv2d are refused naming the op and both dtypes', () => tidy(() => {
  // No TS dtype check here yet: libtorch's message (in torch's names Float/Double) names both.
  const both = /(Float|float32).*(Double|float64)/i;
  const f = (s: number[]) => ones(s);
  const d = (s: number[]) => ones(s, { dtype: 'float64' });
  assert.match(throwsWith(() => f([2, 3]).matmul(d([3, 4])), Error, /^matmul: /), both);
  assert.match(throwsWith(() => F.linear(f([2, 3]), d([4, 3])), Error, /^linear: /), both);
  assert.match(throwsWith(() => F.conv2d(f([1, 1, 4, 4]), d([1, 1, 3, 3])), Error, /^conv2d: /), both);
  assert.match(throwsWith(() => F.conv2d(f([1, 1, 4, 4]), f([1, 1, 3, 3]), d([1])), Error, /^conv2d: /), /float.*double/i);
}));

// ------------------------------------------------------------------ devices
test('device mismatches are refused naming both devices, with a hint', () => tidy(() => {
  const hint = /tensors are on different devices: cpu and meta; move one with \.to\('cpu'\)/;
  throwsWith(() => ones([2, 3]).add(onMeta(ones([2, 3]))), ArgumentError, new RegExp(`^add: ${hint.source}`));
  throwsWith(() => ones([2, 3]).matmul(onMeta(ones([3, 2]))), ArgumentError, new RegExp(`^matmul: ${hint.source}`));
  throwsWith(() => F.conv2d(ones([1, 1, 4, 4]), onMeta(ones([1, 1, 3, 3]))), ArgumentError, new RegExp(`^conv2d: ${hint.source}`));
  throwsWith(() => cat([ones([2]), onMeta(ones([2]))]), ArgumentError, new RegExp(`^cat: ${hint.source}`));
  throwsWith(() => F.linear(ones([2, 3]), onMeta(ones([4, 3]))), ArgumentError, new RegExp(`^linear: ${hint.source}`));
  // mseLoss has no TS device check; libtorch's message names both devices.
  throwsWith(() => F.mseLoss(ones([2]), onMeta(ones([2]))), Error, /^mseLoss: .*same device.*(meta and cpu|cpu and meta)/);
}));

// ------------------------------------------------------------------ loadStateDict: all or nothing
function makeNet(): Sequential {
  return new Sequential(new Linear(3, 2), new ReLU(), new Linear(2, 1));
}

function snapshot(net: Sequential): Map<string, number[]> {
  return new Map([...net.stateDict()].map(([k, t]) => [k, t.toArray()]));
}

/** A full, valid state dict of the net's shapes, filled with `value`, then edited by `edit`. */
function stateOf(net: Sequential, value: number, edit: (m: Map<string, Tensor>) => void): Map<string, Tensor> {
  const m = new Map([...net.stateDict()].map(([k, t]) => [k, zeros(t.shape).add(value)]));
  edit(m);
  return m;
}

test('loadStateDict refuses wrong shapes, dtypes, missing and extra keys, and changes nothing', () => {
  const net = makeNet();
  try {
    tidy(() => {
      const before = snapshot(net);
      const cases: [string, (m: Map<string, Tensor>) => void, RegExp][] = [
        ['wrong shape', (m) => m.set('0.weight', zeros([2, 4])), /0\.weight: shape \[2, 4\] in state dict, model expects \[2, 3\]/],
        ['wrong dtype', (m) => m.set('2.bias', zeros([1], { dtype: 'float64' })), /2\.bias: dtype float64 in state dict, model expects float32/],
        ['missing key', (m) => m.delete('2.weight'), /missing 1 tensor\(s\): 2\.weight/],
        ['extra key', (m) => m.set('3.weight', zeros([1])), /unexpected 1 tensor\(s\): 3\.weight/],
      ];
      for (const [what, edit, re] of cases) {
        // Every other entry is valid and differs from the module: a partial load would show.
        throwsWith(() => net.loadStateDict(stateOf(net, 7, edit)), ArgumentError, new RegExp(`^cannot load state dict into Sequential: .*${re.source}`));
        assert.deepEqual(snapshot(net), before, `${what}: the module changed after a failed load`);
      }
      const all = throwsWith(() => net.loadStateDict(stateOf(net, 7, (m) => {
        m.delete('0.bias');
        m.set('extra', zeros([1]));
        m.set('2.weight', zeros([5]));
      })), ArgumentError, /missing 1 tensor\(s\): 0\.bias; unexpected 1 tensor\(s\): extra; 2\.weight: shape \[5\]/);
      assert.ok(all.length < 400, 'one message lists every problem');
      assert.deepEqual(snapshot(net), before);

      net.loadStateDict(stateOf(net, 7, () => {}));
      for (const v of snapshot(net).values()) assert.ok(v.every((x) => x === 7), 'a valid state dict loads');
    });
  } finally {
    net.dispose();
  }
});
