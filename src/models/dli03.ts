// The `dli03` preset: the U-Net of the course notebook 03_Optimizations.ipynb (GroupNorm + GELU
// conv blocks, space-to-depth pooling, residual conv blocks, a sinusoidal time embedding), with the
// class conditioning of notebook 04 when numClasses > 0. Module for module as the notebooks, so
// the state dict has their names (`down1.model.2.conv.model.0.weight`, ...) and, after
// manualSeed(s), the same initial weights as the PyTorch twin (tools/reference/dli03.py).
import type { Tensor } from '../tensor/index.js';
import { cat, isGradEnabled, ArgumentError } from '../tensor/index.js';
import {
  Module, Layer, Sequential, Conv2d, ConvTranspose2d, GroupNorm, GELU, ReLU, Linear, Flatten, Unflatten, type OnnxGraph, type OnnxValue,
} from '../nn/index.js';
import { PixelUnshuffle, SinusoidalPositionEmbedBlock, checkImageSize, checkNumClasses, checkT, classInput } from './embeddings.js';

export interface Dli03Config {
  /** Image channels: Fashion-MNIST is grey. */
  imageChannels: number;
  /** Side of the square images; two 2x poolings need a multiple of 4 (the notebook uses 16). */
  imageSize: number;
  /** Channels at each resolution, as the notebook's `down_chs = (64, 64, 128)`. */
  downChannels: [number, number, number];
  /** Number of diffusion timesteps: the time input is t / T before the sinusoidal embedding. */
  T: number;
  /** Size of the sinusoidal time embedding (the notebook's t_embed_dim = 8). */
  tEmbedDim: number;
  /** Classes of notebook 04's conditioning (its c_embed_dim); 0 = unconditional, no c_embed modules. */
  numClasses: number;
  /** GroupNorm group counts (the notebook calls them group sizes): 8 for the first and last blocks, 32 elsewhere. */
  smallGroupSize: number;
  bigGroupSize: number;
  /** Output channels: imageChannels, or twice that when the second half predicts the variance (Nichol & Dhariwal 2021). */
  outChannels?: number;
}

export const DLI03_DEFAULTS: Dli03Config = {
  imageChannels: 1, imageSize: 16, downChannels: [64, 64, 128], T: 150, tEmbedDim: 8, numClasses: 0, smallGroupSize: 8, bigGroupSize: 32,
};

/** Conv3x3 -> GroupNorm -> GELU. */
class GELUConvBlock extends Layer {
  readonly model: Sequential;
  constructor(inCh: number, outCh: number, groupSize: number) {
    super();
    this.model = this.registerModule('model', new Sequential(
      new Conv2d(inCh, outCh, 3, { stride: 1, padding: 1 }), new GroupNorm(groupSize, outCh), new GELU(),
    ));
  }
  forward(x: Tensor): Tensor {
    if (isGradEnabled()) return this.model.forward(x);
    // Sampling: GELU in place on the GroupNorm output this block made (one activation fewer).
    const [conv, norm] = this.model.layers as [Conv2d, GroupNorm];
    const c = conv.forward(x); // (B, outCh, H, W)
    const h = norm.forward(c);
    c.dispose();
    return h.gelu_();
  }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue { return g.lower(this.model, x); }
}

/** Space-to-depth (each 2x2 patch into channels) then a conv back to the input's channels: pooling that keeps every pixel. */
class RearrangePoolBlock extends Layer {
  readonly rearrange: PixelUnshuffle;
  readonly conv: GELUConvBlock;
  constructor(inChs: number, groupSize: number) {
    super();
    this.rearrange = this.registerModule('rearrange', new PixelUnshuffle(2));
    this.conv = this.registerModule('conv', new GELUConvBlock(4 * inChs, inChs, groupSize));
  }
  forward(x: Tensor): Tensor { return this.conv.forward(this.rearrange.forward(x)); } // (B, C, H/2, W/2)
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue { return g.lower(this.conv, g.lower(this.rearrange, x)); }
}

class DownBlock extends Layer {
  readonly model: Sequential;
  constructor(inChs: number, outChs: number, groupSize: number) {
    super();
    this.model = this.registerModule('model', new Sequential(
      new GELUConvBlock(inChs, outChs, groupSize), new GELUConvBlock(outChs, outChs, groupSize), new RearrangePoolBlock(outChs, groupSize),
    ));
  }
  forward(x: Tensor): Tensor { return this.model.forward(x); }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue { return g.lower(this.model, x); }
}

