// Pieces the U-Net presets share: the sinusoidal time embedding, space-to-depth pooling, the
// class input of the course's notebook 04 (classifier-free guidance) and the checks on a preset's
// configuration.
import * as F from '../tensor/functional.js';
import { type Tensor, arange, cat, tidy, zeros, ArgumentError } from '../tensor/index.js';
import { describe } from '../tensor/check.js';
import { Layer, type OnnxGraph, type OnnxValue } from '../nn/index.js';

/**
 * sin and cos of t at dim/2 frequencies 10000^(-i / (dim/2 - 1)) (Vaswani et al. 2017, as the course's
 * notebook 03 and lucidrains' SinusoidalPosEmb compute it, in float32): t (B,) -> (B, dim).
 */
export function sinusoidalEmbedding(t: Tensor, dim: number): Tensor {
  const freqs = sinusoidalFrequencies(dim, t.device); // (dim/2,)
  const args = t.float().unsqueeze(1).mul(freqs.unsqueeze(0)); // (B, dim/2)
  return cat([args.sin(), args.cos()], -1); // (B, dim)
}

/** 10000^(-i / (dim/2 - 1)) for i < dim/2, computed in float32 as the notebook does. */
function sinusoidalFrequencies(dim: number, device: Tensor['device'] = 'cpu'): Tensor {
  const half = Math.floor(dim / 2);
  const e = Math.log(10000) / (half - 1);
  return arange(0, half, 1, { dtype: 'float32', device }).mul(-e).exp(); // (dim/2,)
}

/** The notebook's SinusoidalPositionEmbedBlock: no parameters, so nothing in the state dict. */
export class SinusoidalPositionEmbedBlock extends Layer {
  constructor(readonly dim: number) { super(); }
  forward(time: Tensor): Tensor { return sinusoidalEmbedding(time, this.dim); }
  /** time: float (B,). The frequencies are the constants forward computes, taken from libtorch. */
  override onnx(g: OnnxGraph, time: OnnxValue): OnnxValue {
    const freqs = tidy(() => sinusoidalFrequencies(this.dim).dataSync() as Float32Array);
    const args = g.mul(g.unsqueeze(time, 1), g.constant(freqs, [1, freqs.length])); // (B, dim/2)
    return g.concat([g.unary('Sin', args), g.unary('Cos', args)], -1); // (B, dim)
  }
}

/** einops' Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2), which is pixel_unshuffle(2). */
export class PixelUnshuffle extends Layer {
  constructor(readonly factor: number) { super(); }
  forward(x: Tensor): Tensor { return F.pixelUnshuffle(x, this.factor); } // (B, C r^2, H/r, W/r)
  /** As a reshape and a transpose: ONNX's SpaceToDepth orders the channels differently (block first). */
  override onnx(g: OnnxGraph, x: OnnxValue): OnnxValue {
    const r = this.factor;
    const [, c, h, w] = x.shape as [null, number, number, number];
    const blocks = g.reshape(x, [null, c, h / r, r, w / r, r]); // (B, C, H/r, r, W/r, r)
    return g.reshape(g.transpose(blocks, [0, 1, 3, 5, 2, 4]), [null, c * r * r, h / r, w / r]); // (B, C r^2, H/r, W/r)
  }
}

/**
 * notebook 04's class input from integer labels inside the graph: (B,) int64 -> (B, numClasses)
 * float32 one-hot rows, and an all-zero row (no class) for -1, where ONNX's OneHot would count
 * negative labels from the end.
 */
export function oneHotOnnx(g: OnnxGraph, labels: OnnxValue, numClasses: number): OnnxValue {
  const classes = g.constant(Array.from({ length: numClasses }, (_, i) => i), [1, numClasses], 'int64');
  const hit = g.op('Equal', [g.unsqueeze(labels, 1), classes], [labels.shape[0]!, numClasses], {}, 'bool'); // (B, numClasses)
  return g.cast(hit, 'float32');
}

/**
 * The class input c of notebook 04: float32 (B, numClasses), one-hot rows already multiplied by the
 * drop mask, so a zero row means "no class". Returns null for an unconditional model and a zero c
 * for a conditional one called without c.
 */
export function classInput(preset: string, numClasses: number, x: Tensor, c: Tensor | null | undefined): Tensor | null {
  if (numClasses === 0) {
    if (c !== null && c !== undefined) {
      throw new ArgumentError(`${preset}: this model is unconditional (numClasses 0) but was given a class input c (${describe(c)}); omit c, or build the model with numClasses > 0`);
    }
    return null;
  }
  const b = x.shape[0]!;
  if (c === null || c === undefined) return zeros([b, numClasses], { device: x.device }); // (B, numClasses): every row "no class"
  if (c.dtype !== 'float32' || c.rank !== 2 || c.shape[0] !== b || c.shape[1] !== numClasses) {
    throw new ArgumentError(`${preset}: class input c must be float32 of shape [${b}, ${numClasses}] (batch, numClasses: one-hot rows times the drop mask), got ${c.dtype} of shape [${c.shape.join(', ')}]; one-hot the labels and convert with .float()`);
  }
  return c;
}

const COUNT_WORDS = ['no', 'one', 'two', 'three', 'four', 'five', 'six'];

/** Refuses an image size that `downsamplings` 2x reductions cannot divide, naming the nearest sizes that work. */
export function checkImageSize(preset: string, size: number, downsamplings: number): void {
  const m = 2 ** downsamplings;
  if (Number.isInteger(size) && size >= m && size % m === 0) return;
  const lower = Number.isFinite(size) ? Math.floor(size / m) * m : 0;
  const use = lower >= m ? `${lower} or ${lower + m}` : `${m}`;
  const what = Number.isFinite(size) && size >= m ? `is not divisible by ${m}` : `is not a positive multiple of ${m}`;
  const n = COUNT_WORDS[downsamplings] ?? String(downsamplings);
  throw new ArgumentError(`${preset}: image size ${size} ${what} (${n} 2x downsampling${downsamplings === 1 ? '' : 's'}); use ${use}`);
}

export function checkNumClasses(preset: string, numClasses: number): void {
  if (!Number.isInteger(numClasses) || numClasses < 0) {
    throw new ArgumentError(`${preset}: numClasses must be an integer >= 0 (0 = unconditional), got ${numClasses}`);
  }
}

export function checkT(preset: string, T: number): void {
  if (!Number.isInteger(T) || T < 1) throw new ArgumentError(`${preset}: T must be an integer >= 1, got ${T}`);
}
