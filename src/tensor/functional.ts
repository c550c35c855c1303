// Layer-level ops with torch.nn.functional's semantics, each one addon call after checks.
import { native, type Handle } from './native.js';
import { Tensor, checkSameDevice } from './tensor.js';
import { ArgumentError, checkInt, fail, normDim, pair } from './check.js';

type Pair = number | [number, number];

function need4d(op: string, x: Tensor): number[] {
  const s = x.shape;
  if (s.length !== 4) throw new ArgumentError(`${op}: expected input of shape (N, C, H, W), got [${s.join(', ')}]`);
  return s;
}

function checkBias(op: string, bias: Tensor | null | undefined, n: number): void {
  if (bias && (bias.rank !== 1 || bias.shape[0] !== n)) {
    throw new ArgumentError(`${op}: bias must have shape [${n}], got [${bias.shape.join(', ')}]`);
  }
}

/** y = x W^T + b. x (..., in), weight (out, in). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  checkSameDevice('linear', x, weight);
  const [out, inF] = weight.shape;
  const xs = x.shape;
  if (weight.rank !== 2 || xs[xs.length - 1] !== inF) {
    throw new ArgumentError(`linear: input of shape [${xs.join(', ')}] does not match weight [${weight.shape.join(', ')}]: the last input dim must be ${inF}`);
  }
  checkBias('linear', bias, out!);
  return new Tensor(native.linear(x.handle, weight.handle, bias?.handle ?? null));
}

export interface Conv2dOptions { stride?: Pair; padding?: Pair; dilation?: Pair; groups?: number }

/** x (N, Cin, H, W), weight (Cout, Cin/groups, kH, kW). */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, o: Conv2dOptions = {}): Tensor {
  const xs = need4d('conv2d', x);
  checkSameDevice('conv2d', x, weight);
  const groups = checkInt('conv2d: groups', o.groups ?? 1, 1);
  const w = weight.shape;
  if (w.length !== 4 || w[1]! * groups !== xs[1] || w[0]! % groups !== 0) {
    throw new ArgumentError(`conv2d: input [${xs.join(', ')}] has ${xs[1]} channels, but weight [${w.join(', ')}] with groups=${groups} expects ${w[1]! * groups}`);
  }
  checkBias('conv2d', bias, w[0]!);
  return new Tensor(native.conv2d(x.handle, weight.handle, bias?.handle ?? null,
    pair('conv2d: stride', o.stride ?? 1, 1), pair('conv2d: padding', o.padding ?? 0), pair('conv2d: dilation', o.dilation ?? 1, 1), groups));
}

export interface ConvTranspose2dOptions extends Conv2dOptions { outputPadding?: Pair }

/** convTranspose2d's arguments, checked, with each pair spelled out. */
export interface ConvTranspose2dParams {
  stride: [number, number]; padding: [number, number]; outputPadding: [number, number]; dilation: [number, number]; groups: number;
  /** Output height and width. */
  outSize: [number, number];
}

/**
 * Checks convTranspose2d's input, weight, bias and options as torch would, with messages that name
 * the mismatch; the sub-pixel form (nn/sub-pixel.ts) checks through here too.
 */
export function checkConvTranspose2d(x: Tensor, weight: Tensor, bias: Tensor | null | undefined, o: ConvTranspose2dOptions): ConvTranspose2dParams {
  const xs = need4d('convTranspose2d', x);
  checkSameDevice('convTranspose2d', x, weight);
  const groups = checkInt('convTranspose2d: groups', o.groups ?? 1, 1);
  const w = weight.shape;
  if (w.length !== 4 || w[0] !== xs[1]) {
    throw new ArgumentError(`convTranspose2d: input [${xs.join(', ')}] has ${xs[1]} channels, but weight [${w.join(', ')}] expects ${w[0]}`);
  }
  checkBias('convTranspose2d', bias, w[1]! * groups);
  const stride = pair('convTranspose2d: stride', o.stride ?? 1, 1);
  const dilation = pair('convTranspose2d: dilation', o.dilation ?? 1, 1);
  const padding = pair('convTranspose2d: padding', o.padding ?? 0);
  const outputPadding = pair('convTranspose2d: outputPadding', o.outputPadding ?? 0);
  if (outputPadding[0] >= Math.max(stride[0], dilation[0]) || outputPadding[1] >= Math.max(stride[1], dilation[1])) {
    throw new ArgumentError(`convTranspose2d: outputPadding [${outputPadding.join(', ')}] must be smaller than stride or dilation [${stride.join(', ')}]`);
  }
  // torch: out = (in - 1) stride - 2 padding + dilation (kernel - 1) + outputPadding + 1
  const outSize = [0, 1].map((i) => (xs[2 + i]! - 1) * stride[i]! - 2 * padding[i]! + dilation[i]! * (w[2 + i]! - 1) + outputPadding[i]! + 1) as [number, number];
  if (outSize[0] < 1 || outSize[1] < 1) {
    throw new ArgumentError(`convTranspose2d: input [${xs.join(', ')}] with kernel ${w[2]}x${w[3]}, stride [${stride.join(', ')}] and padding [${padding.join(', ')}] gives an output of ${outSize.join('x')}; it must be at least 1x1`);
  }
  return { stride, padding, outputPadding, dilation, groups, outSize };
}

