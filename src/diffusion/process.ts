// The forward process q and the quantities of the reverse process that follow from it in closed
// form (Ho et al. 2020, eqs. 4, 6, 7 and 11), applied per example at integer timesteps t.
import { type Tensor, type Generator, type Device, tensor, randnLike, tidy, keep, inferenceMode, ArgumentError } from '../tensor/index.js';
import { type ScheduleTerms, coefsAt } from './schedule.js';

export type TermName = Exclude<keyof ScheduleTerms, 'T'>;

/**
 * A schedule with its terms cached as float32 tensors for gathering per timestep.
 * Terms are cast to float32 only here, after being computed in float64.
 */
export class Diffusion {
  readonly #cache = new Map<string, Tensor>();
  constructor(readonly terms: ScheduleTerms) {}
  get T(): number { return this.terms.T; }

  /** term[t] shaped to broadcast over x: (B,) -> (B, 1, 1, 1) for 4-d x. */
  extract(name: TermName, t: Tensor, rank = 4): Tensor {
    return this.table(this.terms[name], name, t.device).indexSelect(0, t).reshape([t.shape[0]!, ...new Array<number>(rank - 1).fill(1)]);
  }

  /** A per-timestep float64 table as a cached float32 tensor (T,) on `device`, under a key naming its content. */
  table(values: Float64Array, key: string, device: Device = 'cpu'): Tensor {
    const k = device === 'cpu' ? key : `${key}@${device}`;
    let table = this.#cache.get(k);
    if (!table) {
      // A normal tensor even when first asked for while sampling (inference mode): training reuses it.
      table = keep(inferenceMode(() => tensor(Float32Array.from(values), undefined, { device }), false));
      this.#cache.set(k, table);
    }
    return table;
  }

  /** a = sqrt(alphabar_t) and s = sqrt(1 - alphabar_t) at one integer t; t = -1 is the clean end (a = 1, s = 0). */
  coefs(t: number): { a: number; s: number } { return coefsAt(this.terms, t); }

  checkTimesteps(t: Tensor, batch: number): void {
    if (t.dtype !== 'int64' || t.rank !== 1 || t.shape[0] !== batch) {
      throw new ArgumentError(`diffusion: timesteps must be an int64 tensor of shape [${batch}], got ${t.toString()}`);
    }
  }

  /** q(x_t | x_0) sampled in closed form: x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) eps (eq. 4). */
  qSample(x0: Tensor, t: Tensor, noise?: Tensor, generator?: Generator): { xt: Tensor; noise: Tensor } {
    this.checkTimesteps(t, x0.shape[0]!);
    const eps = noise ?? randnLike(x0, generator);
    const xt = tidy(() => this.extract('sqrtAlphaBar', t, x0.rank).mul(x0).add(this.extract('sqrtOneMinusAlphaBar', t, x0.rank).mul(eps)));
    return { xt, noise: eps };
  }

  /** One step of the Markov chain q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I) (eq. 2). */
  qStep(xPrev: Tensor, t: number, generator?: Generator): Tensor {
    const b = this.terms.beta[t];
    if (b === undefined) throw new ArgumentError(`qStep: t=${t} is outside [0, ${this.T - 1}]`);
    return tidy(() => xPrev.mul(Math.sqrt(1 - b)).add(randnLike(xPrev, generator).mul(Math.sqrt(b))));
  }

  /** x_0 from x_t and the noise: x_0 = x_t / sqrt(alphabar_t) - sqrt(1/alphabar_t - 1) eps (eq. 4 inverted). */
  predictStartFromNoise(xt: Tensor, t: Tensor, eps: Tensor): Tensor {
    return tidy(() => this.extract('sqrtRecipAlphaBar', t, xt.rank).mul(xt).sub(this.extract('sqrtRecipM1AlphaBar', t, xt.rank).mul(eps)));
  }

  /** q(x_{t-1} | x_t, x_0): mean coef1 x_0 + coef2 x_t and variance beta~_t (eqs. 6-7). */
  qPosterior(x0: Tensor, xt: Tensor, t: Tensor): { mean: Tensor; variance: Tensor; logVariance: Tensor } {
    return tidy(() => ({
      mean: this.extract('posteriorMeanCoef1', t, xt.rank).mul(x0).add(this.extract('posteriorMeanCoef2', t, xt.rank).mul(xt)),
      variance: this.extract('posteriorVariance', t, xt.rank),
      logVariance: this.extract('posteriorLogVarianceClipped', t, xt.rank),
    }));
  }

  /** The reverse mean in noise form: 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alphabar_t) eps) (eq. 11). */
  meanFromNoise(xt: Tensor, t: Tensor, eps: Tensor): Tensor {
    return tidy(() => this.extract('sqrtRecipAlpha', t, xt.rank).mul(xt.sub(this.extract('predNoiseCoeff', t, xt.rank).mul(eps))));
  }

  dispose(): void {
    for (const t of this.#cache.values()) t.dispose();
    this.#cache.clear();
  }
}
