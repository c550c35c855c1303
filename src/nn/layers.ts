// The layers the U-Net presets use, with torch.nn's parameter names, shapes and initialisation.
import * as F from '../tensor/functional.js';
import { type Tensor, cat, empty, full, ones, zeros, noGrad, tidy, ArgumentError } from '../tensor/index.js';
import { Layer } from './module.js';
import { biasUniform, fans, kaimingUniformDefault, normal } from './init.js';
import { type SubPixelPlan, subPixelPlan, convTranspose2dSubPixel, subPixelConvOnnx } from './sub-pixel.js';
import { pair } from '../tensor/check.js';
import type { Dim, OnnxGraph, OnnxValue } from './onnx-graph.js';

type Pair = number | [number, number];

export class Linear extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = true) {
    super();
    this.weight = this.registerParameter('weight', empty([outFeatures, inFeatures]));
    kaimingUniformDefault(this.weight);
    this.bias = bias ? this.registerParameter('bias', empty([outFeatures])) : null;
    if (this.bias) biasUniform(this.bias, inFeatures);
  }
  forward(x: Tensor): Tensor { return F.linear(x, this.weight, this.bias); }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    const shape = [...x.shape.slice(0, -1), this.outFeatures];
    if (x.shape.length === 2) {
      const inputs = [x, g.param(this, 'weight', this.weight), this.bias ? g.param(this, 'bias', this.bias) : null];
      return g.op('Gemm', this.bias ? inputs : inputs.slice(0, 2), shape, { transB: { i: 1 } });
    }
    const y = g.matmul(x, g.weight(`${g.pathOf(this)}.weight_transposed`, noGrad(() => this.weight.transpose(0, 1).contiguous())));
    return this.bias ? g.add(y, g.param(this, 'bias', this.bias)) : y;
  }
}

export interface Conv2dOptions { stride?: Pair; padding?: Pair; dilation?: Pair; groups?: number; bias?: boolean }

export class Conv2d extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: Pair, readonly options: Conv2dOptions = {}) {
    super();
    const [kh, kw] = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
    const groups = options.groups ?? 1;
    if (inChannels % groups || outChannels % groups) throw new ArgumentError(`Conv2d: channels ${inChannels} -> ${outChannels} are not divisible by groups=${groups}`);
    this.weight = this.registerParameter('weight', empty([outChannels, inChannels / groups, kh, kw]));
    kaimingUniformDefault(this.weight);
    this.bias = options.bias === false ? null : this.registerParameter('bias', empty([outChannels]));
    if (this.bias) biasUniform(this.bias, fans(this.weight.shape).fanIn);
  }
  forward(x: Tensor): Tensor { return F.conv2d(x, this.weight, this.bias, this.options); }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    return conv2dOnnx(g, x, g.param(this, 'weight', this.weight), this.bias ? g.param(this, 'bias', this.bias) : null, this.options);
  }
}

/** Conv with torch's conv2d options (padding the same on both sides of an axis). */
export function conv2dOnnx(g: OnnxGraph, x: OnnxValue, w: OnnxValue, b: OnnxValue | null, o: Conv2dOptions): OnnxValue {
  const [ph, pw] = pair('Conv2d: padding', o.padding ?? 0);
  return g.conv(x, w, b, {
    strides: pair('Conv2d: stride', o.stride ?? 1, 1), pads: [ph, pw, ph, pw], dilations: pair('Conv2d: dilation', o.dilation ?? 1, 1), group: o.groups ?? 1,
  });
}

export interface ConvTranspose2dOptions extends Conv2dOptions { outputPadding?: Pair }

/**
 * torch.nn.ConvTranspose2d. Without groups or dilation it runs as a sub-pixel convolution
 * (nn/sub-pixel.ts): the same values to float rounding, about twice as fast on a CPU.
 */
export class ConvTranspose2d extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  /** The sub-pixel layout forward uses, or null where libtorch's transposed convolution runs. */
  readonly subPixel: SubPixelPlan | null;
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: Pair, readonly options: ConvTranspose2dOptions = {}) {
    super();
    const [kh, kw] = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
    this.subPixel = subPixelPlan([kh, kw], options);
    const groups = options.groups ?? 1;
    // torch stores transposed-conv weights as (in, out/groups, kH, kW); its fan_in is then out/groups * k * k.
    this.weight = this.registerParameter('weight', empty([inChannels, outChannels / groups, kh, kw]));
    kaimingUniformDefault(this.weight);
    this.bias = options.bias === false ? null : this.registerParameter('bias', empty([outChannels]));
    if (this.bias) biasUniform(this.bias, fans(this.weight.shape).fanIn);
  }
  forward(x: Tensor): Tensor {
    return this.subPixel
      ? convTranspose2dSubPixel(x, this.weight, this.bias, this.subPixel, this.options)
      : F.convTranspose2d(x, this.weight, this.bias, this.options);
  }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue { return convTranspose2dOnnx(g, x, this, this.weight, this.bias, g.pathOf(this)); }
}

