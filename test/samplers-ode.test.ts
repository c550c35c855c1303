// The deterministic samplers against a high-accuracy solution of the probability-flow ODE, and
// classifier-free guidance against the ODE of the guided field, for data from a known Gaussian mixture
// (test/gaussian-mixture.ts) whose exact eps is closed form: DDIM (eta 0) must converge at first order
// and DPM-Solver++(2M) at second order as the steps double; the reference is a Dormand-Prince 5(4)
// solve in float64 at tolerance 1e-11, itself checked against the closed-form flow of one Gaussian.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, randn, noGrad } from '../src/tensor/index.js';
import { Diffusion, makeSchedule, type Objective, type ScheduleConfig } from '../src/diffusion/index.js';
import { sample, type SamplerName, type SamplerOptions } from '../src/samplers/index.js';
import { GaussianMixture, MIXTURE, COSINE, dormandPrince, pointsOf } from './gaussian-mixture.js';

const D = MIXTURE.dim;
const diffusionOf = (c: ScheduleConfig): Diffusion => new Diffusion(makeSchedule(c));

// ------------------------------------------------------------------ the probability-flow ODE
/**
 * The probability-flow ODE in DDIM's variables (Song et al. 2021, "DDIM", eq. 14): xbar = x / sqrt(alphabar),
 * sigma = sqrt((1 - alphabar) / alphabar), d xbar / d sigma = eps(x, alphabar), solved by Dormand-Prince
 * from sigma(t_start) down through each of `targets` (alphabars, increasing) to sigma = 0, where xbar = x_0.
 * Returns x at each target and at 0. `eps` is the exact field (or a guided combination) at one point.
 */
function solveFlow(xT: number[][], abStart: number, targets: number[], eps: (x: number[], ab: number, point: number) => ArrayLike<number>): { at: number[][][]; x0: number[][]; steps: number } {
  const sigmaOf = (ab: number): number => Math.sqrt((1 - ab) / ab);
  let y: Float64Array = Float64Array.from(xT.flatMap((r) => r.map((v) => v / Math.sqrt(abStart))));
  const f = (sigma: number, yy: Float64Array): Float64Array => {
    const ab = 1 / (1 + sigma * sigma);
    const a = Math.sqrt(ab);
    const out = new Float64Array(yy.length);
    for (let i = 0; i < yy.length; i += D) out.set(eps(Array.from(yy.subarray(i, i + D), (v) => v * a), ab, i / D), i);
    return out;
  };
  const unpack = (v: Float64Array, a: number): number[][] => xT.map((_, i) => Array.from(v.subarray(i * D, (i + 1) * D), (u) => u * a));
  let sigma = sigmaOf(abStart);
  let steps = 0;
  const at: number[][][] = [];
  for (const ab of [...targets, 1]) {
    const to = ab === 1 ? 0 : sigmaOf(ab);
    const r = dormandPrince(f, y, sigma, to, { rtol: 1e-11, atol: 1e-11, h0: (sigma - to) / 1000 });
    y = r.y;
    sigma = to;
    steps += r.steps;
    at.push(unpack(y, Math.sqrt(ab)));
  }
  return { at: at.slice(0, -1), x0: at[at.length - 1]!, steps };
}

/** The median over points of the Euclidean distance between a and b. */
function medianDistance(a: number[][], b: number[][]): number {
  const dist = a.map((r, i) => Math.hypot(...r.map((v, j) => v - b[i]![j]!))).sort((p, q) => p - q);
  const h = dist.length >> 1;
  return dist.length % 2 ? dist[h]! : (dist[h - 1]! + dist[h]!) / 2;
}

/** The sampler's x when it reaches timestep tMid (a timestep every step count visits), and its output x_0. */
function runSampler(o: SamplerOptions, tMid: number): { xMid: number[][]; x0: number[][] } {
  let xMid: number[][] | null = null;
  const x = noGrad(() => sample({ ...o, onStep: (r) => { if (r.tPrev === tMid) xMid = pointsOf(r.x); } }));
  const x0 = pointsOf(x);
  x.dispose();
  assert.ok(xMid, `${o.sampler} with ${o.steps} steps did not visit t = ${tMid}`);
  return { xMid, x0 };
}