/** x (N, Cin, H, W), weight (Cin, Cout/groups, kH, kW). */
export function convTranspose2d(x: Tensor, weight: Tensor, bias?: Tensor | null, o: ConvTranspose2dOptions = {}): Tensor {
  const p = checkConvTranspose2d(x, weight, bias, o);
  return new Tensor(native.convTranspose2d(x.handle, weight.handle, bias?.handle ?? null, p.stride, p.padding, p.outputPadding, p.groups, p.dilation));
}

export function maxPool2d(x: Tensor, kernelSize: Pair, o: { stride?: Pair; padding?: Pair; dilation?: Pair; ceilMode?: boolean } = {}): Tensor {
  need4d('maxPool2d', x);
  const k = pair('maxPool2d: kernelSize', kernelSize, 1);
  return new Tensor(native.maxPool2d(x.handle, k, pair('maxPool2d: stride', o.stride ?? k, 1), pair('maxPool2d: padding', o.padding ?? 0),
    pair('maxPool2d: dilation', o.dilation ?? 1, 1), o.ceilMode ?? false));
}

export function avgPool2d(x: Tensor, kernelSize: Pair, o: { stride?: Pair; padding?: Pair; ceilMode?: boolean; countIncludePad?: boolean } = {}): Tensor {
  need4d('avgPool2d', x);
  const k = pair('avgPool2d: kernelSize', kernelSize, 1);
  return new Tensor(native.avgPool2d(x.handle, k, pair('avgPool2d: stride', o.stride ?? k, 1), pair('avgPool2d: padding', o.padding ?? 0),
    o.ceilMode ?? false, o.countIncludePad ?? true));
}

export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  need4d('adaptiveAvgPool2d', x);
  return new Tensor(native.adaptiveAvgPool2d(x.handle, pair('adaptiveAvgPool2d: outputSize', outputSize, 1)));
}

export interface BatchNormOptions { training: boolean; momentum?: number; eps?: number }

/** Batch normalisation; in training, runningMean/runningVar are updated in place (torch semantics). */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, weight: Tensor | null, bias: Tensor | null, o: BatchNormOptions): Tensor {
  const c = x.shape[1];
  for (const [name, t] of [['runningMean', runningMean], ['runningVar', runningVar], ['weight', weight], ['bias', bias]] as const) {
    if (t && (t.rank !== 1 || t.shape[0] !== c)) throw new ArgumentError(`batchNorm: ${name} must have shape [${c}] for input [${x.shape.join(', ')}], got [${t.shape.join(', ')}]`);
  }
  if (!o.training && (!runningMean || !runningVar)) fail('batchNorm', 'running statistics in eval mode', null);
  return new Tensor(native.batchNorm(x.handle, weight?.handle ?? null, bias?.handle ?? null, runningMean?.handle ?? null,
    runningVar?.handle ?? null, o.training, o.momentum ?? 0.1, o.eps ?? 1e-5));
}

export function groupNorm(x: Tensor, numGroups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const c = x.shape[1]!;
  checkInt('groupNorm: numGroups', numGroups, 1);
  if (c % numGroups !== 0) throw new ArgumentError(`groupNorm: ${c} channels cannot be split into ${numGroups} groups`);
  checkBias('groupNorm', weight, c);
  checkBias('groupNorm', bias, c);
  return new Tensor(native.groupNorm(x.handle, numGroups, weight?.handle ?? null, bias?.handle ?? null, eps));
}

export function layerNorm(x: Tensor, normalizedShape: number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const s = x.shape;
  const tail = s.slice(s.length - normalizedShape.length);
  if (tail.join() !== normalizedShape.join()) {
    throw new ArgumentError(`layerNorm: normalizedShape [${normalizedShape.join(', ')}] must match the last dims of input [${s.join(', ')}]`);
  }
  return new Tensor(native.layerNorm(x.handle, normalizedShape, weight?.handle ?? null, bias?.handle ?? null, eps));
}

export function softmax(x: Tensor, dim: number): Tensor { return new Tensor(native.softmax(x.handle, normDim('softmax', dim, x.rank))); }
export function logSoftmax(x: Tensor, dim: number): Tensor { return new Tensor(native.logSoftmax(x.handle, normDim('logSoftmax', dim, x.rank))); }

export interface InterpolateOptions { size: [number, number]; mode?: 'nearest' | 'bilinear'; alignCorners?: boolean; antialias?: boolean }

/** Resizes (N, C, H, W) images; bilinear with antialias matches torchvision's Resize on tensors. */
export function interpolate(x: Tensor, o: InterpolateOptions): Tensor {
  need4d('interpolate', x);
  const size = pair('interpolate: size', o.size, 1);
  const mode = o.mode ?? 'nearest';
  if (mode === 'nearest') {
    if (o.antialias) fail('interpolate', 'antialias only with mode bilinear', mode);
    return new Tensor(native.upsampleNearest2d(x.handle, size));
  }
  if (mode !== 'bilinear') fail('interpolate: mode', '"nearest" or "bilinear"', mode);
  return new Tensor(native.upsampleBilinear2d(x.handle, size, o.alignCorners ?? false, o.antialias ?? false));
}