/** Concatenate the skip, a 2x2 stride-2 transposed conv, then four GELU conv blocks. */
class UpBlock extends Module {
  readonly model: Sequential;
  constructor(inChs: number, outChs: number, groupSize: number) {
    super();
    this.model = this.registerModule('model', new Sequential(
      new ConvTranspose2d(2 * inChs, outChs, 2, { stride: 2 }),
      new GELUConvBlock(outChs, outChs, groupSize), new GELUConvBlock(outChs, outChs, groupSize),
      new GELUConvBlock(outChs, outChs, groupSize), new GELUConvBlock(outChs, outChs, groupSize),
    ));
  }
  forward(x: Tensor, skip: Tensor): Tensor {
    const joined = cat([x, skip], 1); // (B, 2 inChs, H, W)
    const out = this.model.forward(joined); // (B, outChs, 2H, 2W)
    joined.dispose();
    return out;
  }
  override onnx(g: OnnxGraph, x: OnnxValue, skip: OnnxValue): OnnxValue { return g.lower(this.model, g.concat([x, skip], 1)); }
}

/** Linear-GELU-Linear, unflattened to (B, emb, 1, 1) to scale or shift feature maps. */
class EmbedBlock extends Layer {
  readonly model: Sequential;
  constructor(readonly inputDim: number, embDim: number) {
    super();
    this.model = this.registerModule('model', new Sequential(
      new Linear(inputDim, embDim), new GELU(), new Linear(embDim, embDim), new Unflatten(1, [embDim, 1, 1]),
    ));
  }
  forward(input: Tensor): Tensor { return this.model.forward(input.reshape([-1, this.inputDim])); }
  override onnx(g: OnnxGraph, input: OnnxValue): OnnxValue { return g.lower(this.model, g.reshape(input, [null, this.inputDim])); }
}

/** Two GELU conv blocks; returns the sum of both outputs. */
class ResidualConvBlock extends Layer {
  readonly conv1: GELUConvBlock;
  readonly conv2: GELUConvBlock;
  constructor(inChs: number, outChs: number, groupSize: number) {
    super();
    this.conv1 = this.registerModule('conv1', new GELUConvBlock(inChs, outChs, groupSize));
    this.conv2 = this.registerModule('conv2', new GELUConvBlock(outChs, outChs, groupSize));
  }
  forward(x: Tensor): Tensor {
    const x1 = this.conv1.forward(x);
    const x2 = this.conv2.forward(x1);
    // Sampling: the sum in place on conv2's output (x1 + x2 = x2 + x1 exactly).
    const out = isGradEnabled() ? x1.add(x2) : x2.add_(x1);
    if (out !== x2) x2.dispose();
    x1.dispose();
    return out;
  }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    const x1 = g.lower(this.conv1, x);
    return g.add(x1, g.lower(this.conv2, x1));
  }
}

/** notebook 04's c_emb * up + temb, in one pass (torch.addcmul). */
function film(cEmb: Tensor, up: Tensor, temb: Tensor): Tensor { return temb.addcmul(cEmb, up); }

export class Dli03UNet extends Module {
  readonly numClasses: number;
  readonly down0: ResidualConvBlock;
  readonly down1: DownBlock;
  readonly down2: DownBlock;
  readonly toVec: Sequential;
  readonly denseEmb: Sequential;
  readonly sinusoidaltime: SinusoidalPositionEmbedBlock;
  readonly temb1: EmbedBlock;
  readonly temb2: EmbedBlock;
  readonly cEmbed1: EmbedBlock | null;
  readonly cEmbed2: EmbedBlock | null;
  readonly up0: Sequential;
  readonly up1: UpBlock;
  readonly up2: UpBlock;
  readonly out: Sequential;
  /** The output block reads up2 and down0 concatenated at full size. */
  readonly widestActivation: number;

