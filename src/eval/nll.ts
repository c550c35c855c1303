// Negative log-likelihood in bits per dimension from the variational bound (Ho et al. 2020, eq. 5;
// seeds/002 "ELBO Decomposition"), computed as improved-diffusion's `calc_bpd_loop` and
// `_vb_terms_bpd` do (Nichol & Dhariwal 2021):
//   L = KL(q(x_T | x_0) || N(0, I))                                   the prior term
//     + sum_{t >= 1} KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))     one term per t, x_t ~ q(x_t | x_0)
//     - log p(x_0 | x_1)                                              the discretised Gaussian decoder
// each averaged over dimensions and divided by ln 2. Index t runs 0..T-1 (schedule.ts), so the
// paper's t = 1 term, the decoder, is index 0 here. Data are 8-bit images scaled to [-1, 1].
// The reverse variance is a fixed one (reverseLogVariance) or, for a model trained with
// --learn-variance, its own per element (p_mean_variance's LEARNED_RANGE, diffusion/variance.ts).
import { type Tensor, type Generator, full, tidy, keep, noGrad, randnLike, ArgumentError } from '../tensor/index.js';
import {
  type Diffusion, type Objective, type ScheduleTerms, predictionsFromOutput, checkObjective, normalKl, discretizedGaussianLogLikelihood, learnedLogVariance,
} from '../diffusion/index.js';

export { normalKl, approxStandardNormalCdf, discretizedGaussianLogLikelihood } from '../diffusion/likelihood.js';
import { type ConditionalModelFn, type Variance, VARIANCES, oneHot } from '../samplers/index.js';

/**
 * log sigma_t^2 of the reverse process p(x_{t-1} | x_t) per t, as improved-diffusion's fixed
 * ModelVarTypes set it; at t = 0 (the decoder) every choice uses beta~ of the next step, since
 * beta~ is 0 there:
 *   posterior (FIXED_SMALL): log beta~_t, clipped at t = 0 (posterior_log_variance_clipped);
 *   beta      (FIXED_LARGE): log beta_t, with beta~_1 at t = 0 ("to get a better decoder log likelihood");
 *   notebook:  log beta_{t-1}, the course notebook's sampler (seeds/001), with beta~_1 at t = 0.
 */
export function reverseLogVariance(terms: ScheduleTerms, variance: Variance): Float64Array {
  const { T, beta, posteriorLogVarianceClipped: clipped } = terms;
  switch (variance) {
    case 'posterior': return Float64Array.from(clipped);
    case 'beta': return Float64Array.from({ length: T }, (_, t) => (t === 0 ? clipped[0]! : Math.log(beta[t]!)));
    case 'notebook': return Float64Array.from({ length: T }, (_, t) => (t === 0 ? clipped[0]! : Math.log(beta[t - 1]!)));
    case 'learned': return refuse('the learned variance is the model\'s output, one per element, not a fixed log variance per t (variationalBound reads it with learnVariance)');
    default: throw new ArgumentError(`nll: reverse variance must be one of ${VARIANCES.join(', ')}, got ${JSON.stringify(variance)}`);
  }
}

export interface BoundOptions {
  /** The network: (x_t, t (B,) int64, c (B, K) one-hot or null) -> its output for `objective` (eval mode). */
  model: ConditionalModelFn;
  diffusion: Diffusion;
  objective: Objective;
  /** The reverse variance (default posterior, improved-diffusion's FIXED_SMALL; learned for a learned-variance model). */
  variance?: Variance;
  /** The model's output has 2C channels, the second C its variance (--learn-variance): the mean is read from the first C. */
  learnVariance?: boolean;
  /** Clamp x0_hat to [-1, 1] before the posterior mean (improved-diffusion's clip_denoised; default true). */
  clipDenoised?: boolean;
  /** Images per forward pass (default 256). */
  batchSize?: number;
  /** Draws the noise of every x_t (a fresh draw per t, as calc_bpd_loop). */
  generator?: Generator;
  /** Class-conditional models: the number of classes and one class per image (the conditional likelihood p(x_0 | c)). */
  numClasses?: number;
  labels?: readonly number[];
  /** Called after each timestep of each batch. */
  onProgress?: (done: number, total: number) => void;
}

