// Which K of the T training timesteps a fast sampler visits, as diffusers' `timestep_spacing`
// (named in Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed", Table 2).
// Lists are descending: the order the sampler visits them.
import * as z from 'zod';
import { ArgumentError } from '../tensor/check.js';

export const SPACINGS = ['leading', 'linspace', 'trailing'] as const;
export type Spacing = (typeof SPACINGS)[number];

/** numpy's round (half to even), so lists match diffusers' `np.round` / `.round()` exactly. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** numpy.linspace(start, stop, num)[i] as numpy computes it: start + i * step, with the end point exact. */
function linspaceAt(start: number, stop: number, num: number, i: number): number {
  if (num === 1) return start;
  if (i === num - 1) return stop;
  return start + i * ((stop - start) / (num - 1));
}

/** A sampler's number of model timesteps K, at least 1 and at most the schedule's T. The --steps declaration (options.ts) is this schema. */
export const STEPS = z.int().min(1);

export function checkSteps(where: string, K: number, T: number): void {
  if (!STEPS.max(T).safeParse(K).success) {
    throw new ArgumentError(`${where}: the number of steps must be an integer in [1, T = ${T}], got ${K}${K > T ? ' (a sampler cannot visit more timesteps than the schedule has)' : ''}`);
  }
}

function checkDistinct(where: string, ts: number[]): number[] {
  const seen = new Set<number>();
  for (const t of ts) {
    if (seen.has(t)) throw new ArgumentError(`${where}: timestep ${t} appears twice in [${ts.join(', ')}]; choose fewer steps or another spacing`);
    seen.add(t);
  }
  return ts;
}

/**
 * K timesteps out of 0..T-1, descending:
 *   leading:  (arange(K) * (T // K)) reversed                    T=1000, K=10: 900, 800, ..., 0
 *   linspace: round(linspace(0, T - 1, K)) reversed              T=1000, K=10: 999, 888, ..., 0
 *   trailing: round(T - i T/K) - 1 for i = 0..K-1                T=1000, K=10: 999, 899, ..., 99
 * For trailing, diffusers writes np.round(np.arange(T, 0, -T/K)) - 1; numpy's arange can return K+1
 * values there when T/K is inexact (T = 150, K = 7 gives a trailing -1), so the K values are taken
 * by index instead.
 */
export function spacedTimesteps(T: number, K: number, spacing: Spacing): number[] {
  const where = `timesteps (${spacing}, T = ${T})`;
  if (!Number.isInteger(T) || T < 1) throw new ArgumentError(`timesteps: T must be an integer >= 1, got ${T}`);
  checkSteps(where, K, T);
  const idx = Array.from({ length: K }, (_, i) => i);
  switch (spacing) {
    case 'leading': {
      const ratio = Math.floor(T / K);
      return checkDistinct(where, idx.map((i) => (K - 1 - i) * ratio));
    }
    case 'linspace':
      return checkDistinct(where, idx.map((i) => roundHalfEven(linspaceAt(0, T - 1, K, K - 1 - i))));
    case 'trailing':
      return checkDistinct(where, idx.map((i) => roundHalfEven(T - i * (T / K)) - 1));
    default:
      throw new ArgumentError(`timestep spacing must be one of ${SPACINGS.join(', ')}, got ${JSON.stringify(spacing)}`);
  }
}

/**
 * DPM-Solver++'s K model timesteps, as diffusers' DPMSolverMultistepScheduler ("linspace" spacing):
 * round(linspace(0, T - 1, K + 1)) reversed, without its last point 0 (the final step goes from the
 * last of these to the clean image instead). K = T has no K + 1 distinct points in [0, T - 1]; there
 * every timestep is visited (T-1, ..., 0).
 */
export function dpmSolverTimesteps(T: number, K: number): number[] {
  const where = `timesteps (dpmpp2m, T = ${T})`;
  checkSteps(where, K, T);
  if (K === T) return Array.from({ length: T }, (_, i) => T - 1 - i);
  return checkDistinct(where, Array.from({ length: K }, (_, i) => roundHalfEven(linspaceAt(0, T - 1, K + 1, K - i))));
}
