// Learning-rate schedules as pure functions of the step, so a checkpoint's step is all a resumed run
// needs. 'cosine' is transformers' get_cosine_with_min_lr_schedule_with_warmup (num_cycles 0.5,
// min_lr_rate = minLr / baseLr), held at minLr past totalSteps where transformers' cosine would rise
// again; 'constant' is get_constant_schedule_with_warmup. Both warm up linearly from 0, as
// transformers does: the first optimizer step (step 0) runs at lr 0 when warmupSteps > 0.
import { ArgumentError } from '../tensor/index.js';

export interface LrSchedule {
  kind: 'constant' | 'cosine';
  warmupSteps: number;
  /** Steps of the whole run, warm-up included (the cosine reaches minLr here). */
  totalSteps: number;
  /** The cosine's floor; unused by 'constant'. */
  minLr: number;
}

/** The notebook's schedule: the base rate at every step. */
export const CONSTANT_LR: Readonly<LrSchedule> = Object.freeze({ kind: 'constant', warmupSteps: 0, totalSteps: 1, minLr: 0 });

const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : String(v));

/** Refuses a schedule that cannot be followed, naming each field that is wrong and what it should be. */
export function validateLrSchedule(baseLr: number, s: LrSchedule, where = 'lr schedule'): void {
  const problems: string[] = [];
  if (typeof baseLr !== 'number' || !Number.isFinite(baseLr) || baseLr < 0) problems.push(`base lr must be a finite number >= 0, got ${show(baseLr)}`);
  if (s.kind !== 'constant' && s.kind !== 'cosine') problems.push(`kind must be 'constant' or 'cosine', got ${show(s.kind)}`);
  if (typeof s.warmupSteps !== 'number' || !Number.isInteger(s.warmupSteps) || s.warmupSteps < 0) {
    problems.push(`warmupSteps must be an integer >= 0, got ${show(s.warmupSteps)}`);
  }
  if (typeof s.totalSteps !== 'number' || !Number.isInteger(s.totalSteps) || s.totalSteps < 1) {
    problems.push(`totalSteps must be an integer >= 1, got ${show(s.totalSteps)}`);
  } else if (Number.isInteger(s.warmupSteps) && s.warmupSteps > s.totalSteps) {
    problems.push(`warmupSteps ${s.warmupSteps} is more than totalSteps ${s.totalSteps}; lower the warm-up or train for longer`);
  }
  if (typeof s.minLr !== 'number' || !Number.isFinite(s.minLr) || s.minLr < 0) problems.push(`minLr must be a finite number >= 0, got ${show(s.minLr)}`);
  else if (Number.isFinite(baseLr) && s.minLr > baseLr) problems.push(`minLr ${s.minLr} is above the base lr ${baseLr}; expected minLr <= lr`);
  if (problems.length) throw new ArgumentError(`${where}: ${problems.join('; ')}`);
}

/**
 * The learning rate for the optimizer step with 0-based index `step` (steps already taken):
 *   warm-up, step < W:  base * step / max(1, W)
 *   cosine, after:      base * (r + (1 - r) * 0.5 * (1 + cos(pi * p))),  r = minLr / base,
 *                       p = min(1, (step - W) / max(1, T - W))
 *   constant, after:    base
 */
export function lrAt(baseLr: number, step: number, s: LrSchedule): number {
  validateLrSchedule(baseLr, s);
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 0) {
    throw new ArgumentError(`lr schedule: step must be an integer >= 0, got ${show(step)}`);
  }
  const w = s.warmupSteps;
  if (step < w) return baseLr * (step / Math.max(1, w)); // LambdaLR: base_lr * lambda(step)
  if (s.kind === 'constant') return baseLr;
  const progress = Math.min(1, (step - w) / Math.max(1, s.totalSteps - w));
  const rate = baseLr === 0 ? 0 : s.minLr / baseLr;
  const factor = 0.5 * (1 + Math.cos(Math.PI * progress));
  return baseLr * (factor * (1 - rate) + rate);
}
