// Exact float64 reference for the sampler test bed (samplers-exact.test.ts): data drawn from a known
// Gaussian mixture, whose noisy marginals, optimal predictions and probability-flow ODE are closed
// form, so a sampler can be checked against the mathematics instead of against a copy of itself.
//
// Under q(x_t | x_0) = N(a x_0, s^2 I), a = sqrt(alphabar_t), s = sqrt(1 - alphabar_t) (Ho et al. 2020,
// eq. 4), data sum_k w_k N(mu_k, Sigma_k) gives x_t ~ sum_k w_k N(a mu_k, S_k), S_k = a^2 Sigma_k + s^2 I.
// With responsibilities r_k(x_t) proportional to w_k N(x_t; a mu_k, S_k):
//   score(x_t)   = -sum_k r_k S_k^{-1} (x_t - a mu_k)
//   E[x_0 | x_t] = sum_k r_k (mu_k + a Sigma_k S_k^{-1} (x_t - a mu_k))
//   eps*(x_t)    = -s score(x_t)  (the minimiser of the noise-prediction loss; Vincent 2011, Song et al. 2021)
//   v*           = a eps* - s x0*  (Salimans & Ho 2022, section 4).
// Nothing here imports the code under test except the tensor type the samplers take.
import { type Tensor, tensor } from '../src/tensor/index.js';
import type { ConditionalModelFn } from '../src/samplers/index.js';
import type { Objective, ScheduleConfig } from '../src/diffusion/index.js';

export interface Component { w: number; mu: number[]; sigma: number[][] }

/** Lower Cholesky factor of a symmetric positive definite matrix. */
export function cholesky(m: number[][]): number[][] {
  const n = m.length;
  const l = m.map(() => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = m[i]![j]!;
      for (let k = 0; k < j; k++) sum -= l[i]![k]! * l[j]![k]!;
      if (i === j) {
        if (!(sum > 0)) throw new Error(`cholesky: matrix is not positive definite (pivot ${i} is ${sum})`);
        l[i]![i] = Math.sqrt(sum);
      } else l[i]![j] = sum / l[j]![j]!;
    }
  }
  return l;
}

function invertSpd(m: number[][]): { inv: number[][]; logDet: number } {
  const n = m.length;
  const l = cholesky(m);
  let logDet = 0;
  for (let i = 0; i < n; i++) logDet += 2 * Math.log(l[i]![i]!);
  const inv = m.map(() => new Array<number>(n).fill(0));
  for (let c = 0; c < n; c++) {
    // Solve L y = e_c, then L^T x = y.
    const y = new Array<number>(n).fill(0);
    for (let i = 0; i < n; i++) {
      let sum = i === c ? 1 : 0;
      for (let k = 0; k < i; k++) sum -= l[i]![k]! * y[k]!;
      y[i] = sum / l[i]![i]!;
    }
    for (let i = n - 1; i >= 0; i--) {
      let sum = y[i]!;
      for (let k = i + 1; k < n; k++) sum -= l[k]![i]! * inv[k]![c]!;
      inv[i]![c] = sum / l[i]![i]!;
    }
  }
  return { inv, logDet };
}

/** What one noise level needs per component: S_k^{-1}, log det S_k, and a Sigma_k S_k^{-1}. */
interface Level { sInv: number[][][]; logDet: number[]; gain: number[][][] }

export class GaussianMixture {
  readonly dim: number;
  readonly #levels = new Map<number, Level>();

  constructor(readonly components: readonly Component[]) {
    this.dim = components[0]!.mu.length;
    const total = components.reduce((acc, c) => acc + c.w, 0);
    if (Math.abs(total - 1) > 1e-12) throw new Error(`GaussianMixture: weights sum to ${total}, expected 1`);
  }

  get mean(): number[] {
    return Array.from({ length: this.dim }, (_, i) => this.components.reduce((acc, c) => acc + c.w * c.mu[i]!, 0));
  }

