// The `ddpm` preset: a U-Net in the manner of Ho et al. 2020 as lucidrains' denoising-diffusion-pytorch
// `Unet` builds it (ResnetBlocks with GroupNorm and SiLU whose time embedding gives a scale and shift,
// a sinusoidal time embedding through an MLP, pixel-unshuffle downsampling, nearest upsampling,
// self-attention at the lowest resolution and in the middle, a skip for every ResnetBlock), sized
// to train on 28x28 Fashion-MNIST on a CPU. Module names are lucidrains' (`downs.0.0.block1.proj.weight`)
// and the PyTorch twin is tools/reference/ddpm_unet.py. With numClasses > 0, c (B, numClasses) goes
// through Linear-GELU-Linear and is added to the time embedding (lucidrains' classifier_free_guidance
// Unet, with notebook 04's zero row as the null label).
import * as F from '../tensor/functional.js';
import { type Tensor, cat, isGradEnabled, ArgumentError } from '../tensor/index.js';
import { Module, Layer, Sequential, Conv2d, GroupNorm, SiLU, GELU, Linear, Identity, type OnnxGraph, type OnnxValue } from '../nn/index.js';
import { PixelUnshuffle, SinusoidalPositionEmbedBlock, checkImageSize, checkNumClasses, checkT, classInput } from './embeddings.js';

export interface DdpmUNetConfig {
  /** Image channels: Fashion-MNIST is grey. */
  imageChannels: number;
  /** Side of the square images; each level after the first halves it (28 -> 14 -> 7). */
  imageSize: number;
  /** Number of diffusion timesteps: only checked, the embedding takes t itself as Ho et al.'s does. */
  T: number;
  /** Classes for conditioning; 0 = unconditional, no classes_mlp. */
  numClasses: number;
  /** Base channels (lucidrains' `dim`): the init conv's width and the sinusoidal embedding's size; time_dim = 4 dim. */
  dim: number;
  /** Channel multiplier per resolution level (lucidrains' `dim_mults`). */
  dimMults: number[];
  /** ResnetBlocks per level on the way down and up (lucidrains uses 2). */
  resnetBlocks: number;
  /** GroupNorm groups in ResnetBlocks and attention. */
  groups: number;
  attnHeads: number;
  attnDimHead: number;
  /** Output channels: imageChannels, or twice that when the second half predicts the variance (Nichol & Dhariwal 2021). */
  outChannels?: number;
}

/** About 1.4M parameters: a few epochs of 28x28 Fashion-MNIST on a 2-core CPU. */
export const DDPM_DEFAULTS: DdpmUNetConfig = {
  imageChannels: 1, imageSize: 28, T: 1000, numClasses: 0, dim: 32, dimMults: [1, 2, 2], resnetBlocks: 2, groups: 8, attnHeads: 4, attnDimHead: 32,
};

/**
 * a + b for a tensor `a` the caller made and owns: in place when no autograd graph is recorded
 * (sampling), so a residual connection allocates nothing; `b` is disposed unless it is `keep`.
 */
function residual(a: Tensor, b: Tensor, keep?: Tensor): Tensor {
  const out = isGradEnabled() ? a.add(b) : a.add_(b);
  if (out !== a) a.dispose();
  if (b !== keep) b.dispose();
  return out;
}

/** Conv3x3 -> GroupNorm -> (x (scale + 1) + shift) -> SiLU: lucidrains' Block. */
class Block extends Module {
  readonly proj: Conv2d;
  readonly norm: GroupNorm;
  readonly act: SiLU;
  constructor(dim: number, dimOut: number, groups: number) {
    super();
    this.proj = this.registerModule('proj', new Conv2d(dim, dimOut, 3, { padding: 1 }));
    this.norm = this.registerModule('norm', new GroupNorm(groups, dimOut));
    this.act = this.registerModule('act', new SiLU());
  }
  forward(x: Tensor, scaleShift?: [Tensor, Tensor]): Tensor {
    const conv = this.proj.forward(x); // (B, dimOut, H, W)
    const h = this.norm.forward(conv);
    conv.dispose();
    // FiLM by the time embedding (Nichol & Dhariwal 2021): h (scale + 1) + shift.
    if (!isGradEnabled()) {
      // Sampling: in place on the tensor this block made, one activation allocated instead of four.
      if (scaleShift) h.addcmul_(h, scaleShift[0]).add_(scaleShift[1]);
      return h.silu_();
    }
    if (!scaleShift) return this.act.forward(h);
    const film = scaleShift[1].addcmul(h, scaleShift[0].add(1)); // one pass over h instead of a mul and an add
    h.dispose();
    return this.act.forward(film);
  }
  override onnx(g: OnnxGraph, x: OnnxValue, scale?: OnnxValue, shift?: OnnxValue): OnnxValue {
    let h = g.lower(this.norm, g.lower(this.proj, x));
    if (scale && shift) h = g.add(g.mul(h, g.add(scale, g.scalar(1))), shift);
    return g.lower(this.act, h);
  }
}

