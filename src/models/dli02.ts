// The `dli02` preset: the U-Net of the course notebook 02_Diffusion_Models.ipynb (seeds/001 and
// 000 quote its code), module for module, so its state dict has the notebook's names
// (`down1.model.0.weight`, ...) and, after manualSeed(s), the same initial weights as the
// notebook's model after torch.manual_seed(s). With numClasses > 0 it adds notebook 04's class
// conditioning (c_embed1/c_embed2, `c_emb * up + temb`); with 0 it is the notebook's model unchanged.
import type { Tensor } from '../tensor/index.js';
import {
  Module, Layer, Sequential, Conv2d, ConvTranspose2d, BatchNorm2d, ReLU, MaxPool2d, Linear, Flatten, Unflatten, type OnnxGraph, type OnnxValue,
} from '../nn/index.js';
import { cat, ArgumentError } from '../tensor/index.js';
import { foldBatchNorm, FoldedConv } from '../nn/fold.js';
import { classInput, checkNumClasses } from './embeddings.js';

/**
 * The pieces the U-Net's wiring calls; the trained modules, or their BatchNorm-folded copies. up1
 * and up2 are the up blocks' layers, which take the skip connection concatenated to their input.
 */
interface Blocks {
  down0: Layer; down1: Layer; down2: Layer; toVec: Layer; denseEmb: Layer; temb1: Layer; temb2: Layer;
  cEmbed1: Layer | null; cEmbed2: Layer | null;
  up0: Layer; up1: Layer; up2: Layer; out: Layer;
}

export interface Dli02Config {
  /** Image channels: Fashion-MNIST is grey. */
  imageChannels: number;
  /** Side of the square images; the notebook resizes Fashion-MNIST to 16 so it trains fast on a CPU. */
  imageSize: number;
  /** Channels at each resolution, as the notebook's `down_chs = (16, 32, 64)`. */
  downChannels: [number, number, number];
  /** Number of diffusion timesteps: the time input is t / T, normalised to [0, 1) (seeds/000 Q13). */
  T: number;
  /** Classes of notebook 04's conditioning; 0 or absent = unconditional (the notebook 02 model, no c_embed modules). */
  numClasses?: number;
  /** Output channels: imageChannels, or twice that when the second half predicts the variance (Nichol & Dhariwal 2021). */
  outChannels?: number;
}

export const DLI02_DEFAULTS: Dli02Config = { imageChannels: 1, imageSize: 16, downChannels: [16, 32, 64], T: 150 };

/** Conv-BN-ReLU twice, then a 2x max-pool: the notebook's DownBlock. */
class DownBlock extends Layer {
  readonly model: Sequential;
  constructor(inCh: number, outCh: number) {
    super();
    this.model = this.registerModule('model', new Sequential(
      new Conv2d(inCh, outCh, 3, { stride: 1, padding: 1 }), new BatchNorm2d(outCh), new ReLU(),
      new Conv2d(outCh, outCh, 3, { stride: 1, padding: 1 }), new BatchNorm2d(outCh), new ReLU(),
      new MaxPool2d(2),
    ));
  }
  forward(x: Tensor): Tensor { return this.model.forward(x); }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue { return g.lower(this.model, x); }
}

/** Concatenate the skip, then a stride-2 transposed conv (kernel 3, padding 1, output padding 1) and Conv-BN-ReLU. */
export class UpBlock extends Module {
  readonly model: Sequential;
  constructor(inCh: number, outCh: number) {
    super();
    this.model = this.registerModule('model', new Sequential(
      new ConvTranspose2d(2 * inCh, outCh, 3, { stride: 2, padding: 1, outputPadding: 1 }), new BatchNorm2d(outCh), new ReLU(),
      new Conv2d(outCh, outCh, 3, { stride: 1, padding: 1 }), new BatchNorm2d(outCh), new ReLU(),
    ));
  }
  forward(x: Tensor, skip: Tensor): Tensor {
    return this.model.forward(cat([x, skip], 1)); // (B, 2 inCh, H, W) -> (B, outCh, 2H, 2W)
  }
  override onnx(g: OnnxGraph, x: OnnxValue, skip: OnnxValue): OnnxValue { return g.lower(this.model, g.concat([x, skip], 1)); }
}

/** t / T (or the class input c) through Linear-ReLU-Linear, unflattened to (B, emb, 1, 1) to add to (or scale) feature maps. */
export class EmbedBlock extends Layer {
  readonly model: Sequential;
  constructor(readonly inputDim: number, embDim: number) {
    super();
    this.model = this.registerModule('model', new Sequential(
      new Linear(inputDim, embDim), new ReLU(), new Linear(embDim, embDim), new Unflatten(1, [embDim, 1, 1]),
    ));
  }
  forward(input: Tensor): Tensor { return this.model.forward(input.reshape([-1, this.inputDim])); }
  override onnx(g: OnnxGraph, input: OnnxValue): OnnxValue { return g.lower(this.model, g.reshape(input, [null, this.inputDim])); }
}