  #level(alphaBar: number): Level {
    let lv = this.#levels.get(alphaBar);
    if (!lv) {
      const a2 = alphaBar;
      const s2 = 1 - alphaBar;
      const a = Math.sqrt(alphaBar);
      const parts = this.components.map((c) => invertSpd(c.sigma.map((row, i) => row.map((x, j) => a2 * x + (i === j ? s2 : 0)))));
      lv = {
        sInv: parts.map((p) => p.inv),
        logDet: parts.map((p) => p.logDet),
        gain: parts.map((p, k) => this.components[k]!.sigma.map((row) => p.inv[0]!.map((_, j) => a * row.reduce((acc, x, m) => acc + x * p.inv[m]![j]!, 0)))),
      };
      this.#levels.set(alphaBar, lv);
    }
    return lv;
  }

  /**
   * eps*(x_t) and E[x_0 | x_t] at one point x (length dim) and noise level alphabar, for the mixture or
   * (component k) the one Gaussian of class k, written into eps and x0. Exact at alphabar = 0 and 1.
   */
  predictInto(x: ArrayLike<number>, alphaBar: number, component: number | null, eps: Float64Array, x0: Float64Array): void {
    if (alphaBar !== this.#lastAlphaBar) { this.#last = this.#level(alphaBar); this.#lastAlphaBar = alphaBar; }
    const lv = this.#last!;
    const a = Math.sqrt(alphaBar);
    const s = Math.sqrt(1 - alphaBar);
    const d = this.dim;
    const kc = this.components.length;
    const logp = this.#logp;
    let top = -Infinity;
    for (let k = 0; k < kc; k++) {
      if (component !== null && k !== component) { logp[k] = -Infinity; continue; }
      const c = this.components[k]!;
      const inv = lv.sInv[k]!;
      let q = 0;
      for (let i = 0; i < d; i++) {
        let g = 0;
        for (let j = 0; j < d; j++) g += inv[i]![j]! * (x[j]! - a * c.mu[j]!);
        q += g * (x[i]! - a * c.mu[i]!);
      }
      logp[k] = Math.log(c.w) - 0.5 * (lv.logDet[k]! + q);
      if (logp[k]! > top) top = logp[k]!;
    }
    let z = 0;
    for (let k = 0; k < kc; k++) z += (logp[k] = Math.exp(logp[k]! - top));
    eps.fill(0);
    x0.fill(0);
    for (let k = 0; k < kc; k++) {
      const resp = logp[k]! / z;
      if (resp === 0) continue;
      const c = this.components[k]!;
      const inv = lv.sInv[k]!;
      const gain = lv.gain[k]!;
      for (let i = 0; i < d; i++) {
        let g = 0; // (S_k^{-1} (x - a mu_k))_i
        let h = 0; // (a Sigma_k S_k^{-1} (x - a mu_k))_i
        for (let j = 0; j < d; j++) {
          const r = x[j]! - a * c.mu[j]!;
          g += inv[i]![j]! * r;
          h += gain[i]![j]! * r;
        }
        eps[i]! += resp * s * g;
        x0[i]! += resp * (c.mu[i]! + h);
      }
    }
  }

  readonly #logp = new Float64Array(16);
  #last: Level | null = null;
  #lastAlphaBar = NaN;

  predict(x: ArrayLike<number>, alphaBar: number, component: number | null = null): { eps: Float64Array; x0: Float64Array } {
    const eps = new Float64Array(this.dim);
    const x0 = new Float64Array(this.dim);
    this.predictInto(x, alphaBar, component, eps, x0);
    return { eps, x0 };
  }

  /** Posterior probabilities of the components for a data point x (alphabar = 1), written into r. */
  responsibilities(x: ArrayLike<number>, r: Float64Array): void {
    const lv = this.#level(1);
    let top = -Infinity;
    this.components.forEach((c, k) => {
      const inv = lv.sInv[k]!;
      let q = 0;
      for (let i = 0; i < this.dim; i++) for (let j = 0; j < this.dim; j++) q += (x[i]! - c.mu[i]!) * inv[i]![j]! * (x[j]! - c.mu[j]!);
      r[k] = Math.log(c.w) - 0.5 * (lv.logDet[k]! + q);
      top = Math.max(top, r[k]!);
    });
    let z = 0;
    for (let k = 0; k < this.components.length; k++) z += (r[k] = Math.exp(r[k]! - top));
    for (let k = 0; k < this.components.length; k++) r[k]! /= z;
  }

  /**
   * The exact model as the samplers call it: x (B, dim, H, W), every pixel an independent point of the
   * mixture in the channel dimension; t (B,) int64; c (B, K) one-hot rows or zero rows ("no class") or
   * null. A one-hot row k gives component k's prediction, anything else the mixture's. The output is
   * `objective`'s, in x's dtype.
   */
  model(alphaBar: ArrayLike<number>, objective: Objective): ConditionalModelFn {
    const d = this.dim;
    const kc = this.components.length;
    return (x: Tensor, t: Tensor, c: Tensor | null): Tensor => {
      const [b, ch, h, w] = x.shape as [number, number, number, number];
      if (x.rank !== 4 || ch !== d) throw new Error(`mixture model: x has shape [${x.shape.join(', ')}], expected [B, ${d}, H, W]`);
      const hw = h * w;
      const xs = x.dataSync() as Float32Array | Float64Array;
      const ts = t.toArray();
      const cs = c ? c.toArray() : null;
      const out = new Float64Array(xs.length);
      const point = new Float64Array(d);
      const eps = new Float64Array(d);
      const x0 = new Float64Array(d);
      for (let n = 0; n < b; n++) {
        let comp: number | null = null;
        if (cs) {
          const row = cs.slice(n * kc, (n + 1) * kc);
          const hot = row.indexOf(1);
          if (hot >= 0 && row.every((v, j) => v === (j === hot ? 1 : 0))) comp = hot;
        }
        const ab = alphaBar[ts[n]!]!;
        const a = Math.sqrt(ab);
        const s = Math.sqrt(1 - ab);
        for (let p = 0; p < hw; p++) {
          for (let i = 0; i < d; i++) point[i] = xs[(n * d + i) * hw + p]!;
          this.predictInto(point, ab, comp, eps, x0);
          for (let i = 0; i < d; i++) {
            // v = a eps - s x0 (Salimans & Ho 2022).
            out[(n * d + i) * hw + p] = objective === 'eps' ? eps[i]! : objective === 'x0' ? x0[i]! : a * eps[i]! - s * x0[i]!;
          }
        }
      }
      return x.dtype === 'float64' ? tensor(out, x.shape) : tensor(Float32Array.from(out), x.shape);
    };
  }
}

