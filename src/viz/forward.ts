// The forward-noising strip of the notebook (seeds/001 "Sequential forward diffusion"): one image
// noised by q(x_t | x_0) at evenly spaced t, left (t = 0) to right (t = T-1).
import { type Tensor, Generator, full, tidy, stack, ArgumentError } from '../tensor/index.js';
import type { Diffusion } from '../diffusion/index.js';

/** Evenly spaced timesteps from 0 to T-1, `count` of them. */
export function evenlySpaced(T: number, count: number): number[] {
  if (count <= 1) return [0];
  return Array.from({ length: count }, (_, i) => Math.round((i * (T - 1)) / (count - 1)));
}

/** x0 (C, H, W) -> (count, C, H, W): x_t at each t of `ts`, with one noise draw per column. */
export function forwardStrip(d: Diffusion, x0: Tensor, ts: number[], seed = 0): Tensor {
  const gen = new Generator(seed);
  return tidy(() => stack(ts.map((t) => d.qSample(x0.unsqueeze(0), full([1], t, { dtype: 'int64' }), undefined, gen).xt.squeeze(0)), 0));
}

function checkAscending(where: string, ts: number[], T: number): void {
  ts.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 0 || t >= T) throw new ArgumentError(`${where}: timestep ${t} is outside [0, ${T - 1}] (T = ${T})`);
    if (i > 0 && t <= ts[i - 1]!) throw new ArgumentError(`${where}: timesteps must be strictly ascending, got [${ts.join(', ')}]`);
  });
}

/**
 * x0 (C, H, W) -> (count, C, H, W): x_t reached by the Markov chain q(x_t | x_{t-1}) one step at a
 * time from x_0 (Ho et al. 2020, eq. 2; seeds/000 Q2), recorded at each t of the ascending `ts`.
 * Each step sees only the previous x; that the result has the law of q(x_t | x_0) is eq. 4.
 */
export function markovChainStrip(d: Diffusion, x0: Tensor, ts: number[], seed = 0): Tensor {
  checkAscending('markovChainStrip', ts, d.T);
  const gen = new Generator(seed);
  return tidy(() => {
    const kept: Tensor[] = [];
    let x = x0.unsqueeze(0); // (1, C, H, W)
    for (let t = 0; t <= ts[ts.length - 1]!; t++) {
      x = d.qStep(x, t, gen);
      if (ts.includes(t)) kept.push(x.squeeze(0));
    }
    return stack(kept, 0);
  });
}

/** The noise part r = x_t - sqrt(alphabar_t) x_0 of many draws, by both routes, against eq. 4's std. */
export interface ForwardNoiseCheck {
  t: number;
  /** sqrt(1 - alphabar_t): the std eq. 4 says r has. */
  expectedStd: number;
  closedFormMean: number;
  closedFormStd: number;
  chainMean: number;
  chainStd: number;
}

const meanStd = (r: Tensor): { mean: number; std: number } => {
  const mean = r.mean().item();
  return { mean, std: Math.sqrt(r.sub(mean).square().mean().item()) };
};

/**
 * For `draws` copies of x0 (C, H, W): the mean and std of r = x_t - sqrt(alphabar_t) x_0 over every
 * value, with x_t drawn in closed form (qSample) and by running the chain (qStep), at each t of `ts`.
 */
export function forwardNoiseCheck(d: Diffusion, x0: Tensor, ts: number[], draws = 256, seed = 0): ForwardNoiseCheck[] {
  checkAscending('forwardNoiseCheck', ts, d.T);
  if (!Number.isInteger(draws) || draws < 2) throw new ArgumentError(`forwardNoiseCheck: draws must be an integer >= 2, got ${draws}`);
  const gen = new Generator(seed);
  return tidy(() => {
    const batch = x0.unsqueeze(0).expand([draws, ...x0.shape]); // (draws, C, H, W)
    const out: ForwardNoiseCheck[] = [];
    let x = batch;
    for (let t = 0; t <= ts[ts.length - 1]!; t++) {
      x = d.qStep(x, t, gen);
      if (!ts.includes(t)) continue;
      const sqrtAb = Math.sqrt(d.terms.alphaBar[t]!);
      const closed = d.qSample(batch, full([draws], t, { dtype: 'int64' }), undefined, gen).xt;
      const c = meanStd(closed.sub(batch.mul(sqrtAb)));
      const m = meanStd(x.sub(batch.mul(sqrtAb)));
      out.push({ t, expectedStd: Math.sqrt(1 - d.terms.alphaBar[t]!), closedFormMean: c.mean, closedFormStd: c.std, chainMean: m.mean, chainStd: m.std });
    }
    return out;
  });
}
