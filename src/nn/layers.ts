// The layers the U-Net presets use, with torch.nn's parameter names, shapes and initialisation.
import * as F from '../tensor/functional.js';
import { type Tensor, cat, empty, full, ones, zeros, noGrad, tidy, ArgumentError } from '../tensor/index.js';
import { Layer } from './module.js';
import { biasUniform, fans, kaimingUniformDefault, normal } from './init.js';
import { type SubPixelPlan, subPixelPlan, convTranspose2dSubPixel } from './sub-pixel.js';

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
}

export class Embedding extends Layer {
  readonly weight: Tensor;
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number) {
    super();
    this.weight = this.registerParameter('weight', empty([numEmbeddings, embeddingDim]));
    normal(this.weight);
  }
  forward(indices: Tensor): Tensor { return F.embedding(this.weight, indices); }
}

export class Dropout extends Layer {
  constructor(readonly p = 0.5) { super(); }
  forward(x: Tensor): Tensor { return this.p === 0 ? x : F.dropout(x, this.p, this.training); }
}

export class ReLU extends Layer { forward(x: Tensor): Tensor { return x.relu(); } }
export class SiLU extends Layer { forward(x: Tensor): Tensor { return x.silu(); } }
export class GELU extends Layer { forward(x: Tensor): Tensor { return x.gelu(); } }
export class Identity extends Layer { forward(x: Tensor): Tensor { return x; } }

export class MaxPool2d extends Layer {
  constructor(readonly kernelSize: Pair, readonly stride?: Pair) { super(); }
  forward(x: Tensor): Tensor { return F.maxPool2d(x, this.kernelSize, this.stride === undefined ? {} : { stride: this.stride }); }
}

export class Flatten extends Layer {
  constructor(readonly startDim = 1, readonly endDim = -1) { super(); }
  forward(x: Tensor): Tensor { return x.flatten(this.startDim, this.endDim); }
}

/** Unflatten(dim, sizes): splits one dim into several, as torch.nn.Unflatten. */
export class Unflatten extends Layer {
  constructor(readonly dim: number, readonly sizes: number[]) { super(); }
  forward(x: Tensor): Tensor {
    const s = x.shape;
    const d = this.dim < 0 ? this.dim + s.length : this.dim;
    return x.reshape([...s.slice(0, d), ...this.sizes, ...s.slice(d + 1)]);
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
}