export function pad(x: Tensor, pads: number[], mode: 'constant' | 'reflect' | 'replicate' = 'constant', value = 0): Tensor {
  if (pads.length % 2 !== 0 || pads.length / 2 > x.rank) fail('pad: pads', `an even number of values (at most ${2 * x.rank})`, pads);
  if (mode === 'constant') return new Tensor(native.constantPad(x.handle, pads, value));
  need4d('pad', x);
  if (pads.length !== 4) fail(`pad: pads for mode ${mode}`, '[left, right, top, bottom]', pads);
  return new Tensor(mode === 'reflect' ? native.reflectionPad2d(x.handle, pads) : native.replicationPad2d(x.handle, pads));
}

export function pixelShuffle(x: Tensor, upscaleFactor: number): Tensor {
  const s = need4d('pixelShuffle', x);
  const r = checkInt('pixelShuffle: upscaleFactor', upscaleFactor, 1);
  if (s[1]! % (r * r) !== 0) throw new ArgumentError(`pixelShuffle: ${s[1]} channels are not divisible by upscaleFactor^2 = ${r * r}`);
  return new Tensor(native.pixelShuffle(x.handle, r));
}

export function pixelUnshuffle(x: Tensor, downscaleFactor: number): Tensor {
  const s = need4d('pixelUnshuffle', x);
  const r = checkInt('pixelUnshuffle: downscaleFactor', downscaleFactor, 1);
  if (s[2]! % r !== 0 || s[3]! % r !== 0) throw new ArgumentError(`pixelUnshuffle: spatial size ${s[2]}x${s[3]} is not divisible by ${r}`);
  return new Tensor(native.pixelUnshuffle(x.handle, r));
}

export function embedding(weight: Tensor, indices: Tensor): Tensor {
  if (indices.dtype !== 'int64') throw new ArgumentError(`embedding: indices must be int64, got ${indices.dtype}`);
  return new Tensor(native.embedding(weight.handle, indices.handle));
}

/** Dropout with torch's default generator; identity when not training. */
export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  if (!(p >= 0 && p <= 1)) fail('dropout: p', 'a probability in [0, 1]', p);
  return new Tensor(native.dropout(x.handle, p, training));
}

const REDUCTION = { none: 0, mean: 1, sum: 2 } as const;
export type Reduction = keyof typeof REDUCTION;

export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  if (input.shape.join() !== target.shape.join()) {
    throw new ArgumentError(`mseLoss: input [${input.shape.join(', ')}] and target [${target.shape.join(', ')}] must have the same shape`);
  }
  return new Tensor(native.mseLoss(input.handle, target.handle, REDUCTION[reduction]));
}

/** logits (N, C), target (N) int64 class indices. */
export function crossEntropy(logits: Tensor, target: Tensor, o: { reduction?: Reduction; labelSmoothing?: number; ignoreIndex?: number } = {}): Tensor {
  if (target.dtype !== 'int64') throw new ArgumentError(`crossEntropy: target must be int64 class indices, got ${target.dtype}`);
  if (logits.shape[0] !== target.shape[0]) throw new ArgumentError(`crossEntropy: logits [${logits.shape.join(', ')}] and target [${target.shape.join(', ')}] disagree on the batch size`);
  return new Tensor(native.crossEntropy(logits.handle, target.handle, null, REDUCTION[o.reduction ?? 'mean'], o.ignoreIndex ?? -100, o.labelSmoothing ?? 0));
}

/** softmax(q k^T / sqrt(d) [+ mask]) v over the last two dims (Vaswani et al. 2017), composed of primitives. */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, mask?: Tensor): Tensor {
  const d = q.shape[q.rank - 1]!;
  let scores = q.matmul(k.transpose(-2, -1)).mul(1 / Math.sqrt(d)); // (..., Lq, Lk)
  if (mask) scores = scores.add(mask);
  return softmax(scores, -1).matmul(v); // (..., Lq, Dv)
}

/** Pairwise p-norm distances between the rows of a (N, D) and b (M, D): (N, M). */
export function cdist(a: Tensor, b: Tensor, p = 2): Tensor {
  if (a.rank !== 2 || b.rank !== 2 || a.shape[1] !== b.shape[1]) {
    throw new ArgumentError(`cdist: expected a (N, D) and b (M, D), got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  }
  return new Tensor(native.cdist(a.handle, b.handle, p));
}

/** Eigen-decomposition of a symmetric matrix (its lower triangle is read): ascending eigenvalues and column eigenvectors. */
export function linalgEigh(a: Tensor): { values: Tensor; vectors: Tensor } {
  if (a.rank !== 2 || a.shape[0] !== a.shape[1]) throw new ArgumentError(`linalgEigh: expected a square matrix, got [${a.shape.join(', ')}]`);
  const [values, vectors] = native.linalgEigh(a.handle) as [Handle, Handle];
  return { values: new Tensor(values), vectors: new Tensor(vectors) };
}
