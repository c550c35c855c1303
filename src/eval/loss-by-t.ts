// The training loss resolved by timestep: at each of K evenly spaced t, the run's own loss (its
// objective and weighting, as diffusion/loss.ts computes it) and the plain eps-MSE of Ho et al.
// 2020 (eq. 14), averaged over the same N images and noise draws. Shows where in t a model is weak
// (seeds/000 Q3 and Q8, seeds/002 "Weight Function").
import { type Tensor, Generator, full, tidy, keep, noGrad, randnLike, ArgumentError } from '../tensor/index.js';
import {
  type Diffusion, type Objective, type LossWeighting, LOSS_WEIGHTINGS, checkObjective, objectiveTarget, predictionsFromOutput, minSnrWeight,
} from '../diffusion/index.js';
import { type ConditionalModelFn, oneHot } from '../samplers/index.js';

/** Timesteps when none are asked for: all T up to 200, else 100 evenly spaced. */
export function defaultLossPoints(T: number): number { return T <= 200 ? T : 100; }

/** K timesteps evenly spaced over 0..T-1, both ends included: round(linspace(0, T - 1, K)). */
export function lossTimesteps(T: number, points = defaultLossPoints(T)): number[] {
  if (!Number.isInteger(T) || T < 1) throw new ArgumentError(`loss-by-t: T must be a positive integer, got ${T}`);
  if (!Number.isInteger(points) || points < 1 || points > T) throw new ArgumentError(`loss-by-t: the number of timesteps must be an integer in [1, ${T}] (T), got ${points}`);
  if (points === 1) return [0];
  return Array.from({ length: points }, (_, i) => Math.round((i * (T - 1)) / (points - 1)));
}

export interface LossByTOptions {
  model: ConditionalModelFn;
  diffusion: Diffusion;
  objective: Objective;
  /** The run's loss weighting (default simple) and min-SNR gamma (default 5). */
  weighting?: LossWeighting;
  minSnrGamma?: number;
  /** Timesteps to evaluate (default: lossTimesteps(T)). */
  timesteps?: readonly number[];
  /** Images per forward pass (default 256). */
  batchSize?: number;
  /** Seed of the noise draws (default 0): the same eps for every t, so curves differ only by t. */
  seed?: number;
  numClasses?: number;
  /** The model's output has 2C channels (--learn-variance): the loss is read from the mean's C (L_simple; its L_vlb term is `ddpm eval --nll`'s). */
  learnVariance?: boolean;
  /** One class per image for class-conditional models (absent: unconditional calls). */
  labels?: readonly number[];
  onProgress?: (done: number, total: number) => void;
}

export interface LossByTResult {
  t: number[];
  /** The run's training loss at each t (objective and weighting), mean over images. */
  loss: number[];
  /** ||eps - eps_hat||^2 per dimension at each t, mean over images (the eps_hat the model's output implies). */
  epsMse: number[];
  /** ||x_0 - x0_hat||^2 per dimension at each t, mean over images. */
  x0Mse: number[];
  images: number;
  objective: Objective;
  weighting: LossWeighting;
  minSnrGamma: number;
  seed: number;
}

function refuse(msg: string): never { throw new ArgumentError(`loss-by-t: ${msg}`); }

/** Loss per timestep of x0 (N, C, H, W) in [-1, 1]: one forward pass per t per batch, no gradients. */
export function lossByT(x0: Tensor, o: LossByTOptions): LossByTResult {
  const objective = checkObjective(o.objective);
  const weighting = o.weighting ?? 'simple';
  if (!(LOSS_WEIGHTINGS as readonly string[]).includes(weighting)) refuse(`weighting must be one of ${LOSS_WEIGHTINGS.join(', ')}, got ${JSON.stringify(weighting)}`);
  const gamma = o.minSnrGamma ?? 5;
  if (!(gamma > 0 && Number.isFinite(gamma))) refuse(`min-SNR gamma must be a finite number > 0, got ${gamma}`);
  const d = o.diffusion;
  const ts = [...(o.timesteps ?? lossTimesteps(d.T))];
  if (ts.length === 0) refuse('no timesteps to evaluate');
  ts.forEach((t) => { if (!Number.isInteger(t) || t < 0 || t >= d.T) refuse(`timestep ${t} is outside 0..${d.T - 1}`); });
  if (x0.rank !== 4) refuse(`images must be (N, C, H, W), got shape [${x0.shape.join(', ')}]`);
  const n = x0.shape[0]!;
  const batchSize = o.batchSize ?? 256;
  if (!Number.isInteger(batchSize) || batchSize < 1) refuse(`batch size must be a positive integer, got ${batchSize}`);
  const seed = o.seed ?? 0;
  if (o.labels !== undefined && o.labels.length !== n) refuse(`there are ${o.labels.length} labels for ${n} images; give one per image`);

  const loss = new Array<number>(ts.length).fill(0);
  const epsMse = new Array<number>(ts.length).fill(0);
  const x0Mse = new Array<number>(ts.length).fill(0);
  const total = Math.ceil(n / batchSize) * ts.length;
  let done = 0;
  noGrad(() => {
    for (let start = 0, batch = 0; start < n; start += batchSize, batch++) {
      const b = Math.min(batchSize, n - start);
      const x = keep(tidy(() => x0.narrow(0, start, b))); // (B, C, H, W)
      // One noise draw per batch, reused at every t: the curve then shows t's effect, not the draws'.
      const noise = keep(randnLike(x, new Generator(seed + batch)));
      const cond = o.labels ? keep(oneHot(o.labels.slice(start, start + b), o.numClasses ?? 0)) : null; // (B, K)
      try {
        ts.forEach((t, j) => {
          const r = tidy(() => {
            const { a, s } = d.coefs(t);
            const xt = x.mul(a).add(noise.mul(s));
            const raw = o.model(xt, full([b], t, { dtype: 'int64' }), cond);
            // A learned-variance model: the mean's C channels, L_simple's part of its hybrid loss.
            const out = o.learnVariance ? raw.narrow(1, 0, raw.shape[1]! / 2) : raw;
            const target = objectiveTarget(objective, x, noise, a, s);
            const mse = out.sub(target).square().mean().item();
            const w = weighting === 'min-snr' ? minSnrWeight(d.terms.snr[t]!, objective, gamma) : 1;
            const pred = predictionsFromOutput(objective, out, xt, a, s);
            return { loss: w * mse, eps: pred.eps.sub(noise).square().mean().item(), x0: pred.x0.sub(x).square().mean().item() };
          });
          loss[j]! += r.loss * b;
          epsMse[j]! += r.eps * b;
          x0Mse[j]! += r.x0 * b;
          o.onProgress?.(++done, total);
        });
      } finally {
        x.dispose();
        noise.dispose();
        cond?.dispose();
      }
    }
  });
  const avg = (v: number[]): number[] => v.map((s) => s / n);
  return { t: ts, loss: avg(loss), epsMse: avg(epsMse), x0Mse: avg(x0Mse), images: n, objective, weighting, minSnrGamma: gamma, seed };
}
