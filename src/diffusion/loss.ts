// Training objectives. The simple loss of Ho et al. 2020 (eq. 14) is the MSE between the model's
// output and its target (eps, x_0 or v, see objectives.ts), averaged; min-SNR-gamma (Hang et al.
// 2023) weights each example by min(SNR(t), gamma) over the weight that turns its target's MSE into
// an x_0 MSE, as lucidrains' denoising-diffusion-pytorch does.
import { type Tensor, type Generator, type BatchShare, drawShare, randint, randn, mseLoss, tidy, ArgumentError } from '../tensor/index.js';
import type { Diffusion } from './process.js';
import { objectiveTarget, type Objective } from './objectives.js';

/** A network's output for (x_t, t): the noise for the eps objective, else x_0 or v. */
export type ModelFn = (xt: Tensor, t: Tensor) => Tensor;
/** Kept for the eps objective's readers: a ModelFn that predicts the noise. */
export type NoisePredictor = ModelFn;

export const LOSS_WEIGHTINGS = ['simple', 'min-snr'] as const;
export type LossWeighting = (typeof LOSS_WEIGHTINGS)[number];

export interface LossOptions {
  objective?: Objective;
  weighting?: LossWeighting;
  /** gamma of min-SNR-gamma; Hang et al. 2023 find 5 best. */
  minSnrGamma?: number;
  /** Offset noise (Guttenberg 2023): eps += strength * N(0, 1) per example and channel; 0 turns it off. */
  offsetNoise?: number;
  generator?: Generator;
  /** Data parallel: x0 is these rows of a global batch; t and the noise are drawn for the whole of it. */
  share?: BatchShare;
}

/** The simple loss with the eps objective: t ~ U{0..T-1}, x_t ~ q(x_t | x_0), MSE between the noise and its prediction. */
export function simpleLoss(diffusion: Diffusion, model: ModelFn, x0: Tensor, generator?: Generator): Tensor {
  return diffusionLoss(diffusion, model, x0, generator ? { generator } : {});
}

/** min(SNR, gamma) / w_objective(SNR): eps -> SNR, x0 -> 1, v -> SNR + 1 (the factor relating each target's MSE to x_0's). */
export function minSnrWeight(snr: number, objective: Objective, gamma: number): number {
  const clipped = Math.min(snr, gamma);
  switch (objective) {
    case 'eps': return clipped / snr;
    case 'x0': return clipped;
    case 'v': return clipped / (snr + 1);
    default: throw new ArgumentError(`objective must be one of eps, x0, v, got ${JSON.stringify(objective)}`);
  }
}

/** One training loss for a batch of clean images x0 (B, C, H, W). */
export function diffusionLoss(diffusion: Diffusion, model: ModelFn, x0: Tensor, o: LossOptions = {}): Tensor {
  const objective = o.objective ?? 'eps';
  const weighting = o.weighting ?? 'simple';
  const gamma = o.minSnrGamma ?? 5;
  if (!(gamma > 0)) throw new ArgumentError(`loss: min-SNR gamma must be > 0, got ${gamma}`);
  const gen = o.generator ? { generator: o.generator } : {};
  return tidy(() => {
    const b = x0.shape[0]!;
    const [, ...chw] = x0.shape;
    // Drawn on the CPU generator whatever x0's device, then moved: the same t and noise on every device.
    const onDevice = (u: Tensor): Tensor => (x0.device === 'cpu' ? u : u.to(x0.device));
    const t = onDevice(drawShare(o.share, b, (n) => randint(0, diffusion.T, [n], gen))); // (B,)
    let noise = drawShare(o.share, b, (n) => randn([n, ...chw], { ...gen, dtype: x0.dtype })); // (B, C, H, W)
    if (o.offsetNoise) noise = noise.add(drawShare(o.share, b, (n) => randn([n, chw[0]!, 1, 1], gen)).mul(o.offsetNoise));
    noise = onDevice(noise);
    const { xt } = diffusion.qSample(x0, t, noise);
    const a = diffusion.extract('sqrtAlphaBar', t, x0.rank);
    const s = diffusion.extract('sqrtOneMinusAlphaBar', t, x0.rank);
    const target = objectiveTarget(objective, x0, noise, a, s);
    const out = model(xt, t);
    if (weighting === 'simple') return mseLoss(out, target);
    if (weighting !== 'min-snr') throw new ArgumentError(`loss weighting must be one of simple, min-snr, got ${JSON.stringify(weighting)}`);
    const snr = diffusion.terms.snr;
    const w = diffusion.table(Float64Array.from(snr, (v) => minSnrWeight(v, objective, gamma)), `min-snr-${objective}-${gamma}`, t.device);
    const perExample = mseLoss(out, target, 'none').mean([1, 2, 3]); // (B,)
    return perExample.mul(w.indexSelect(0, t)).mean();
  });
}