export class ResnetBlock extends Module {
  readonly mlp: Sequential;
  readonly block1: Block;
  readonly block2: Block;
  readonly resConv: Layer;
  constructor(dim: number, dimOut: number, timeDim: number, groups: number) {
    super();
    this.mlp = this.registerModule('mlp', new Sequential(new SiLU(), new Linear(timeDim, dimOut * 2)));
    this.block1 = this.registerModule('block1', new Block(dim, dimOut, groups));
    this.block2 = this.registerModule('block2', new Block(dimOut, dimOut, groups));
    this.resConv = this.registerModule('res_conv', dim !== dimOut ? new Conv2d(dim, dimOut, 1) : new Identity());
  }
  forward(x: Tensor, emb: Tensor): Tensor {
    const [scale, shift] = this.mlp.forward(emb).unsqueeze(-1).unsqueeze(-1).chunk(2, 1) as [Tensor, Tensor]; // 2 x (B, dimOut, 1, 1)
    const h1 = this.block1.forward(x, [scale, shift]);
    const h = this.block2.forward(h1); // (B, dimOut, H, W)
    h1.dispose();
    return residual(h, this.resConv.forward(x), x);
  }
  override onnx(g: OnnxGraph, x: OnnxValue, emb: OnnxValue): OnnxValue {
    const [scale, shift] = g.chunk(g.unsqueeze(g.unsqueeze(g.lower(this.mlp, emb), -1), -1), 2, 1) as [OnnxValue, OnnxValue];
    const h = g.lower(this.block2, g.lower(this.block1, x, scale, shift));
    return g.add(h, g.lower(this.resConv, x));
  }
}

/** Multi-head self-attention over the pixels, pre-normed; returns the update (the caller adds the residual). */
export class Attention extends Layer {
  readonly norm: GroupNorm;
  readonly toQkv: Conv2d;
  readonly toOut: Conv2d;
  constructor(dim: number, readonly heads: number, readonly dimHead: number, groups: number) {
    super();
    const hidden = heads * dimHead;
    this.norm = this.registerModule('norm', new GroupNorm(groups, dim));
    this.toQkv = this.registerModule('to_qkv', new Conv2d(dim, hidden * 3, 1, { bias: false }));
    this.toOut = this.registerModule('to_out', new Conv2d(hidden, dim, 1));
  }
  forward(x: Tensor): Tensor {
    const [b, , h, w] = x.shape as [number, number, number, number];
    const normed = this.norm.forward(x);
    const qkv = this.toQkv.forward(normed); // (B, 3 heads dimHead, H, W)
    normed.dispose();
    // 'b (h c) x y -> b h (x y) c'
    const parts = qkv.chunk(3, 1);
    const split = parts.map((z) => z.reshape([b, this.heads, this.dimHead, h * w]));
    const [q, k, v] = split.map((z) => z.transpose(-2, -1)) as [Tensor, Tensor, Tensor];
    const out = F.scaledDotProductAttention(q, k, v); // (B, heads, HW, dimHead)
    for (const z of [qkv, ...parts, ...split, q, k, v]) z.dispose();
    const merged = out.transpose(-2, -1).reshape([b, this.heads * this.dimHead, h, w]);
    out.dispose();
    const y = this.toOut.forward(merged); // (B, dim, H, W)
    merged.dispose();
    return y;
  }
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    const [, , h, w] = x.shape as [null, number, number, number];
    const qkv = g.chunk(g.lower(this.toQkv, g.lower(this.norm, x)), 3, 1);
    const [q, k, v] = qkv.map((z) => g.transpose(g.reshape(z, [null, this.heads, this.dimHead, h * w]), [0, 1, 3, 2])) as [OnnxValue, OnnxValue, OnnxValue];
    // scaledDotProductAttention: softmax(q k^T / sqrt(d)) v.
    const scores = g.mul(g.matmul(q, g.transpose(k, [0, 1, 3, 2])), g.scalar(1 / Math.sqrt(this.dimHead))); // (B, heads, HW, HW)
    const out = g.matmul(g.op('Softmax', [scores], scores.shape, { axis: { i: -1 } }), v); // (B, heads, HW, dimHead)
    return g.lower(this.toOut, g.reshape(g.transpose(out, [0, 1, 3, 2]), [null, this.heads * this.dimHead, h, w]));
  }
}

