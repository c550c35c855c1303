// The noise-aware classifier p_phi(y | x_t, t) of classifier guidance (Dhariwal & Nichol 2021,
// "Diffusion Models Beat GANs on Image Synthesis", section 4): guided-diffusion's EncoderUNetModel,
// the U-Net's encoder half (its down levels and middle block, time-conditioned as in the U-Net) with
// a pooled head. It is built from the `ddpm` preset's own blocks (ddpm-unet.ts: ResnetBlocks with the
// time embedding's scale and shift, attention at the lowest level) and its widths, at the run's image
// size, channels and T, whatever the run's preset: dli02's down blocks take no time input at all (its
// t/T enters only on the way up), so its own encoder could not tell how noisy x_t is, and one
// architecture keeps a classifier defined by the run's data and schedule alone.
//
// The head is guided-diffusion's pool="adaptive": GroupNorm, SiLU, adaptive average pooling to 1x1
// and a linear layer to the class logits. Its default pool="attention" is left out for simplicity.
import { type Tensor, ArgumentError } from '../tensor/index.js';
import { Module, Sequential, Conv2d, GroupNorm, SiLU, GELU, Linear } from '../nn/index.js';
import { SinusoidalPositionEmbedBlock, PixelUnshuffle, checkImageSize, checkT } from './embeddings.js';
import { DDPM_DEFAULTS, ResnetBlock, Attention, Level, ModuleList } from './ddpm-unet.js';

export interface NoisyClassifierConfig {
  imageChannels: number;
  imageSize: number;
  /** Timesteps of the run's schedule: only checked, the embedding takes t itself. */
  T: number;
  /** Classes it tells apart: the logits' width (Fashion-MNIST: 10). */
  numClasses: number;
  /** The `ddpm` U-Net's widths (DDPM_DEFAULTS): base channels, multipliers, blocks per level, norm groups, attention. */
  dim: number;
  dimMults: number[];
  resnetBlocks: number;
  groups: number;
  attnHeads: number;
  attnDimHead: number;
}

/** The `ddpm` U-Net's widths for a run's images, schedule and classes. */
export function noisyClassifierConfig(o: { imageChannels: number; imageSize: number; T: number; numClasses: number }): NoisyClassifierConfig {
  const { dim, dimMults, resnetBlocks, groups, attnHeads, attnDimHead } = DDPM_DEFAULTS;
  return { ...o, dim, dimMults: [...dimMults], resnetBlocks, groups, attnHeads, attnDimHead };
}

export class NoisyClassifier extends Module {
  readonly numClasses: number;
  readonly initConv: Conv2d;
  readonly timeMlp: Sequential;
  readonly downs: ModuleList<Level>;
  readonly midBlock1: ResnetBlock;
  readonly midAttn: Attention;
  readonly midBlock2: ResnetBlock;
  readonly out: Sequential;
  readonly head: Linear;

  constructor(readonly config: NoisyClassifierConfig) {
    super();
    const { imageChannels, imageSize, T, numClasses, dim, dimMults, resnetBlocks: n, groups, attnHeads: heads, attnDimHead: dimHead } = config;
    checkImageSize('classifier', imageSize, dimMults.length - 1);
    checkT('classifier', T);
    if (!Number.isInteger(numClasses) || numClasses < 2) throw new ArgumentError(`classifier: numClasses must be an integer >= 2 (the classes it tells apart), got ${numClasses}`);
    this.numClasses = numClasses;
    const timeDim = dim * 4;
    const dims = [dim, ...dimMults.map((m) => dim * m)];
    const inOut = dims.slice(0, -1).map((d, i) => [d, dims[i + 1]!] as const);
    const last = inOut.length - 1;
    const attn = (d: number): Attention => new Attention(d, heads, dimHead, groups);
    const resnet = (a: number, b: number): ResnetBlock => new ResnetBlock(a, b, timeDim, groups);
    // The U-Net's init conv, time MLP, down levels and middle block, named as there.
    this.initConv = this.registerModule('init_conv', new Conv2d(imageChannels, dim, 7, { padding: 3 }));
    this.timeMlp = this.registerModule('time_mlp', new Sequential(
      new SinusoidalPositionEmbedBlock(dim), new Linear(dim, timeDim), new GELU(), new Linear(timeDim, timeDim),
    ));
    this.downs = this.registerModule('downs', new ModuleList(inOut.map(([dIn, dOut], i) => new Level(
      Array.from({ length: n }, () => resnet(dIn, dIn)),
      i === last ? attn(dIn) : null,
      i === last ? new Conv2d(dIn, dOut, 3, { padding: 1 }) : new Sequential(new PixelUnshuffle(2), new Conv2d(dIn * 4, dOut, 1)),
    ))));
    const midDim = dims[dims.length - 1]!;
    this.midBlock1 = this.registerModule('mid_block1', resnet(midDim, midDim));
    this.midAttn = this.registerModule('mid_attn', attn(midDim));
    this.midBlock2 = this.registerModule('mid_block2', resnet(midDim, midDim));
    // guided-diffusion's adaptive head: normalization, SiLU, AdaptiveAvgPool2d((1, 1)), then a 1x1 conv (here Linear) to the logits.
    this.out = this.registerModule('out', new Sequential(new GroupNorm(groups, midDim), new SiLU()));
    this.head = this.registerModule('head', new Linear(midDim, numClasses));
  }

  /** Logits of p_phi(y | x_t, t): x (B, C, S, S) float32, t (B,) int64 -> (B, numClasses). */
  forward(x: Tensor, t: Tensor): Tensor {
    let h = this.initConv.forward(x); // (B, dim, S, S)
    const emb = this.timeMlp.forward(t.float()); // (B, 4 dim)
    for (const level of this.downs.items) {
      for (const [i, block] of level.blocks.entries()) {
        h = block.forward(h, emb);
        if (level.attn && i === level.blocks.length - 1) h = level.attn.forward(h).add(h);
      }
      h = level.sample.forward(h);
    }
    h = this.midBlock1.forward(h, emb);
    h = this.midAttn.forward(h).add(h);
    h = this.midBlock2.forward(h, emb); // (B, midDim, S', S')
    return this.head.forward(this.out.forward(h).mean([2, 3])); // (B, numClasses)
  }
}