/**
 * A transposed convolution with the layer's options and these weights (its own, or BatchNorm-folded
 * ones; initializers named after `name`): as Conv + DepthToSpace where the layer runs as a sub-pixel
 * convolution and the graph asks for that form, else as ONNX's ConvTranspose.
 */
export function convTranspose2dOnnx(g: OnnxGraph, x: OnnxValue, layer: ConvTranspose2d, weight: Tensor, bias: Tensor | null, name: string): OnnxValue {
  const o = layer.options;
  const k = weight.shape.slice(2) as [number, number];
  const stride = pair('ConvTranspose2d: stride', o.stride ?? 1, 1);
  const padding = pair('ConvTranspose2d: padding', o.padding ?? 0);
  const dilation = pair('ConvTranspose2d: dilation', o.dilation ?? 1, 1);
  const outputPadding = pair('ConvTranspose2d: outputPadding', o.outputPadding ?? 0);
  // torch's output size: (H - 1) s - 2 p + d (k - 1) + output_padding + 1.
  const outSize = [0, 1].map((i) => ((x.shape[2 + i] as number) - 1) * stride[i]! - 2 * padding[i]! + dilation[i]! * (k[i]! - 1) + outputPadding[i]! + 1) as [number, number];
  if (layer.subPixel && g.options.convTranspose === 'subPixel') return subPixelConvOnnx(g, x, weight, bias, layer.subPixel, outSize, name);
  const inputs = [x, g.weight(`${name}.weight`, weight), bias ? g.weight(`${name}.bias`, bias) : null];
  return g.op('ConvTranspose', bias ? inputs : inputs.slice(0, 2), [x.shape[0]!, weight.shape[1]! * (o.groups ?? 1), ...outSize], {
    kernel_shape: { ints: k }, strides: { ints: stride }, pads: { ints: [padding[0], padding[1], padding[0], padding[1]] },
    dilations: { ints: dilation }, output_padding: { ints: outputPadding }, group: { i: o.groups ?? 1 },
  });
}

export class BatchNorm2d extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  readonly numBatchesTracked: Tensor;
  constructor(readonly numFeatures: number, readonly eps = 1e-5, readonly momentum = 0.1) {
    super();
    this.weight = this.registerParameter('weight', ones([numFeatures]));
    this.bias = this.registerParameter('bias', zeros([numFeatures]));
    this.runningMean = this.registerBuffer('running_mean', zeros([numFeatures]));
    this.runningVar = this.registerBuffer('running_var', ones([numFeatures]));
    this.numBatchesTracked = this.registerBuffer('num_batches_tracked', zeros([], { dtype: 'int64' }));
  }
  /**
   * SyncBatchNorm (PyTorch's torch.nn.SyncBatchNorm): when set, training normalises with the
   * statistics of the global batch of every data-parallel process. It sums a tensor over the
   * processes, differentiably (its backward sums the gradients), so the input's gradient is that of
   * the global batch's loss.
   */
  crossProcessSum: ((t: Tensor) => Tensor) | null = null;

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.numFeatures) {
      throw new ArgumentError(`BatchNorm2d(${this.numFeatures}): expected input (N, ${this.numFeatures}, H, W), got [${x.shape.join(', ')}]`);
    }
    if (this.training) noGrad(() => this.numBatchesTracked.add_(ones([], { dtype: 'int64' })));
    if (this.training && this.crossProcessSum) return this.#syncForward(x, this.crossProcessSum);
    return F.batchNorm(x, this.runningMean, this.runningVar, this.weight, this.bias, { training: this.training, momentum: this.momentum, eps: this.eps });
  }
  /** Eval mode: normalised by the running statistics. */
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    if (this.training) throw new ArgumentError(`ONNX export: BatchNorm2d ${g.pathOf(this)} is in training mode; call model.eval() before exporting`);
    const p = (key: string, t: Tensor): OnnxValue => g.param(this, key, t);
    return g.op('BatchNormalization', [x, p('weight', this.weight), p('bias', this.bias), p('running_mean', this.runningMean), p('running_var', this.runningVar)], x.shape, { epsilon: { f: this.eps } });
  }

  // Per-channel sum, sum of squares and count (in float64: E[x^2] - E[x]^2 cancels), summed over the
  // processes; then batch norm with the global mean and biased variance, and the running statistics
  // updated with the unbiased one, as torch.nn.SyncBatchNorm and batch_norm do.
  #syncForward(x: Tensor, sum: (t: Tensor) => Tensor): Tensor {
    return tidy(() => {
      const c = this.numFeatures;
      const [n, , h, w] = x.shape as [number, number, number, number];
      const xd = x.double();
      const local = cat([xd.sum([0, 2, 3]), xd.square().sum([0, 2, 3]), full([1], n * h * w, { dtype: 'float64' })]); // (2C + 1,)
      const [s, ss, count] = sum(local).split([c, c, 1]) as [Tensor, Tensor, Tensor];
      const total = count.item();
      const mean = s.div(total); // (C,)
      const variance = ss.div(total).sub(mean.square()); // (C,) biased
      noGrad(() => {
        this.runningMean.mul_(1 - this.momentum).add_(mean.float(), this.momentum);
        this.runningVar.mul_(1 - this.momentum).add_(variance.mul(total / Math.max(total - 1, 1)).float(), this.momentum);
      });
      const scale = variance.add(this.eps).rsqrt().float().mul(this.weight).reshape([1, c, 1, 1]);
      return x.sub(mean.float().reshape([1, c, 1, 1])).mul(scale).add(this.bias.reshape([1, c, 1, 1])); // (N, C, H, W)
    });
  }
}

