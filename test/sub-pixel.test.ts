// Transposed convolution as sub-pixel convolution (src/nn/sub-pixel.ts) against libtorch's own
// conv_transpose2d kernel: values and all three gradients, over kernels, strides, paddings,
// output paddings and input sizes, in both memory formats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, randn, tidy, noGrad, type Tensor } from '../src/tensor/index.js';
import * as F from '../src/tensor/functional.js';
import { ConvTranspose2d } from '../src/nn/index.js';
import { subPixelPlan, convTranspose2dSubPixel, type SubPixelPlan } from '../src/nn/sub-pixel.js';
import { assertClose } from './helpers.js';

interface Case { kernel: [number, number]; stride: number; padding: [number, number]; outputPadding: number; size: [number, number] }

/** Every (kernel, stride, padding, output padding) up to kernel 5 and stride 3 whose output is at least 1x1. */
function cases(): Case[] {
  const out: Case[] = [];
  for (const k of [1, 2, 3, 4, 5]) {
    for (const s of [1, 2, 3]) {
      for (let p = 0; p < k + 1; p++) {
        for (let op = 0; op < s; op++) {
          for (const n of [1, 3, 4]) {
            if ((n - 1) * s - 2 * p + k + op >= 1) out.push({ kernel: [k, k], stride: s, padding: [p, p], outputPadding: op, size: [n, n] });
          }
        }
      }
    }
  }
  // Non-square kernels, paddings and inputs.
  out.push({ kernel: [3, 2], stride: 2, padding: [1, 0], outputPadding: 1, size: [4, 3] });
  out.push({ kernel: [2, 5], stride: 3, padding: [0, 2], outputPadding: 2, size: [2, 5] });
  out.push({ kernel: [4, 1], stride: 2, padding: [2, 0], outputPadding: 0, size: [5, 1] });
  return out;
}

function leaf(t: Tensor): Tensor { return t.detach().requiresGrad_(); }

test('sub-pixel convolution equals conv_transpose2d in value and in the gradients of input, weight and bias', () => {
  const gen = new Generator(0);
  let checked = 0;
  for (const c of cases()) {
    for (const channelsLast of [false, true]) {
      tidy(() => {
        const o = { stride: c.stride, padding: c.padding, outputPadding: c.outputPadding };
        const plan = subPixelPlan(c.kernel, o);
        assert.ok(plan, `a plan for ${JSON.stringify(c)}`);
        let x0 = randn([2, 3, ...c.size], { generator: gen });
        if (channelsLast) x0 = x0.contiguous('channelsLast');
        const w0 = randn([3, 4, ...c.kernel], { generator: gen });
        const b0 = randn([4], { generator: gen });
        const [xa, wa, ba, xb, wb, bb] = [x0, w0, b0, x0, w0, b0].map(leaf) as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
        const expected = F.convTranspose2d(xa, wa, ba, o);
        const actual = convTranspose2dSubPixel(xb, wb, bb, plan, o);
        const what = `${JSON.stringify(c)}${channelsLast ? ' channels-last' : ''}`;
        assertClose(`${what}: output`, actual, expected, 1e-5, 1e-5);
        const g = randn(expected.shape, { generator: gen });
        expected.mul(g).sum().backward();
        actual.mul(g).sum().backward();
        assertClose(`${what}: d/dx`, xb.grad!, xa.grad!, 1e-5, 1e-5);
        assertClose(`${what}: d/dweight`, wb.grad!, wa.grad!, 1e-5, 1e-5);
        assertClose(`${what}: d/dbias`, bb.grad!, ba.grad!, 1e-5, 1e-5);
        checked++;
      });
    }
  }
  assert.ok(checked > 300, `checked ${checked} cases`);
});

test('the plan is a 2x2 convolution for dli02\'s transposed convolutions and a 1x1 for kernel 2, stride 2', () => {
  const dli02 = subPixelPlan([3, 3], { stride: 2, padding: 1, outputPadding: 1 })!;
  assert.deepEqual(dli02.axes.map((a) => a.size), [2, 2]);
  // Even outputs take tap 1 at offset 0; odd outputs tap 2 at offset 0 and tap 0 at offset 1 (3 = a zero).
  assert.deepEqual(dli02.axes[0].taps, [1, 3, 2, 0]);
  const k2: SubPixelPlan = subPixelPlan([2, 2], { stride: 2 })!;
  assert.deepEqual(k2.axes.map((a) => [a.size, a.eMin, a.taps]), [[1, 0, [0, 1]], [1, 0, [0, 1]]]);
});

test('groups, dilation and unequal strides keep libtorch\'s transposed convolution', () => {
  assert.equal(subPixelPlan([3, 3], { stride: 2, groups: 2 }), null);
  assert.equal(subPixelPlan([3, 3], { stride: 2, dilation: 2 }), null);
  assert.equal(subPixelPlan([3, 3], { stride: [2, 1] }), null);
  const grouped = new ConvTranspose2d(4, 4, 3, { stride: 2, groups: 2 });
  assert.equal(grouped.subPixel, null);
  noGrad(() => tidy(() => {
    const x = randn([1, 4, 3, 3]);
    assertClose('grouped layer', grouped.forward(x), F.convTranspose2d(x, grouped.weight, grouped.bias, grouped.options), 0);
  }));
  grouped.dispose();
});

test('a sub-pixel layer refuses bad input with conv_transpose2d\'s messages, naming its own weight', () => {
  const layer = new ConvTranspose2d(8, 4, 3, { stride: 2, padding: 1, outputPadding: 1 });
  assert.ok(layer.subPixel);
  tidy(() => {
    assert.throws(() => layer.forward(randn([2, 5, 4, 4])), /convTranspose2d: input \[2, 5, 4, 4\] has 5 channels, but weight \[8, 4, 3, 3\] expects 8/);
    assert.throws(() => layer.forward(randn([8, 4, 4])), /convTranspose2d: expected input of shape \(N, C, H, W\), got \[8, 4, 4\]/);
  });
  const tooSmall = new ConvTranspose2d(2, 2, 1, { padding: 1 });
  tidy(() => assert.throws(() => tooSmall.forward(randn([1, 2, 1, 1])), /gives an output of -1x-1; it must be at least 1x1/));
  layer.dispose();
  tooSmall.dispose();
});
