// What a sampler step hands back, and the per-step schedule values every sampler reads.
import type { Tensor } from '../tensor/index.js';
import type { ScheduleTerms } from '../diffusion/schedule.js';

/** What one reverse step computed, for pictures and the studio (tensors are freed after onStep returns). */
export interface StepResult<A = Tensor> {
  /** The timestep the model was evaluated at. */
  t: number;
  /** The timestep the step went to; -1 is the clean image. */
  tPrev: number;
  /** Position of this step in the sampler's list, 0 first (the noisiest). */
  index: number;
  /** The number of steps of the sampler's list. */
  steps: number;
  /** The new x: x_{tPrev} (after the corrector for pc). */
  x: A;
  /** The predicted noise eps_hat(x_t, t) (re-derived from x0 when that was clipped). */
  eps: A;
  /** The predicted x_0, after clipping or thresholding. */
  x0: A;
  /** The deterministic part of the update (x before sigma z is added). */
  mean: A;
  /** The standard deviation of the noise added (0 for deterministic steps). */
  sigma: number;
}

/** One step of a sampler's list: from t to tPrev, with alphabar at both (alphabar_{-1} = 1). */
export interface PlannedStep {
  t: number;
  tPrev: number;
  /** alphabar_t */
  abT: number;
  /** alphabar_tPrev; 1 at tPrev = -1 (the clean image) */
  abPrev: number;
  /** alphabar at the timestep after tPrev in the list (1 past its end): for the notebook variance */
  abPrevPrev: number;
}

/** Pairs a descending list of timesteps with the alphabars each step needs; the last step goes to -1. */
export function planSteps(d: { terms: ScheduleTerms }, ts: readonly number[]): PlannedStep[] {
  const ab = (t: number | undefined): number => (t === undefined || t < 0 ? 1 : d.terms.alphaBar[t]!);
  return ts.map((t, i) => ({ t, tPrev: ts[i + 1] ?? -1, abT: ab(t), abPrev: ab(ts[i + 1]), abPrevPrev: ab(ts[i + 2]) }));
}