  constructor(readonly config: Dli03Config = DLI03_DEFAULTS) {
    super();
    const { imageChannels: c, imageSize, downChannels: down, T, tEmbedDim, numClasses, smallGroupSize: small, bigGroupSize: big } = config;
    checkImageSize('dli03', imageSize, 2);
    checkT('dli03', T);
    checkNumClasses('dli03', numClasses);
    if (!Number.isInteger(tEmbedDim) || tEmbedDim < 4 || tEmbedDim % 2) {
      throw new ArgumentError(`dli03: tEmbedDim must be an even integer >= 4 (sin and cos halves of at least 2 frequencies), got ${tEmbedDim}`);
    }
    this.numClasses = numClasses;
    this.widestActivation = 2 * down[0] * imageSize * imageSize;
    const up = [down[2], down[1], down[0]] as const;
    const latent = imageSize / 4;
    // Construction order is the notebooks' __init__ order, so initial weights match PyTorch's draw order.
    this.down0 = this.registerModule('down0', new ResidualConvBlock(c, down[0], small));
    this.down1 = this.registerModule('down1', new DownBlock(down[0], down[1], big));
    this.down2 = this.registerModule('down2', new DownBlock(down[1], down[2], big));
    this.toVec = this.registerModule('to_vec', new Sequential(new Flatten(), new GELU()));
    this.denseEmb = this.registerModule('dense_emb', new Sequential(
      new Linear(down[2] * latent * latent, down[1]), new ReLU(),
      new Linear(down[1], down[1]), new ReLU(),
      new Linear(down[1], down[2] * latent * latent), new ReLU(),
    ));
    this.sinusoidaltime = this.registerModule('sinusoidaltime', new SinusoidalPositionEmbedBlock(tEmbedDim));
    this.temb1 = this.registerModule('temb_1', new EmbedBlock(tEmbedDim, up[0]));
    this.temb2 = this.registerModule('temb_2', new EmbedBlock(tEmbedDim, up[1]));
    this.cEmbed1 = numClasses ? this.registerModule('c_embed1', new EmbedBlock(numClasses, up[0])) : null;
    this.cEmbed2 = numClasses ? this.registerModule('c_embed2', new EmbedBlock(numClasses, up[1])) : null;
    this.up0 = this.registerModule('up0', new Sequential(new Unflatten(1, [up[0], latent, latent]), new GELUConvBlock(up[0], up[0], big)));
    this.up1 = this.registerModule('up1', new UpBlock(up[0], up[1], big));
    this.up2 = this.registerModule('up2', new UpBlock(up[1], up[2], big));
    this.out = this.registerModule('out', new Sequential(
      new Conv2d(2 * up[2], up[2], 3, { stride: 1, padding: 1 }), new GroupNorm(small, up[2]), new ReLU(),
      new Conv2d(up[2], config.outChannels ?? c, 3, { stride: 1, padding: 1 }),
    ));
  }

  /**
   * eps_theta(x_t, t[, c]): x (B, C, S, S) float32, t (B,) int64 in [0, T), c (B, numClasses) float32
   * one-hot rows times the drop mask (omitted or a zero row: unconditional). Notebook 03's forward
   * with notebook 04's `c_emb * up + temb`.
   */
  forward(x: Tensor, t: Tensor, c?: Tensor | null): Tensor {
    const cls = classInput('dli03', this.numClasses, x, c);
    const down0 = this.down0.forward(x); // (B, 64, S, S)
    const down1 = this.down1.forward(down0); // (B, 64, S/2, S/2)
    const down2 = this.down2.forward(down1); // (B, 128, S/4, S/4)
    const latentVec = this.denseEmb.forward(this.toVec.forward(down2)); // (B, 128 S^2/16)
    const temb = this.sinusoidaltime.forward(t.float().div(this.config.T)); // (B, tEmbedDim)
    const temb1 = this.temb1.forward(temb); // (B, 128, 1, 1)
    const temb2 = this.temb2.forward(temb); // (B, 64, 1, 1)
    const up0 = this.up0.forward(latentVec); // (B, 128, S/4, S/4)
    // Each activation is disposed once nothing below needs it (autograd keeps what backward needs),
    // so sampling reuses memory still in cache.
    const in1 = cls ? film(this.cEmbed1!.forward(cls), up0, temb1) : up0.add(temb1);
    const up1 = this.up1.forward(in1, down2); // (B, 64, S/2, S/2)
    const in2 = cls ? film(this.cEmbed2!.forward(cls), up1, temb2) : up1.add(temb2);
    const up2 = this.up2.forward(in2, down1); // (B, 64, S, S)
    for (const z of [latentVec, up0, in1, up1, in2, down1, down2]) z.dispose();
    const joined = cat([up2, down0], 1); // (B, 2 up[2], S, S)
    up2.dispose();
    down0.dispose();
    const out = this.out.forward(joined); // (B, outChannels, S, S)
    joined.dispose();
    return out;
  }

  /** forward as ONNX nodes: t (B,) int64, c (B, numClasses) one-hot rows or null. */
  override onnx(g: OnnxGraph, x: OnnxValue, t: OnnxValue, c: OnnxValue | null): OnnxValue {
    const down0 = g.lower(this.down0, x);
    const down1 = g.lower(this.down1, down0);
    const down2 = g.lower(this.down2, down1);
    const latentVec = g.lower(this.denseEmb, g.lower(this.toVec, down2));
    const temb = g.lower(this.sinusoidaltime, g.div(g.cast(t, 'float32'), g.scalar(this.config.T)));
    const temb1 = g.lower(this.temb1, temb);
    const temb2 = g.lower(this.temb2, temb);
    const up0 = g.lower(this.up0, latentVec);
    const in1 = c ? g.mul(g.lower(this.cEmbed1!, c), up0) : up0;
    const up1 = g.lower(this.up1, g.add(in1, temb1), down2);
    const in2 = c ? g.mul(g.lower(this.cEmbed2!, c), up1) : up1;
    const up2 = g.lower(this.up2, g.add(in2, temb2), down1);
    return g.lower(this.out, g.concat([up2, down0], 1));
  }
}
