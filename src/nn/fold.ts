// Folding BatchNorm into the convolution before it, for inference (eval mode only): a conv
// followed by y = (x - mean) / sqrt(var + eps) * gamma + beta is one conv with each output
// channel's weights scaled by s = gamma / sqrt(var + eps) and bias (b - mean) s + beta.
// Same values (to float rounding), one pass over memory fewer per pair.
import * as F from '../tensor/functional.js';
import { type Tensor, noGrad, keep, tidy, zeros } from '../tensor/index.js';
import { Layer } from './module.js';
import { BatchNorm2d, Conv2d, ConvTranspose2d, Sequential, conv2dOnnx, convTranspose2dOnnx } from './layers.js';
import type { OnnxGraph, OnnxValue } from './onnx-graph.js';
import { subPixelBias, subPixelConv, subPixelWeight } from './sub-pixel.js';

/**
 * A convolution with fixed (already folded) weights, in the source layer's layout; holds its own
 * tensors. A transposed convolution that runs as a sub-pixel convolution also keeps the sub-pixel
 * weight and bias, made once.
 */
export class FoldedConv extends Layer {
  constructor(readonly source: Conv2d | ConvTranspose2d, readonly weight: Tensor, readonly bias: Tensor, readonly subPixel: { weight: Tensor; bias: Tensor } | null = null) { super(); }
  forward(x: Tensor): Tensor {
    const src = this.source;
    if (!(src instanceof ConvTranspose2d)) return F.conv2d(x, this.weight, this.bias, src.options);
    if (!src.subPixel || !this.subPixel) return F.convTranspose2d(x, this.weight, this.bias, src.options);
    return subPixelConv(x, this.subPixel.weight, this.subPixel.bias, src.subPixel, F.checkConvTranspose2d(x, src.weight, src.bias, src.options).outSize);
  }
  /** The source layer's lowering with the folded weights, named `<conv path>.folded.weight` and `.bias`. */
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    const name = `${g.pathOf(this.source)}.folded`;
    const src = this.source;
    if (src instanceof ConvTranspose2d) return convTranspose2dOnnx(g, x, src, this.weight, this.bias, name);
    return conv2dOnnx(g, x, g.weight(`${name}.weight`, this.weight), g.weight(`${name}.bias`, this.bias), src.options);
  }
  override dispose(): void {
    for (const t of [this.weight, this.bias, this.subPixel?.weight, this.subPixel?.bias]) t?.dispose();
  }
}

export function foldConvBatchNorm(conv: Conv2d | ConvTranspose2d, bn: BatchNorm2d): FoldedConv {
  // keep() takes the folded tensors out of tidy; the intermediates are freed.
  return noGrad(() => tidy(() => {
    const scale = bn.weight.div(bn.runningVar.add(bn.eps).sqrt()); // (Cout,)
    const c = scale.shape[0]!;
    // Conv2d weights are (Cout, Cin, k, k); transposed-conv weights (Cin, Cout, k, k).
    const transposed = conv instanceof ConvTranspose2d;
    const w = conv.weight.mul(scale.reshape(transposed ? [1, c, 1, 1] : [c, 1, 1, 1]));
    const b = (conv.bias ?? zeros([c])).sub(bn.runningMean).mul(scale).add(bn.bias);
    // Channels-last weights make libtorch's oneDNN convolutions run, and hand on, NHWC activations:
    // the dli02 forward pass took 17% less time in PyTorch 1.13 here (the same values, to 5e-8).
    if (transposed && conv.subPixel) {
      const subPixel = { weight: keep(subPixelWeight(w, conv.subPixel).contiguous('channelsLast')), bias: keep(subPixelBias(b, conv.subPixel)) };
      return new FoldedConv(conv, keep(w), keep(b), subPixel);
    }
    return new FoldedConv(conv, keep(w.contiguous('channelsLast')), keep(b));
  }));
}

/** A new Sequential with every (conv, BatchNorm2d) pair folded; other layers are shared, not copied. */
export function foldBatchNorm(seq: Sequential): Sequential {
  const out: Layer[] = [];
  const layers = seq.layers;
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i]!;
    const next = layers[i + 1];
    if ((l instanceof Conv2d || l instanceof ConvTranspose2d) && next instanceof BatchNorm2d) {
      out.push(foldConvBatchNorm(l, next));
      i++;
    } else {
      out.push(l);
    }
  }
  return new Sequential(...out);
}
