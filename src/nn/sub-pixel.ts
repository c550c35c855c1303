// A transposed convolution computed as a sub-pixel convolution: an ordinary convolution with
// stride^2 times the output channels, then a pixel shuffle (Shi et al. 2016, "Real-Time Single
// Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network";
// the equivalence is worked out in Shi et al. 2016, "Is the deconvolution layer the same as a
// convolutional layer?").
//
// Along one axis, a transposed convolution with stride s, kernel k and padding p writes
//   y[o] = sum over (i, j) with o = s i - p + j of x[i] w[j].
// Split the outputs by phase, o = s m + r (0 <= r < s): with c = (r + p) mod s and
// d = floor((r + p) / s), the taps are j = c + s n and i = m + d - n, so every phase is a plain
// correlation of x with a few of w's taps at offsets e = d - n. Putting each phase's taps on a
// shared window of offsets [eMin, eMax] (zeros where a phase has none) gives one convolution with
// kernel eMax - eMin + 1 whose s^2 output-channel groups are the phases; pixelShuffle(s) puts them
// back in place. For dli02's transposed convolutions (kernel 3, stride 2, padding 1, output
// padding 1) that is a 2x2 convolution to 4 Cout channels; for kernel 2, stride 2 a 1x1.
//
// Same values to float rounding, though the convolution multiplies more zeros (16 taps per input
// pixel instead of 9 for dli02's). It is faster on a CPU all the same: libtorch runs it with oneDNN,
// while its transposed convolution is im2col + GEMM + col2im. Forward and backward of dli02's two
// transposed convolutions at batch 128 took 6.5 and 8.4 ms instead of 12.2 and 11.1 (5.7 and 7.7
// with channels-last activations; libtorch 1.13, 2 threads); the README's Speed section has the
// model-level figures.
import * as F from '../tensor/functional.js';
import { type Tensor, tensor, noGrad, tidy } from '../tensor/index.js';
import { pair } from '../tensor/check.js';
import type { OnnxGraph, OnnxValue } from './onnx-graph.js';

/** How one axis's kernel taps fall on the phases. */
interface AxisPlan {
  /** Kernel size of the sub-pixel convolution along this axis (eMax - eMin + 1). */
  size: number;
  /** Smallest input offset any phase reads (may be negative: zero padding before the input). */
  eMin: number;
  /** For phase r and window position q, the tap of w at index r * size + q; `kernel` means none (a zero). */
  taps: number[];
}

/** A transposed convolution's sub-pixel layout; see subPixelPlan. */
export interface SubPixelPlan {
  stride: number;
  kernel: [number, number];
  axes: [AxisPlan, AxisPlan];
}

function axisPlan(kernel: number, stride: number, padding: number): AxisPlan {
  const phases: [number, number][][] = []; // per phase: [offset e, tap j]
  for (let r = 0; r < stride; r++) {
    const c = (r + padding) % stride;
    const d = Math.floor((r + padding) / stride);
    const taps: [number, number][] = [];
    for (let n = 0; c + stride * n < kernel; n++) taps.push([d - n, c + stride * n]);
    phases.push(taps);
  }
  const offsets = phases.flat().map(([e]) => e);
  const eMin = Math.min(...offsets);
  const size = Math.max(...offsets) - eMin + 1;
  const taps: number[] = [];
  for (const phase of phases) {
    const byOffset = new Map(phase);
    for (let q = 0; q < size; q++) taps.push(byOffset.get(eMin + q) ?? kernel);
  }
  return { size, eMin, taps };
}

/**
 * The sub-pixel layout of a transposed convolution with this kernel and these options, or null
 * where the plain kernel must run: groups or dilation above 1, or different strides along H and W.
 */
export function subPixelPlan(kernel: [number, number], o: F.ConvTranspose2dOptions): SubPixelPlan | null {
  const stride = pair('ConvTranspose2d: stride', o.stride ?? 1, 1);
  const padding = pair('ConvTranspose2d: padding', o.padding ?? 0);
  const dilation = pair('ConvTranspose2d: dilation', o.dilation ?? 1, 1);
  if ((o.groups ?? 1) !== 1 || dilation[0] !== 1 || dilation[1] !== 1 || stride[0] !== stride[1]) return null;
  const s = stride[0];
  return { stride: s, kernel, axes: [axisPlan(kernel[0], s, padding[0]), axisPlan(kernel[1], s, padding[1])] };
}

/**
 * The sub-pixel convolution's weight (Cout s^2, Cin, KH, KW) from a transposed convolution's
 * (Cin, Cout, kH, kW), as autograd ops, so gradients flow back to the original weight. Output
 * channel co s^2 + rh s + rw is phase (rh, rw) of channel co, the order pixelShuffle expects.
 */
export function subPixelWeight(weight: Tensor, plan: SubPixelPlan): Tensor {
  const [cin, cout] = weight.shape as [number, number];
  const { stride: s, axes: [h, w] } = plan;
  const indexH = tensor(h.taps, [h.taps.length], { dtype: 'int64' });
  const indexW = tensor(w.taps, [w.taps.length], { dtype: 'int64' });
  // A zero tap at index k of each kernel axis, then each phase's taps picked out along H and W.
  const padded = F.pad(weight.permute([1, 0, 2, 3]), [0, 1, 0, 1]); // (Cout, Cin, kH + 1, kW + 1)
  return padded.indexSelect(2, indexH).indexSelect(3, indexW) // (Cout, Cin, s KH, s KW)
    .reshape([cout, cin, s, h.size, s, w.size]).permute([0, 2, 4, 1, 3, 5]).reshape([cout * s * s, cin, h.size, w.size]);
}