const N_ODE = 48;
const COUNTS = [10, 20, 40, 80];
const fmt = (e: number[]): string => `errors ${e.map((v) => v.toExponential(2)).join(', ')}; ratios ${e.slice(1).map((v, i) => (e[i]! / v).toFixed(2)).join(', ')}`;

test('exact mixture: the Dormand-Prince solution of the flow ODE matches the closed-form flow of one Gaussian', () => {
  // For data N(mu, diag(v)) the flow is affine per coordinate: x_t - a_t mu = sqrt(a_t^2 v + s_t^2) z, z fixed
  // along the path (the ODE's drift maps the marginal N(a mu, a^2 v + s^2) onto itself, coordinate by coordinate).
  const mu = [0.3, -0.7, 0.5];
  const v = [0.04, 0.2, 0.01];
  const g = new GaussianMixture([{ w: 1, mu, sigma: v.map((vi, i) => v.map((_, j) => (i === j ? vi : 0))) }]);
  const ab = diffusionOf(COSINE).terms.alphaBar;
  const abStart = ab[999]!;
  const xT = pointsOf(randn([16, D, 1, 1], { generator: new Generator(5), dtype: 'float64' }));
  const closed = (x: number[], from: number, to: number): number[] => x.map((xi, i) => Math.sqrt(to) * mu[i]! + Math.sqrt((to * v[i]! + 1 - to) / (from * v[i]! + 1 - from)) * (xi - Math.sqrt(from) * mu[i]!));
  const exact = solveFlow(xT, abStart, [ab[199]!], (x, a) => g.predict(x, a).eps);
  const errMid = medianDistance(exact.at[0]!, xT.map((x) => closed(x, abStart, ab[199]!)));
  const err0 = medianDistance(exact.x0, xT.map((x) => closed(x, abStart, 1)));
  assert.ok(errMid < 1e-8 && err0 < 1e-8, `Dormand-Prince against the closed-form Gaussian flow: ${errMid.toExponential(2)} at t = 199, ${err0.toExponential(2)} at x_0 (tolerance 1e-8)`);
});

/**
 * Order of convergence from the error ratios e(K) / e(2K) at K = 10, 20, 40, 80: 2 is first order, 4 second.
 * Errors are medians over 48 trajectories of the distance to the ODE solution, at the timestep all four
 * step counts visit at u = t / T = 0.2 (DDIM trailing: 1000 - 1000 i / K - 1 = 199; DPM-Solver's
 * round(999 j / K) = 200), and at x_0. The samplers run in float32 (the library's dtype); at these
 * counts the errors (>= 2e-4) are far above float32 rounding (a float64 run gives the same three digits).
 * Measured: DDIM 2.02, 2.02, 2.02 at t = 199 and 1.85, 1.93, 1.96 at x_0; DPM-Solver++(2M) 3.38, 3.63,
 * 3.48 at t = 200 and 2.63, 4.74, 5.66 at x_0 (its last step, x_0 = x0_hat, gains from the posterior mean
 * settling as sigma -> 0, and the cosine schedule's sigma^2 is linear in t below t = sT).
 */
