// A trained model used as a denoiser (seeds/000 Q17-Q19): a real image noised to x_t by q(x_t | x_0),
// the model's one-step estimate x0_hat, and the image the reverse process reaches when it starts
// from that x_t instead of from pure noise (as SDEdit, Meng et al. 2022, starts from a noised input).
import { type Tensor, Generator, full, tidy, noGrad, randnLike, ArgumentError } from '../tensor/index.js';
import type { Diffusion, Objective } from '../diffusion/index.js';
import { type ConditionalModelFn, type Variance, type X0Processing, makeDenoiser, planSteps, ancestralStep } from '../samplers/index.js';

export interface DenoiseOptions {
  model: ConditionalModelFn;
  diffusion: Diffusion;
  objective: Objective;
  /** Clean images (N, C, H, W) in [-1, 1]. */
  x0: Tensor;
  /** Noise levels to start from, one picture row each. */
  ts: number[];
  /** The reverse variance of the ancestral steps (default: the notebook's). */
  variance?: Variance;
  x0Processing?: X0Processing;
  seed?: number;
  /** The model learned its variance (--learn-variance): its output has 2C channels. */
  learnVariance?: boolean;
}

/** One start level t: the three pictures (N*C*H*W values each) and their mean squared error to x_0. */
export interface DenoiseRow {
  t: number;
  xt: Float32Array;
  x0Hat: Float32Array;
  reversed: Float32Array;
  mse: { xt: number; x0Hat: number; reversed: number };
}

const data = (x: Tensor): Float32Array => Float32Array.from(x.float().dataSync() as Float32Array);
const mse = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).square().mean().item());

/**
 * For each t: x_t ~ q(x_t | x_0), x0_hat from one model call at t, and x_{-1} after t + 1 ancestral
 * steps t, t-1, ..., 0 (Ho et al. 2020, Algorithm 2 from line 3 with x_T replaced by x_t).
 */
export function denoiseFrom(o: DenoiseOptions): DenoiseRow[] {
  const d = o.diffusion;
  if (o.x0.rank !== 4) throw new ArgumentError(`denoiseFrom: x0 must be (N, C, H, W), got shape [${o.x0.shape.join(', ')}]`);
  if (o.ts.length === 0) throw new ArgumentError('denoiseFrom: no start timesteps given; pass at least one t in [0, T-1]');
  for (const t of o.ts) {
    if (!Number.isInteger(t) || t < 0 || t >= d.T) throw new ArgumentError(`denoiseFrom: start timestep ${t} is outside [0, ${d.T - 1}] (T = ${d.T})`);
    if (o.objective === 'eps' && d.terms.alphaBar[t] === 0) {
      throw new ArgumentError(`denoiseFrom: an eps model cannot denoise from t = ${t}, where alphabar = 0 (a zero-terminal-SNR schedule): x0_hat divides by sqrt(alphabar); start at t <= ${t - 1}`);
    }
  }
  const gen = new Generator(o.seed ?? 0);
  const denoise = makeDenoiser({ model: o.model, diffusion: d, objective: o.objective, x0Processing: o.x0Processing ?? 'none', learnVariance: o.learnVariance ?? false });
  const n = o.x0.shape[0]!;
  return noGrad(() => o.ts.map((t) => tidy(() => {
    const xt = d.qSample(o.x0, full([n], t, { dtype: 'int64' }), undefined, gen).xt; // (N, C, H, W)
    const first = denoise(xt, t);
    const x0Hat = first.x0;
    let x = xt;
    for (const p of planSteps(d, Array.from({ length: t + 1 }, (_, i) => t - i))) {
      const den = p.t === t ? first : denoise(x, p.t);
      x = ancestralStep(p, x, den.x0, o.variance ?? 'notebook', (like) => randnLike(like, gen), den.v).x;
    }
    return { t, xt: data(xt), x0Hat: data(x0Hat), reversed: data(x), mse: { xt: mse(xt, o.x0), x0Hat: mse(x0Hat, o.x0), reversed: mse(x, o.x0) } };
  })));
}

/** Grid tiles for `rows`: per row, per image: x_0 | x_t | x0_hat | reversed. */
export function denoiseTiles(x0: Float32Array, rows: DenoiseRow[], n: number, size: number): Float32Array {
  const out = new Float32Array(rows.length * n * 4 * size);
  let k = 0;
  for (const r of rows) {
    for (let i = 0; i < n; i++) {
      for (const src of [x0, r.xt, r.x0Hat, r.reversed]) out.set(src.subarray(i * size, (i + 1) * size), (k++) * size);
    }
  }
  return out;
}