export class Dli02UNet extends Module {
  readonly numClasses: number;
  readonly down0: Sequential;
  readonly down1: DownBlock;
  readonly down2: DownBlock;
  readonly toVec: Sequential;
  readonly denseEmb: Sequential;
  readonly temb1: EmbedBlock;
  readonly temb2: EmbedBlock;
  readonly cEmbed1: EmbedBlock | null;
  readonly cEmbed2: EmbedBlock | null;
  readonly up0: Sequential;
  readonly up1: UpBlock;
  readonly up2: UpBlock;
  readonly out: Sequential;

  constructor(readonly config: Dli02Config = DLI02_DEFAULTS) {
    super();
    const { imageChannels: c, imageSize, downChannels: down, T } = config;
    if (imageSize % 4 !== 0 || imageSize < 4) {
      throw new ArgumentError(`dli02: image size ${imageSize} cannot be halved twice by the U-Net's two max-pools; use a multiple of 4 (the notebook uses 16)`);
    }
    if (!Number.isInteger(T) || T < 1) throw new ArgumentError(`dli02: T must be an integer >= 1, got ${T}`);
    const numClasses = config.numClasses ?? 0;
    checkNumClasses('dli02', numClasses);
    this.numClasses = numClasses;
    const up = [down[2], down[1], down[0]] as const;
    const latent = imageSize / 4;
    // Registration order is the notebook's __init__ order, so initial weights match PyTorch's draw order.
    this.down0 = this.registerModule('down0', new Sequential(new Conv2d(c, down[0], 3, { padding: 1 }), new BatchNorm2d(down[0]), new ReLU()));
    this.down1 = this.registerModule('down1', new DownBlock(down[0], down[1]));
    this.down2 = this.registerModule('down2', new DownBlock(down[1], down[2]));
    this.toVec = this.registerModule('to_vec', new Sequential(new Flatten(), new ReLU()));
    this.denseEmb = this.registerModule('dense_emb', new Sequential(
      new Linear(down[2] * latent * latent, down[1]), new ReLU(),
      new Linear(down[1], down[1]), new ReLU(),
      new Linear(down[1], down[2] * latent * latent), new ReLU(),
    ));
    this.temb1 = this.registerModule('temb_1', new EmbedBlock(1, up[0]));
    this.temb2 = this.registerModule('temb_2', new EmbedBlock(1, up[1]));
    this.cEmbed1 = numClasses ? this.registerModule('c_embed1', new EmbedBlock(numClasses, up[0])) : null;
    this.cEmbed2 = numClasses ? this.registerModule('c_embed2', new EmbedBlock(numClasses, up[1])) : null;
    this.up0 = this.registerModule('up0', new Sequential(
      new Unflatten(1, [up[0], latent, latent]), new Conv2d(up[0], up[0], 3, { padding: 1 }), new BatchNorm2d(up[0]), new ReLU(),
    ));
    this.up1 = this.registerModule('up1', new UpBlock(up[0], up[1]));
    this.up2 = this.registerModule('up2', new UpBlock(up[1], up[2]));
    this.out = this.registerModule('out', new Sequential(
      new Conv2d(up[2], up[2], 3, { stride: 1, padding: 1 }), new BatchNorm2d(up[2]), new ReLU(),
      new Conv2d(up[2], config.outChannels ?? c, 3, { stride: 1, padding: 1 }),
    ));
    // After initialisation, so the values stay PyTorch's: channels-last weights make every
    // convolution run oneDNN's NHWC kernels. The notebook's model trained 1.2 times as fast so in
    // PyTorch 1.13 here (2,090 against 1,716 img/s), 1.25 times with sub-pixel transposed
    // convolutions (2,578 against 2,055). Not for dli03: its GroupNorm and GELU have no NHWC kernels
    // in libtorch 1.13, and a channels-last dli03 trained 1.5 times slower.
    this.toMemoryFormat('channelsLast');
  }

  /**
   * eps_theta(x_t, t[, c]): x (B, C, S, S) float32, t (B,) int64 in [0, T), c (B, numClasses) float32
   * one-hot rows times the drop mask (omitted or a zero row: unconditional).
   */
  forward(x: Tensor, t: Tensor, c?: Tensor | null): Tensor {
    return unet({ ...this, up1: this.up1.model, up2: this.up2.model }, this.config.T, x, t, classInput('dli02', this.numClasses, x, c));
  }