test('exact mixture: DDIM (eta 0) is first order and DPM-Solver++(2M) second order against the probability-flow ODE', () => {
  const d = diffusionOf(COSINE);
  const ab = d.terms.alphaBar;
  const xTData = randn([N_ODE, D, 1, 1], { generator: new Generator(11) });
  const xT = pointsOf(xTData);
  const exact = new Map([199, 200].map((t) => [t, solveFlow(xT, ab[d.T - 1]!, [ab[t]!], (x, a) => MIXTURE.predict(x, a).eps)]));
  const report: string[] = [];
  for (const [sampler, objective, tMid] of [['ddim', 'eps', 199], ['ddim', 'v', 199], ['dpmpp2m', 'eps', 200], ['dpmpp2m', 'x0', 200]] as [SamplerName, Objective, number][]) {
    const runs = COUNTS.map((steps) => runSampler({ model: MIXTURE.model(ab, objective), diffusion: d, objective, shape: [N_ODE, D, 1, 1], sampler, steps, x0Processing: 'none', xT: xTData }, tMid));
    const ode = exact.get(tMid)!;
    const errMid = runs.map((r) => medianDistance(r.xMid, ode.at[0]!));
    const err0 = runs.map((r) => medianDistance(r.x0, ode.x0));
    const ratiosMid = errMid.slice(1).map((e, i) => errMid[i]! / e);
    const ratios0 = err0.slice(1).map((e, i) => err0[i]! / e);
    const what = `${sampler} (${objective} model) at t = ${tMid}: ${fmt(errMid)}; at x_0: ${fmt(err0)}`;
    report.push(what);
    if (sampler === 'ddim') {
      // First order: the error halves as the steps double.
      assert.ok(ratiosMid.every((r) => r > 1.7 && r < 2.3), `${what}: expected ratios in (1.7, 2.3) at t = ${tMid}`);
      assert.ok(ratios0.every((r) => r > 1.7 && r < 2.3), `${what}: expected ratios in (1.7, 2.3) at x_0`);
    } else {
      // Second order: the error falls about fourfold (2^1.6 to 2^2.2), clearly apart from first order's 2.
      assert.ok(ratiosMid.every((r) => r > 3 && r < 4.6), `${what}: expected ratios in (3, 4.6) at t = ${tMid}`);
      assert.ok(ratios0.slice(1).every((r) => r > 3), `${what}: expected ratios above 3 at x_0 from 20 steps on`);
    }
  }
  console.log(report.join('\n'));
  xTData.dispose();
});

// ------------------------------------------------------------------ classifier-free guidance
test('exact mixture: classifier-free guidance follows the ODE of (1 + w) eps(x | class) - w eps(x)', () => {
  const d = diffusionOf(COSINE);
  const ab = d.terms.alphaBar;
  const n = 24;
  const kc = MIXTURE.components.length;
  const labels = Array.from({ length: n }, (_, i) => i % kc);
  const xTData = randn([n, D, 1, 1], { generator: new Generator(3) });
  const xT = pointsOf(xTData);
  const results = new Map<number, number[][]>();
  for (const w of [0, 2, -0.5]) {
    // The guided field per point: its own class's Gaussian against the whole mixture.
    const guided = solveFlow(xT, ab[d.T - 1]!, [], (x, a, i) => {
      const c = MIXTURE.predict(x, a, labels[i]!).eps;
      const u = MIXTURE.predict(x, a).eps;
      return c.map((ci, j) => (1 + w) * ci - w * u[j]!);
    }).x0;
    const got = noGrad(() => sample({
      model: MIXTURE.model(ab, 'v'), diffusion: d, objective: 'v', shape: [n, D, 1, 1], sampler: 'dpmpp2m', steps: 80, x0Processing: 'none',
      numClasses: kc, labels, guidance: w, xT: xTData,
    }));
    const err = medianDistance(pointsOf(got), guided);
    got.dispose();
    results.set(w, guided);
    console.log(`guidance ${w}: median distance to the guided ODE ${err.toExponential(2)}`);
    assert.ok(err < 3e-3, `guidance w = ${w}: DPM-Solver++(2M), 80 steps, is a median ${err.toExponential(2)} from the ODE solution of the guided field (tolerance 3e-3)`);
  }
  // The check can fail: guidance moves the samples far more than the tolerance.
  const moved = medianDistance(results.get(2)!, results.get(0)!);
  assert.ok(moved > 0.1, `guidance 2 moved the ODE solutions a median ${moved} from guidance 0; expected a visible move`);
  xTData.dispose();
});
