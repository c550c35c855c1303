// DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), with the reverse variance selectable:
//   notebook: sigma_t^2 = beta_{t-1}, as the course notebook's reverse_q writes it (seeds/001)
//   beta:     sigma_t^2 = beta_t, the paper's "fixed large" choice
//   posterior: sigma_t^2 = beta~_t, the paper's "fixed small" choice (the true posterior variance)
// No noise is added at the last step (t = 0) in all three.
import { type Tensor, type Generator, randn, randnLike, noGrad, tidy, keep, full, cat, ArgumentError } from '../tensor/index.js';
import type { Diffusion } from '../diffusion/index.js';
import type { NoisePredictor } from '../diffusion/loss.js';

export const VARIANCES = ['notebook', 'beta', 'posterior'] as const;
export type Variance = (typeof VARIANCES)[number];

export function reverseSigma(d: Diffusion, t: number, variance: Variance): number {
  if (t === 0) return 0;
  const { beta, posteriorVariance } = d.terms;
  switch (variance) {
    case 'notebook': return Math.sqrt(beta[t - 1]!);
    case 'beta': return Math.sqrt(beta[t]!);
    case 'posterior': return Math.sqrt(posteriorVariance[t]!);
    default: throw new ArgumentError(`reverse variance must be one of ${VARIANCES.join(', ')}, got ${JSON.stringify(variance)}`);
  }
}

/** What one reverse step computed, for pictures and the studio. */
export interface StepResult {
  t: number;
  /** x_{t-1} */
  x: Tensor;
  /** the model's noise prediction eps_theta(x_t, t) */
  eps: Tensor;
  /** mu_theta(x_t, t) */
  mean: Tensor;
  sigma: number;
}

/** One reverse step p(x_{t-1} | x_t): mean 1/sqrt(alpha_t) (x_t - beta_t/sqrt(1-alphabar_t) eps), plus sigma_t z. */
export function ddpmStep(d: Diffusion, eps: Tensor, xt: Tensor, t: number, variance: Variance, generator?: Generator): { x: Tensor; mean: Tensor; sigma: number } {
  const sigma = reverseSigma(d, t, variance);
  return tidy(() => {
    const mean = xt.sub(eps.mul(d.terms.predNoiseCoeff[t]!)).mul(d.terms.sqrtRecipAlpha[t]!);
    const x = sigma === 0 ? mean : mean.add(randnLike(xt, generator).mul(sigma));
    return { x, mean, sigma };
  });
}

export interface SampleOptions {
  /** (N, C, H, W) of the images to make. */
  shape: [number, number, number, number];
  variance?: Variance;
  generator?: Generator;
  /** Images per model call; a full sampling loop runs per batch. */
  batchSize?: number;
  /** Called after every step with the batch's offset and the step's intermediates (tensors freed after the call). */
  onStep?: (step: StepResult, batchOffset: number) => void;
}

/** Runs the full reverse process from x_T ~ N(0, I) to x_0 for N images; returns (N, C, H, W). */
export function ddpmSample(model: NoisePredictor, d: Diffusion, o: SampleOptions): Tensor {
  const [n, c, h, w] = o.shape;
  const batchSize = o.batchSize ?? n;
  const variance = o.variance ?? 'notebook';
  if (!Number.isInteger(n) || n < 1) throw new ArgumentError(`sample: the number of images must be a positive integer, got ${n}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ArgumentError(`sample: batch size must be a positive integer, got ${batchSize}`);
  const gen = o.generator ? { generator: o.generator } : {};
  const batches: Tensor[] = [];
  noGrad(() => {
    for (let start = 0; start < n; start += batchSize) {
      const b = Math.min(batchSize, n - start);
      let x = keep(randn([b, c, h, w], gen)); // x_T
      for (let t = d.T - 1; t >= 0; t--) {
        const next = tidy(() => {
          const tt = full([b], t, { dtype: 'int64' }); // (B,)
          const eps = model(x, tt);
          const step = ddpmStep(d, eps, x, t, variance, o.generator);
          o.onStep?.({ t, x: step.x, eps, mean: step.mean, sigma: step.sigma }, start);
          return step.x;
        });
        x.dispose();
        x = keep(next);
      }
      batches.push(x);
    }
  });
  if (batches.length === 1) return batches[0]!;
  const out = cat(batches, 0);
  for (const part of batches) part.dispose();
  return out;
}

/** Refuses non-finite samples: a diverged model must fail loudly, not write black images. */
export function assertFinite(x: Tensor, what: string): void {
  const ok = tidy(() => x.isfinite().all().item());
  if (!ok) {
    const bad = tidy(() => x.isfinite().logicalNot().sum().item());
    throw new Error(`${what}: ${bad} of ${x.numel} values are NaN or infinite; the model or its checkpoint has diverged (try a lower --lr, or an earlier checkpoint)`);
  }
}