export class GroupNorm extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly numGroups: number, readonly numChannels: number, readonly eps = 1e-5) {
    super();
    if (numChannels % numGroups) throw new ArgumentError(`GroupNorm: ${numChannels} channels cannot be split into ${numGroups} groups`);
    this.weight = this.registerParameter('weight', ones([numChannels]));
    this.bias = this.registerParameter('bias', zeros([numChannels]));
  }
  forward(x: Tensor): Tensor { return F.groupNorm(x, this.numGroups, this.weight, this.bias, this.eps); }
  /**
   * As PyTorch's exporter writes it: InstanceNormalization over (B, groups, rest), then the
   * per-channel scale and shift. onnxruntime-web's WebGPU provider has no GroupNormalization, and
   * opset 18's was specified per group rather than per channel (corrected in opset 21).
   */
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    const grouped = g.reshape(x, [null, this.numGroups, -1]); // (B, G, C/G H W)
    const ones = g.constant(new Float32Array(this.numGroups).fill(1), [this.numGroups]);
    const zeros = g.constant(new Float32Array(this.numGroups), [this.numGroups]);
    const normed = g.reshape(g.op('InstanceNormalization', [grouped, ones, zeros], grouped.shape, { epsilon: { f: this.eps } }), [...x.shape]);
    const perChannel = [this.numChannels, ...x.shape.slice(2).map(() => 1)];
    return g.add(g.mul(normed, g.param(this, 'weight', this.weight, perChannel)), g.param(this, 'bias', this.bias, perChannel));
  }
}

export class LayerNorm extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly normalizedShape: number[], readonly eps = 1e-5) {
    super();
    this.weight = this.registerParameter('weight', ones(normalizedShape));
    this.bias = this.registerParameter('bias', zeros(normalizedShape));
  }
  forward(x: Tensor): Tensor { return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps); }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    const inputs = [x, g.param(this, 'weight', this.weight), g.param(this, 'bias', this.bias)];
    return g.op('LayerNormalization', inputs, x.shape, { axis: { i: -this.normalizedShape.length }, epsilon: { f: this.eps } });
  }
}

export class Embedding extends Layer {
  readonly weight: Tensor;
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number) {
    super();
    this.weight = this.registerParameter('weight', empty([numEmbeddings, embeddingDim]));
    normal(this.weight);
  }
  forward(indices: Tensor): Tensor { return F.embedding(this.weight, indices); }
  override onnx(g: OnnxGraph, indices: OnnxValue): OnnxValue {
    return g.op('Gather', [g.param(this, 'weight', this.weight), indices], [...indices.shape, this.embeddingDim], { axis: { i: 0 } });
  }
}