/** The points of a (B, dim, H, W) batch, one row per pixel. */
export function pointsOf(x: Tensor): number[][] {
  const [b, d, h, w] = x.shape as [number, number, number, number];
  const v = x.dataSync();
  const rows: number[][] = [];
  for (let n = 0; n < b; n++) for (let p = 0; p < h * w; p++) rows.push(Array.from({ length: d }, (_, i) => Number(v[(n * d + i) * h * w + p]!)));
  return rows;
}

/**
 * Dormand-Prince 5(4) (Dormand & Prince 1980; the RK45 of scipy and MATLAB's ode45) with adaptive steps:
 * integrates y' = f(u, y) from u0 to u1 (either direction), error per component below atol + rtol |y|.
 */
export function dormandPrince(f: (u: number, y: Float64Array) => Float64Array, y0: Float64Array, u0: number, u1: number, o: { rtol: number; atol: number; h0?: number; maxSteps?: number }): { y: Float64Array; steps: number; rejected: number } {
  const c2 = 1 / 5, c3 = 3 / 10, c4 = 4 / 5, c5 = 8 / 9;
  const a21 = 1 / 5;
  const a31 = 3 / 40, a32 = 9 / 40;
  const a41 = 44 / 45, a42 = -56 / 15, a43 = 32 / 9;
  const a51 = 19372 / 6561, a52 = -25360 / 2187, a53 = 64448 / 6561, a54 = -212 / 729;
  const a61 = 9017 / 3168, a62 = -355 / 33, a63 = 46732 / 5247, a64 = 49 / 176, a65 = -5103 / 18656;
  const b1 = 35 / 384, b3 = 500 / 1113, b4 = 125 / 192, b5 = -2187 / 6784, b6 = 11 / 84;
  // b - b* (the 5th-order weights minus the embedded 4th-order ones): the local error estimate.
  const e1 = 71 / 57600, e3 = -71 / 16695, e4 = 71 / 1920, e5 = -17253 / 339200, e6 = 22 / 525, e7 = -1 / 40;
  const n = y0.length;
  const dir = Math.sign(u1 - u0);
  let u = u0;
  let y: Float64Array = Float64Array.from(y0);
  let h = dir * Math.min(Math.abs(o.h0 ?? (u1 - u0) / 100), Math.abs(u1 - u0));
  let k1: Float64Array = f(u, y);
  let steps = 0;
  let rejected = 0;
  const comb = (ks: Float64Array[], cs: number[], hh: number): Float64Array => {
    const r = Float64Array.from(y);
    for (let j = 0; j < ks.length; j++) { const kj = ks[j]!; const cj = cs[j]! * hh; if (cj !== 0) for (let i = 0; i < n; i++) r[i]! += cj * kj[i]!; }
    return r;
  };
  while (dir * (u1 - u) > 0) {
    if (steps + rejected > (o.maxSteps ?? 100000)) throw new Error(`dormandPrince: more than ${o.maxSteps ?? 100000} steps between ${u0} and ${u1}`);
    if (dir * (u + h - u1) > 0) h = u1 - u;
    const k2 = f(u + c2 * h, comb([k1], [a21], h));
    const k3 = f(u + c3 * h, comb([k1, k2], [a31, a32], h));
    const k4 = f(u + c4 * h, comb([k1, k2, k3], [a41, a42, a43], h));
    const k5 = f(u + c5 * h, comb([k1, k2, k3, k4], [a51, a52, a53, a54], h));
    const k6 = f(u + h, comb([k1, k2, k3, k4, k5], [a61, a62, a63, a64, a65], h));
    const yNew = comb([k1, k3, k4, k5, k6], [b1, b3, b4, b5, b6], h);
    const k7 = f(u + h, yNew);
    let err = 0;
    for (let i = 0; i < n; i++) {
      const e = h * (e1 * k1[i]! + e3 * k3[i]! + e4 * k4[i]! + e5 * k5[i]! + e6 * k6[i]! + e7 * k7[i]!);
      const scale = o.atol + o.rtol * Math.max(Math.abs(y[i]!), Math.abs(yNew[i]!));
      err = Math.max(err, Math.abs(e) / scale);
    }
    if (err <= 1) {
      u += h;
      y = yNew;
      k1 = k7; // first same as last
      steps++;
    } else rejected++;
    h *= Math.min(5, Math.max(0.2, 0.9 * (err === 0 ? 5 : err ** -0.2)));
  }
  return { y, steps, rejected };
}