/** Each output channel's bias repeated for its s^2 phases. */
export function subPixelBias(bias: Tensor, plan: SubPixelPlan): Tensor {
  const s2 = plan.stride * plan.stride;
  return bias.reshape([-1, 1]).repeat([1, s2]).reshape([-1]);
}

/** Pads (or, for a negative amount, crops) one spatial dim of x (N, C, H, W). */
function padOrCrop(x: Tensor, dim: 2 | 3, before: number, after: number): Tensor {
  let y = x;
  if (before < 0 || after < 0) {
    const start = Math.max(0, -before);
    y = y.narrow(dim, start, y.shape[dim]! - start - Math.max(0, -after));
  }
  const b = Math.max(0, before);
  const a = Math.max(0, after);
  if (b === 0 && a === 0) return y;
  return F.pad(y, dim === 3 ? [b, a] : [0, 0, b, a]);
}

/**
 * The transposed convolution's output from the sub-pixel weight and bias (subPixelWeight,
 * subPixelBias), for an output of outSize (checkConvTranspose2d gives it). The weight follows x
 * into channels-last when x is channels-last, as torch's convolution picks its layout.
 */
export function subPixelConv(x: Tensor, weight: Tensor, bias: Tensor | null, plan: SubPixelPlan, outSize: [number, number]): Tensor {
  const s = plan.stride;
  const [, , height, width] = x.shape as [number, number, number, number];
  const [h, w] = plan.axes;
  const mh = Math.ceil(outSize[0] / s);
  const mw = Math.ceil(outSize[1] / s);
  // Window position m of the sub-pixel convolution reads input rows m + eMin .. m + eMin + size - 1.
  const xp = padOrCrop(padOrCrop(x, 2, -h.eMin, mh - 1 + h.eMin + h.size - 1 - (height - 1)), 3, -w.eMin, mw - 1 + w.eMin + w.size - 1 - (width - 1));
  const channelsLast = !x.isContiguous() && x.isContiguous('channelsLast');
  const y = F.pixelShuffle(F.conv2d(xp, channelsLast ? weight.contiguous('channelsLast') : weight, bias), s); // (N, Cout, s mh, s mw)
  return s * mh === outSize[0] && s * mw === outSize[1] ? y : y.narrow(2, 0, outSize[0]).narrow(3, 0, outSize[1]);
}

/** conv_transpose2d's values, through a sub-pixel convolution; for a plan subPixelPlan gave. */
export function convTranspose2dSubPixel(x: Tensor, weight: Tensor, bias: Tensor | null, plan: SubPixelPlan, o: F.ConvTranspose2dOptions): Tensor {
  const { outSize } = F.checkConvTranspose2d(x, weight, bias, o);
  return subPixelConv(x, subPixelWeight(weight, plan), bias ? subPixelBias(bias, plan) : null, plan, outSize);
}

/**
 * The sub-pixel form as ONNX nodes: Conv (with the padding of padOrCrop as its pads, a crop as a
 * Slice before it) then DepthToSpace in CRD order, which is pixelShuffle's channel order, then a
 * Slice where s * ceil(out / s) overshoots. Weights come from the transposed convolution's
 * (Cin, Cout, kH, kW) `weight`, named `${name}.sub_pixel_weight` and `.sub_pixel_bias`.
 */
export function subPixelConvOnnx(g: OnnxGraph, x: OnnxValue, weight: Tensor, bias: Tensor | null, plan: SubPixelPlan, outSize: [number, number], name: string): OnnxValue {
  const s = plan.stride;
  const m = outSize.map((o) => Math.ceil(o / s)) as [number, number];
  let h = x;
  const pads: number[] = [];
  plan.axes.forEach((a, i) => {
    const size = x.shape[2 + i] as number;
    const before = -a.eMin;
    const after = m[i]! - 1 + a.eMin + a.size - 1 - (size - 1);
    const start = Math.max(0, -before);
    if (before < 0 || after < 0) h = g.slice(h, 2 + i, start, size - Math.max(0, -after));
    pads[i] = Math.max(0, before);
    pads[i + 2] = Math.max(0, after);
  });
  const w = noGrad(() => tidy(() => subPixelWeight(weight, plan).contiguous()));
  const b = bias ? noGrad(() => tidy(() => subPixelBias(bias, plan))) : null;
  const conv = g.conv(h, g.weight(`${name}.sub_pixel_weight`, w), b ? g.weight(`${name}.sub_pixel_bias`, b) : null, { strides: [1, 1], pads, dilations: [1, 1], group: 1 });
  w.dispose();
  b?.dispose();
  const cout = (conv.shape[1] as number) / (s * s);
  let y = g.op('DepthToSpace', [conv], [x.shape[0]!, cout, s * m[0], s * m[1]], { blocksize: { i: s }, mode: { s: 'CRD' } });
  if (s * m[0] !== outSize[0]) y = g.slice(y, 2, 0, outSize[0]);
  if (s * m[1] !== outSize[1]) y = g.slice(y, 3, 0, outSize[1]);
  return y;
}