  /**
   * An inference-only noise predictor with every BatchNorm folded into its convolution (eval mode,
   * running statistics): the same outputs as eval-mode forward, with 11 fewer passes over memory.
   * It snapshots the current weights; call dispose() on it when done.
   */
  foldedForInference(): { forward(x: Tensor, t: Tensor, c?: Tensor | null): Tensor; dispose(): void } {
    const { blocks, dispose } = this.#foldedBlocks();
    return { forward: (x, t, c) => unet(blocks, this.config.T, x, t, classInput('dli02', this.numClasses, x, c)), dispose };
  }

  /** The eval-mode forward with BatchNorm folded, as foldedForInference runs it; c: one-hot rows or null. */
  override onnx(g: OnnxGraph, x: OnnxValue, t: OnnxValue, c: OnnxValue | null): OnnxValue {
    const { blocks, dispose } = this.#foldedBlocks();
    const folded = [[blocks.down0, this.down0], [blocks.down1, this.down1.model], [blocks.down2, this.down2.model], [blocks.up0, this.up0],
      [blocks.up1, this.up1.model], [blocks.up2, this.up2.model], [blocks.out, this.out]] as const;
    for (const [copy, original] of folded) g.alias(copy, original);
    try {
      return unetOnnx(blocks, g, this.config.T, x, t, c);
    } finally {
      dispose();
    }
  }

  #foldedBlocks(): { blocks: Blocks; dispose(): void } {
    const seqs = [foldBatchNorm(this.down0), foldBatchNorm(this.down1.model), foldBatchNorm(this.down2.model), foldBatchNorm(this.up0),
      foldBatchNorm(this.up1.model), foldBatchNorm(this.up2.model), foldBatchNorm(this.out)] as const;
    const [down0, down1, down2, up0, up1, up2, out] = seqs;
    return {
      blocks: {
        down0, down1, down2, toVec: this.toVec, denseEmb: this.denseEmb, temb1: this.temb1, temb2: this.temb2,
        cEmbed1: this.cEmbed1, cEmbed2: this.cEmbed2, up0, up1, up2, out,
      },
      // Only the folded convolutions own tensors; the other layers are the model's.
      dispose: () => { for (const s of seqs) for (const l of s.layers) if (l instanceof FoldedConv) l.dispose(); },
    };
  }
}

/** The notebook's forward wiring (seeds/001, cell 34); with a class input c, notebook 04's `c_emb * up + temb`. */
function unet(b: Blocks, T: number, x: Tensor, t: Tensor, c: Tensor | null): Tensor {
  const down0 = b.down0.forward(x); // (B, 16, S, S)
  const down1 = b.down1.forward(down0); // (B, 32, S/2, S/2)
  const down2 = b.down2.forward(down1); // (B, 64, S/4, S/4)
  let latentVec = b.toVec.forward(down2); // (B, 64 S^2/16)
  const tn = t.float().div(T); // (B,) in [0, 1)
  latentVec = b.denseEmb.forward(latentVec);
  const temb1 = b.temb1.forward(tn); // (B, 64, 1, 1)
  const temb2 = b.temb2.forward(tn); // (B, 32, 1, 1)
  const up0 = b.up0.forward(latentVec); // (B, 64, S/4, S/4)
  const in1 = c ? b.cEmbed1!.forward(c).mul(up0) : up0;
  const up1 = b.up1.forward(cat([in1.add(temb1), down2], 1)); // (B, 32, S/2, S/2)
  const in2 = c ? b.cEmbed2!.forward(c).mul(up1) : up1;
  const up2 = b.up2.forward(cat([in2.add(temb2), down1], 1)); // (B, 16, S, S)
  return b.out.forward(up2); // (B, outChannels, S, S)
}

/** unet's wiring as ONNX nodes: t (B,) int64, c (B, numClasses) one-hot rows or null. */
function unetOnnx(b: Blocks, g: OnnxGraph, T: number, x: OnnxValue, t: OnnxValue, c: OnnxValue | null): OnnxValue {
  const down0 = g.lower(b.down0, x);
  const down1 = g.lower(b.down1, down0);
  const down2 = g.lower(b.down2, down1);
  const tn = g.div(g.cast(t, 'float32'), g.scalar(T));
  const latentVec = g.lower(b.denseEmb, g.lower(b.toVec, down2));
  const temb1 = g.lower(b.temb1, tn);
  const temb2 = g.lower(b.temb2, tn);
  const up0 = g.lower(b.up0, latentVec);
  const in1 = c ? g.mul(g.lower(b.cEmbed1!, c), up0) : up0;
  const up1 = g.lower(b.up1, g.concat([g.add(in1, temb1), down2], 1));
  const in2 = c ? g.mul(g.lower(b.cEmbed2!, c), up1) : up1;
  const up2 = g.lower(b.up2, g.concat([g.add(in2, temb2), down1], 1));
  return g.lower(b.out, up2);
}