class UpsampleNearest2x extends Layer {
  forward(x: Tensor): Tensor { return F.interpolate(x, { size: [2 * x.shape[2]!, 2 * x.shape[3]!], mode: 'nearest' }); }
  /** torch's nearest reads source pixel floor(i / 2): Resize's asymmetric coordinates rounded down. */
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    const [n, c, h, w] = x.shape as [null, number, number, number];
    const attrs = { mode: { s: 'nearest' }, coordinate_transformation_mode: { s: 'asymmetric' }, nearest_mode: { s: 'floor' } };
    return g.op('Resize', [x, null, g.constant([1, 1, 2, 2], [4])], [n, c, 2 * h, 2 * w], attrs);
  }
}

/** One resolution level: its ResnetBlocks ("0", "1"), attention or Identity, then the down/upsampling layer, as lucidrains' ModuleList. */
export class Level extends Module {
  constructor(readonly blocks: ResnetBlock[], readonly attn: Attention | null, readonly sample: Layer) {
    super();
    blocks.forEach((blk, i) => this.registerModule(String(i), blk));
    this.registerModule(String(blocks.length), attn ?? new Identity());
    this.registerModule(String(blocks.length + 1), sample);
  }
}

export class ModuleList<M extends Module> extends Module {
  constructor(readonly items: M[]) {
    super();
    items.forEach((m, i) => this.registerModule(String(i), m));
  }
}

export class DdpmUNet extends Module {
  readonly numClasses: number;
  readonly initConv: Conv2d;
  readonly timeMlp: Sequential;
  readonly classesMlp: Sequential | null;
  readonly downs: ModuleList<Level>;
  readonly ups: ModuleList<Level>;
  readonly midBlock1: ResnetBlock;
  readonly midAttn: Attention;
  readonly midBlock2: ResnetBlock;
  readonly finalResBlock: ResnetBlock;
  readonly finalConv: Conv2d;
  /** The ResnetBlocks at full size read dim + dim channels (the last level's concatenations, and h with r). */
  readonly widestActivation: number;

  constructor(readonly config: DdpmUNetConfig = DDPM_DEFAULTS) {
    super();
    const { imageChannels, imageSize, T, numClasses, dim, dimMults, resnetBlocks: n, groups, attnHeads: heads, attnDimHead: dimHead } = config;
    if (dimMults.length < 1 || !dimMults.every((m) => Number.isInteger(m) && m >= 1)) {
      throw new ArgumentError(`ddpm: dimMults must be a non-empty list of integers >= 1, got [${dimMults.join(', ')}]`);
    }
    checkImageSize('ddpm', imageSize, dimMults.length - 1);
    checkT('ddpm', T);
    checkNumClasses('ddpm', numClasses);
    if (!Number.isInteger(dim) || dim < 4 || dim % 2) throw new ArgumentError(`ddpm: dim must be an even integer >= 4 (the sinusoidal embedding's size), got ${dim}`);
    if (!Number.isInteger(n) || n < 1) throw new ArgumentError(`ddpm: resnetBlocks must be an integer >= 1, got ${n}`);
    this.numClasses = numClasses;
    this.widestActivation = Math.max(2 * dim, dim + dim * dimMults[0]!) * imageSize * imageSize;
    const timeDim = dim * 4;
    const dims = [dim, ...dimMults.map((m) => dim * m)];
    const inOut = dims.slice(0, -1).map((d, i) => [d, dims[i + 1]!] as const);
    const last = inOut.length - 1;
    const attn = (d: number): Attention => new Attention(d, heads, dimHead, groups);
    const resnet = (a: number, b: number): ResnetBlock => new ResnetBlock(a, b, timeDim, groups);

    // Construction order is the PyTorch twin's, so initial weights match its draw order.
    this.initConv = this.registerModule('init_conv', new Conv2d(imageChannels, dim, 7, { padding: 3 }));
    this.timeMlp = this.registerModule('time_mlp', new Sequential(
      new SinusoidalPositionEmbedBlock(dim), new Linear(dim, timeDim), new GELU(), new Linear(timeDim, timeDim),
    ));
    this.classesMlp = numClasses
      ? this.registerModule('classes_mlp', new Sequential(new Linear(numClasses, timeDim), new GELU(), new Linear(timeDim, timeDim)))
      : null;
    // Self-attention only at the lowest resolution (Ho et al. use 16x16 of 32x32; here 7x7 of 28x28).
    this.downs = this.registerModule('downs', new ModuleList(inOut.map(([dIn, dOut], i) => new Level(
      Array.from({ length: n }, () => resnet(dIn, dIn)),
      i === last ? attn(dIn) : null,
      i === last ? new Conv2d(dIn, dOut, 3, { padding: 1 }) : new Sequential(new PixelUnshuffle(2), new Conv2d(dIn * 4, dOut, 1)),
    ))));
    const midDim = dims[dims.length - 1]!;
    this.midBlock1 = this.registerModule('mid_block1', resnet(midDim, midDim));
    this.midAttn = this.registerModule('mid_attn', attn(midDim));
    this.midBlock2 = this.registerModule('mid_block2', resnet(midDim, midDim));
    this.ups = this.registerModule('ups', new ModuleList([...inOut].reverse().map(([dIn, dOut], i) => new Level(
      Array.from({ length: n }, () => resnet(dOut + dIn, dOut)),
      i === 0 ? attn(dOut) : null,
      i === last ? new Conv2d(dOut, dIn, 3, { padding: 1 }) : new Sequential(new UpsampleNearest2x(), new Conv2d(dOut, dIn, 3, { padding: 1 })),
    ))));
    this.finalResBlock = this.registerModule('final_res_block', resnet(dim * 2, dim));
    this.finalConv = this.registerModule('final_conv', new Conv2d(dim, config.outChannels ?? imageChannels, 1));
  }