/**
 * The mixture both exact test files use: three components in three dimensions with unequal weights and
 * full, unequal covariances, overlapping a little (responsibilities handle the overlap exactly).
 */
export const MIXTURE = new GaussianMixture([
  { w: 0.5, mu: [-0.8, -0.4, 0.3], sigma: [[0.09, 0.03, 0], [0.03, 0.06, -0.01], [0, -0.01, 0.05]] },
  { w: 0.3, mu: [0.7, -0.5, -0.3], sigma: [[0.05, -0.02, 0.01], [-0.02, 0.08, 0], [0.01, 0, 0.04]] },
  { w: 0.2, mu: [0.0, 0.8, 0.1], sigma: [[0.06, 0, 0.02], [0, 0.04, 0.01], [0.02, 0.01, 0.07]] },
]);

// Improved DDPM's cosine schedule ends at alphabar_{T-1} = 2.4e-9 (beta capped at 0.999), so x_T ~ N(0, I)
// is right to that accuracy; the zero-terminal-SNR version (Lin et al. 2023) ends at exactly 0.
export const COSINE: ScheduleConfig = { kind: 'cosine', T: 1000, s: 0.008 };
export const COSINE_ZERO_SNR: ScheduleConfig = { ...COSINE, zeroTerminalSnr: true };
