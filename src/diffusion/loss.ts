// Training objectives. The simple loss of Ho et al. 2020 (eq. 14) is the MSE between the model's
// output and its target (eps, x_0 or v, see objectives.ts), averaged; min-SNR-gamma (Hang et al.
// 2023) weights each example by min(SNR(t), gamma) over the weight that turns its target's MSE into
// an x_0 MSE, as lucidrains' denoising-diffusion-pytorch does.
// With a learned variance the loss is the hybrid L_simple + lambda L_vlb of Nichol & Dhariwal 2021
// (section 3.1, lambda = 0.001), as improved-diffusion's training_losses computes it (see hybridVbTerm).
import { type Tensor, type Generator, type BatchShare, drawShare, randint, randn, mseLoss, tidy, where, ArgumentError } from '../tensor/index.js';
import type { Diffusion } from './process.js';
import { objectiveTarget, predictionsFromOutput, type Objective } from './objectives.js';
import { normalKl, discretizedGaussianLogLikelihood } from './likelihood.js';
import { learnedLogVariance } from './variance.js';

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
  /** The model's output has 2C channels, the second C a learned variance: the hybrid loss (Nichol & Dhariwal 2021). */
  learnVariance?: boolean;
}

/** lambda of L_hybrid = L_simple + lambda L_vlb (Nichol & Dhariwal 2021, section 3.1). */
export const HYBRID_LAMBDA = 0.001;

/**
 * One example's term of L_vlb in bits per dimension for a learned-variance model, improved-diffusion's
 * _vb_terms_bpd with clip_denoised=False: KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) for t >= 1
 * (index t > 0 here), and the discretised Gaussian decoder's -log p(x_0 | x_1) at index t = 0. The
 * model's mean is the posterior mean at its x0_hat (read from `meanOut` for the objective), its log
 * variance learnedLogVariance(v). Returns (B,).
 */
export function vbTermsBpd(diffusion: Diffusion, objective: Objective, meanOut: Tensor, v: Tensor, x0: Tensor, xt: Tensor, t: Tensor): Tensor {
  return tidy(() => {
    const rank = x0.rank;
    const a = diffusion.extract('sqrtAlphaBar', t, rank);
    const s = diffusion.extract('sqrtOneMinusAlphaBar', t, rank);
    const { x0: x0Hat } = predictionsFromOutput(objective, meanOut, xt, a, s);
    const truth = diffusion.qPosterior(x0, xt, t);
    const modelMean = diffusion.qPosterior(x0Hat, xt, t).mean;
    const logBeta = diffusion.table(Float64Array.from(diffusion.terms.beta, Math.log), 'logBeta', t.device).indexSelect(0, t).reshape(a.shape); // (B, 1, 1, 1)
    const logVar = learnedLogVariance(v, logBeta, truth.logVariance);
    const dims = Array.from({ length: rank - 1 }, (_, i) => i + 1);
    const kl = normalKl(truth.mean, truth.logVariance, modelMean, logVar).mean(dims).div(Math.LN2); // (B,)
    const decoderNll = discretizedGaussianLogLikelihood(x0, modelMean, logVar.mul(0.5)).mean(dims).neg().div(Math.LN2); // (B,)
    return where(t.eq(0), decoderNll, kl);
  });
}

/**
 * lambda L_vlb of a batch, as improved-diffusion's RESCALED_MSE (its default with learn_sigma, from
 * rescale_learned_sigmas=True): the mean over examples of vb_t * T / 1000. With t uniform, T vb_t is
 * the one-sample estimate of L_vlb = sum_t L_t, so T / 1000 = lambda T. The mean output enters
 * detached ("stop-gradient"): L_vlb trains the variance only, L_simple the mean.
 */
export function hybridVbTerm(diffusion: Diffusion, objective: Objective, out: Tensor, x0: Tensor, xt: Tensor, t: Tensor): Tensor {
  return tidy(() => {
    const c = x0.shape[1]!;
    const [meanOut, v] = out.split([c, c], 1) as [Tensor, Tensor];
    return vbTermsBpd(diffusion, objective, meanOut.detach(), v, x0, xt, t).mean().mul(HYBRID_LAMBDA * diffusion.T);
  });
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
    const raw = model(xt, t); // (B, C, H, W), or (B, 2C, H, W) with a learned variance
    const c = chw[0]!;
    const outC = c * (o.learnVariance ? 2 : 1);
    if (raw.rank !== x0.rank || raw.shape[1] !== outC) {
      throw new ArgumentError(`loss: the model's output has shape [${raw.shape.join(', ')}], expected ${outC} channels (${o.learnVariance ? `${c} for the mean and ${c} for the learned variance` : 'one per image channel'})`);
    }
    const out = o.learnVariance ? raw.narrow(1, 0, c) : raw; // (B, C, H, W)
    let simple: Tensor;
    if (weighting === 'simple') simple = mseLoss(out, target);
    else if (weighting !== 'min-snr') throw new ArgumentError(`loss weighting must be one of simple, min-snr, got ${JSON.stringify(weighting)}`);
    else {
      const snr = diffusion.terms.snr;
      const w = diffusion.table(Float64Array.from(snr, (v) => minSnrWeight(v, objective, gamma)), `min-snr-${objective}-${gamma}`, t.device);
      const perExample = mseLoss(out, target, 'none').mean([1, 2, 3]); // (B,)
      simple = perExample.mul(w.indexSelect(0, t)).mean();
    }
    return o.learnVariance ? simple.add(hybridVbTerm(diffusion, objective, raw, x0, xt, t)) : simple;
  });
}