export class Dropout extends Layer {
  constructor(readonly p = 0.5) { super(); }
  forward(x: Tensor): Tensor { return this.p === 0 ? x : F.dropout(x, this.p, this.training); }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    if (this.training && this.p > 0) throw new ArgumentError(`ONNX export: Dropout ${g.pathOf(this)} is in training mode; call model.eval() before exporting`);
    return x;
  }
}

export class ReLU extends Layer {
  forward(x: Tensor): Tensor { return x.relu(); }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue { return g.unary('Relu', x); }
}
export class SiLU extends Layer {
  forward(x: Tensor): Tensor { return x.silu(); }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue { return g.mul(x, g.unary('Sigmoid', x)); }
}
export class GELU extends Layer {
  forward(x: Tensor): Tensor { return x.gelu(); }
  /** The exact GELU, x Phi(x) = x (1 + erf(x / sqrt 2)) / 2 (Hendrycks & Gimpel 2016): opset 17 has no Gelu. */
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    const phi = g.add(g.unary('Erf', g.div(x, g.scalar(Math.SQRT2))), g.scalar(1));
    return g.mul(g.mul(x, phi), g.scalar(0.5));
  }
}
export class Identity extends Layer {
  forward(x: Tensor): Tensor { return x; }
  override onnx(_g: OnnxGraph, x: OnnxValue): OnnxValue { return x; }
}

export class MaxPool2d extends Layer {
  constructor(readonly kernelSize: Pair, readonly stride?: Pair) { super(); }
  forward(x: Tensor): Tensor { return F.maxPool2d(x, this.kernelSize, this.stride === undefined ? {} : { stride: this.stride }); }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    const k = pair('MaxPool2d: kernelSize', this.kernelSize, 1);
    const s = pair('MaxPool2d: stride', this.stride ?? this.kernelSize, 1);
    const out = [0, 1].map((i) => Math.floor(((x.shape[2 + i] as number) - k[i]!) / s[i]!) + 1);
    return g.op('MaxPool', [x], [x.shape[0]!, x.shape[1]!, ...out], { kernel_shape: { ints: k }, strides: { ints: s } });
  }
}

export class Flatten extends Layer {
  constructor(readonly startDim = 1, readonly endDim = -1) { super(); }
  forward(x: Tensor): Tensor { return x.flatten(this.startDim, this.endDim); }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    const r = x.shape.length;
    const start = this.startDim < 0 ? this.startDim + r : this.startDim;
    const end = this.endDim < 0 ? this.endDim + r : this.endDim;
    const merged = x.shape.slice(start, end + 1).reduce<number>((a, d) => a * (d ?? NaN), 1);
    return g.reshape(x, [...x.shape.slice(0, start), merged, ...x.shape.slice(end + 1)]);
  }
}

/** Unflatten(dim, sizes): splits one dim into several, as torch.nn.Unflatten. */
export class Unflatten extends Layer {
  constructor(readonly dim: number, readonly sizes: number[]) { super(); }
  forward(x: Tensor): Tensor {
    const s = x.shape;
    const d = this.dim < 0 ? this.dim + s.length : this.dim;
    return x.reshape([...s.slice(0, d), ...this.sizes, ...s.slice(d + 1)]);
  }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    const s: Dim[] = [...x.shape];
    const d = this.dim < 0 ? this.dim + s.length : this.dim;
    return g.reshape(x, [...s.slice(0, d), ...this.sizes, ...s.slice(d + 1)]);
  }
}

/** Children named "0", "1", ... as torch.nn.Sequential names them. */
/**
 * Layers applied in order. Each intermediate output is disposed as soon as the next layer has
 * returned, as Python frees it when its last reference goes: autograd keeps what backward needs, and
 * the memory goes back to the allocator while still in cache. The folded dli02 forward pass at
 * batch 500 took 52-58 instead of 61-77 ms, in 430-610 instead of 680-1,670 MB resident; the
 * training forward at batch 128 3-10% less. So a layer in a Sequential must return a tensor it does not keep
 * (not a parameter, a buffer or a cached value); the input and the final output are left alone.
 */
export class Sequential extends Layer {
  readonly layers: Layer[];
  constructor(...layers: Layer[]) {
    super();
    this.layers = layers;
    layers.forEach((l, i) => this.registerModule(String(i), l));
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const l of this.layers) {
      const next = l.forward(h);
      if (h !== x && next !== h) h.dispose();
      h = next;
    }
    return h;
  }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    let h = x;
    for (const l of this.layers) h = g.lower(l, h);
    return h;
  }
}