export interface BoundResult {
  /** The bound in bits per dimension, averaged over images. */
  bpd: number;
  /** The bound of each image, bits per dimension. */
  perImage: Float64Array;
  terms: {
    /** KL(q(x_T | x_0) || N(0, I)), bits/dim, mean over images. */
    prior: number;
    /** Per t, bits/dim, mean over images: the KL term for t >= 1 and the decoder NLL at t = 0 (calc_bpd_loop's vb), so bpd = prior + sum(vb). */
    vb: Float64Array;
    /** -log p(x_0 | x_1) in bits/dim (vb[0]). */
    decoder: number;
  };
  /** Per t: mean squared error of eps_hat (improved-diffusion's mse) and of x0_hat (xstart_mse). */
  epsMse: Float64Array;
  x0Mse: Float64Array;
  images: number;
  dims: number;
  variance: Variance;
  clipDenoised: boolean;
}

function refuse(msg: string): never { throw new ArgumentError(`nll: ${msg}`); }

/**
 * The variational bound of x0 (N, C, H, W), 8-bit images in [-1, 1], in bits per dimension: one
 * forward pass per timestep per batch. Terms are computed in float64 from the model's float32 output.
 */
export function variationalBound(x0: Tensor, o: BoundOptions): BoundResult {
  const objective = checkObjective(o.objective);
  const learnVariance = o.learnVariance ?? false;
  const variance = o.variance ?? (learnVariance ? 'learned' : 'posterior');
  if (!(VARIANCES as readonly string[]).includes(variance)) refuse(`reverse variance must be one of ${VARIANCES.join(', ')}, got ${JSON.stringify(variance)}`);
  if (variance === 'learned' && !learnVariance) refuse('variance learned needs a model trained with --learn-variance, and this one predicts no variance; use posterior, beta or notebook');
  const clip = o.clipDenoised ?? true;
  const d = o.diffusion;
  const terms = d.terms;
  const T = d.T;
  if (x0.rank !== 4) refuse(`images must be (N, C, H, W), got shape [${x0.shape.join(', ')}]`);
  const [n, c, h, w] = x0.shape as [number, number, number, number];
  const batchSize = o.batchSize ?? 256;
  if (!Number.isInteger(batchSize) || batchSize < 1) refuse(`batch size must be a positive integer, got ${batchSize}`);
  const numClasses = o.numClasses ?? 0;
  if (o.labels !== undefined) {
    if (numClasses < 1) refuse('class labels need a class-conditional model (numClasses >= 1)');
    if (o.labels.length !== n) refuse(`there are ${o.labels.length} labels for ${n} images; give one per image`);
  }
  if (objective === 'eps' && terms.alphaBar.some((ab) => ab === 0)) {
    refuse('the eps objective cannot give x0_hat where alphabar = 0 (a zero-terminal-SNR schedule); x0 = (x_t - sqrt(1 - alphabar) eps) / sqrt(alphabar) divides by 0');
  }
  const range = tidy(() => [x0.min().item(), x0.max().item()] as const);
  if (!(range[0] >= -1 && range[1] <= 1)) refuse(`images must lie in [-1, 1] (8-bit data scaled as x / 127.5 - 1), found values in [${range[0]}, ${range[1]}]`);

  const logVar = variance === 'learned' ? null : reverseLogVariance(terms, variance);
  const dims = c * h * w;
  const perImage = new Float64Array(n);
  const vb = new Float64Array(T);
  const epsMse = new Float64Array(T);
  const x0Mse = new Float64Array(T);
  let prior = 0;
  const total = Math.ceil(n / batchSize) * T;
  let done = 0;
  const meanFlatBits = (v: Tensor): Float64Array => Float64Array.from(v.mean([1, 2, 3]).div(Math.LN2).dataSync() as Float64Array);

  noGrad(() => {
    for (let start = 0; start < n; start += batchSize) {
      const b = Math.min(batchSize, n - start);
      const x = keep(tidy(() => x0.narrow(0, start, b).double())); // (B, C, H, W) float64
      const cond = o.labels ? keep(oneHot(o.labels.slice(start, start + b), numClasses)) : null; // (B, K)
      try {
        // Prior: q(x_T | x_0) = N(sqrt(alphabar_T) x_0, (1 - alphabar_T) I) against N(0, I).
        const abT = terms.alphaBar[T - 1]!;
        const priorBits = tidy(() => meanFlatBits(normalKl(x.mul(Math.sqrt(abT)), Math.log1p(-abT), 0, 0)));
        for (let i = 0; i < b; i++) {
          perImage[start + i]! += priorBits[i]!;
          prior += priorBits[i]!;
        }
        for (let t = T - 1; t >= 0; t--) {
          const r = tidy(() => {
            const noise = randnLike(x, o.generator); // (B, C, H, W) float64
            const { a, s } = d.coefs(t);
            const xt = x.mul(a).add(noise.mul(s));
            const raw = o.model(xt.float(), full([b], t, { dtype: 'int64' }), cond).double(); // (B, C or 2C, H, W)
            if (raw.shape[1] !== (learnVariance ? 2 * c : c)) refuse(`the model's output at t=${t} has ${raw.shape[1]} channels, expected ${learnVariance ? `${2 * c} (the mean's ${c} and the learned variance's ${c})` : c}`);
            const out = learnVariance ? raw.narrow(1, 0, c) : raw;
            // p_mean_variance's LEARNED_RANGE: between log beta_t and the clipped log beta~_t, per element.
            const lv: Tensor | number = logVar ? logVar[t]! : learnedLogVariance(raw.narrow(1, c, c), Math.log(terms.beta[t]!), terms.posteriorLogVarianceClipped[t]!);
            const pred = predictionsFromOutput(objective, out, xt, a, s);
            const x0Hat = clip ? pred.x0.clamp(-1, 1) : pred.x0;
            // The model's mean: the posterior mean at x0_hat (p_mean_variance for every fixed-variance model).
            const modelMean = x0Hat.mul(terms.posteriorMeanCoef1[t]!).add(xt.mul(terms.posteriorMeanCoef2[t]!));
            let bits: Tensor;
            if (t === 0) {
              bits = discretizedGaussianLogLikelihood(x, modelMean, typeof lv === 'number' ? 0.5 * lv : lv.mul(0.5)).neg();
            } else {
              const trueMean = x.mul(terms.posteriorMeanCoef1[t]!).add(xt.mul(terms.posteriorMeanCoef2[t]!));
              bits = normalKl(trueMean, terms.posteriorLogVarianceClipped[t]!, modelMean, lv);
            }
            // The noise consistent with x0_hat at x_t (calc_bpd_loop's _predict_eps_from_xstart); undefined where alphabar = 1.
            const epsHat = s > 0 ? xt.sub(x0Hat.mul(a)).div(s) : pred.eps;
            return {
              bits: meanFlatBits(bits),
              epsSq: epsHat.sub(noise).square().mean().item(),
              x0Sq: x0Hat.sub(x).square().mean().item(),
            };
          });
          for (let i = 0; i < b; i++) {
            const v = r.bits[i]!;
            if (!Number.isFinite(v)) throw new Error(`nll: the bound term at t=${t} of image ${start + i} is ${v}; the model's output is not finite there (a diverged checkpoint?)`);
            perImage[start + i]! += v;
            vb[t]! += v;
          }
          epsMse[t]! += r.epsSq * b;
          x0Mse[t]! += r.x0Sq * b;
          o.onProgress?.(++done, total);
        }
      } finally {
        x.dispose();
        cond?.dispose();
      }
    }
  });
  for (let t = 0; t < T; t++) {
    vb[t]! /= n;
    epsMse[t]! /= n;
    x0Mse[t]! /= n;
  }
  const bpd = perImage.reduce((acc, v) => acc + v, 0) / n;
  return { bpd, perImage, terms: { prior: prior / n, vb, decoder: vb[0]! }, epsMse, x0Mse, images: n, dims, variance, clipDenoised: clip };
}