  /**
   * eps_theta(x_t, t[, c]): x (B, C, S, S) float32, t (B,) int64, c (B, numClasses) float32 one-hot rows
   * times the drop mask (omitted or a zero row: unconditional).
   */
  forward(x: Tensor, t: Tensor, c?: Tensor | null): Tensor {
    const cls = classInput('ddpm', this.numClasses, x, c);
    let h = this.initConv.forward(x); // (B, dim, S, S)
    const r = h;
    let emb = this.timeMlp.forward(t.float()); // (B, 4 dim)
    if (cls) emb = emb.add(this.classesMlp!.forward(cls));
    // Each activation is disposed once nothing below needs it, as Python frees it with its last
    // reference (autograd keeps what backward needs): sampling then reuses memory still in cache.
    const skips: Tensor[] = [];
    for (const level of this.downs.items) {
      for (const [i, block] of level.blocks.entries()) {
        const next = block.forward(h, emb);
        if (i === 0 && h !== r) h.dispose(); // the previous level's downsampled output
        h = next;
        if (level.attn && i === level.blocks.length - 1) h = residual(level.attn.forward(h), h);
        skips.push(h);
      }
      h = level.sample.forward(h); // (B, next channels, S/2, S/2) or the same size at the last level
    }
    const mid = this.midBlock1.forward(h, emb);
    h.dispose();
    const attended = residual(this.midAttn.forward(mid), mid);
    h = this.midBlock2.forward(attended, emb);
    attended.dispose();
    for (const level of this.ups.items) {
      for (const block of level.blocks) h = this.#withSkip(block, h, skips.pop()!, emb);
      if (level.attn) h = residual(level.attn.forward(h), h);
      const up = level.sample.forward(h); // (B, previous channels, 2S, 2S) or the same size at the last level
      h.dispose();
      h = up;
    }
    h = this.#withSkip(this.finalResBlock, h, r, emb); // (B, dim, S, S)
    const out = this.finalConv.forward(h); // (B, outChannels, S, S)
    h.dispose();
    return out;
  }

  /** block(cat([h, skip]), emb), freeing h, the skip and their concatenation. */
  #withSkip(block: ResnetBlock, h: Tensor, skip: Tensor, emb: Tensor): Tensor {
    const joined = cat([h, skip], 1);
    h.dispose();
    skip.dispose();
    const out = block.forward(joined, emb);
    joined.dispose();
    return out;
  }

  /** forward as ONNX nodes: t (B,) int64, c (B, numClasses) one-hot rows or null. */
  override onnx(g: OnnxGraph, x: OnnxValue, t: OnnxValue, c: OnnxValue | null): OnnxValue {
    let h = g.lower(this.initConv, x);
    const r = h;
    let emb = g.lower(this.timeMlp, g.cast(t, 'float32'));
    if (c) emb = g.add(emb, g.lower(this.classesMlp!, c));
    const skips: OnnxValue[] = [];
    for (const level of this.downs.items) {
      for (const [i, block] of level.blocks.entries()) {
        h = g.lower(block, h, emb);
        if (level.attn && i === level.blocks.length - 1) h = g.add(g.lower(level.attn, h), h);
        skips.push(h);
      }
      h = g.lower(level.sample, h);
    }
    h = g.lower(this.midBlock1, h, emb);
    h = g.add(g.lower(this.midAttn, h), h);
    h = g.lower(this.midBlock2, h, emb);
    for (const level of this.ups.items) {
      for (const block of level.blocks) h = g.lower(block, g.concat([h, skips.pop()!], 1), emb);
      if (level.attn) h = g.add(g.lower(level.attn, h), h);
      h = g.lower(level.sample, h);
    }
    return g.lower(this.finalConv, g.lower(this.finalResBlock, g.concat([h, r], 1), emb));
  }
}
