// The rounds of progressive distillation (Salimans & Ho 2022, Algorithm 2) on a discrete schedule:
// how many DDIM steps each round's student takes, and which of the run's integer timesteps they are.
//
// Algorithm 2 samples the student's time t = i/N (i = 1..N) and the teacher's midpoint t - 0.5/N in
// continuous time. Here a time u in [0, 1] maps to the run's timestep round(T u) - 1, u = 0 being the
// clean image: that is the DDIM sampler's own "trailing" grid (samplers/timesteps.ts) at N steps, so
// `ddpm sample --sampler ddim --steps N` visits exactly the timesteps the student was trained on. For
// N a power of two, T u is exact in floating point, so the teacher's 2N-step grid contains the
// student's N-step grid point for point and its midpoints are the odd points between them.
import { ArgumentError } from '../tensor/index.js';
import { spacedTimesteps } from '../samplers/index.js';

/** The largest power of two <= T: the DDIM step count the first teacher is distilled from. */
export function largestPowerOfTwo(T: number): number {
  if (!Number.isInteger(T) || T < 1) throw new ArgumentError(`distill: T must be a positive integer, got ${T}`);
  return 2 ** Math.floor(Math.log2(T));
}

const isPowerOfTwo = (n: number): boolean => Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;

/**
 * Refuses a teacher step count that is not a power of two <= T, or that differs from a distilled
 * teacher's own (a student only learnt its own timesteps).
 */
export function checkTeacherSteps(from: number, T: number, own: number | null, where: string): void {
  if (own !== null && from !== own) {
    throw new ArgumentError(`--teacher-steps ${from}: the teacher ${where} was distilled to ${own} DDIM steps and only knows those timesteps; leave --teacher-steps out, or give ${own}`);
  }
  if (!isPowerOfTwo(from) || from > T) {
    throw new ArgumentError(`--teacher-steps must be a power of two <= T = ${T} (the rounds halve it), got ${from}; try --teacher-steps ${largestPowerOfTwo(Math.min(Math.max(from, 1), T))}`);
  }
}

/**
 * The student's step count of each round, halving from the teacher's `from` steps down to `steps`:
 * from 128 to 8 gives [64, 32, 16, 8]. `where` names the teacher for the refusals.
 */
export function distillRounds(from: number, steps: number, where: string): number[] {
  if (!isPowerOfTwo(steps)) {
    const below = 2 ** Math.floor(Math.log2(Math.max(steps, 1)));
    throw new ArgumentError(`--steps must be a power of two (each round halves the step count), got ${steps}; try --steps ${below}`);
  }
  if (steps >= from) {
    throw new ArgumentError(`--steps ${steps} leaves nothing to distill: ${where} samples with ${from} DDIM steps, and each round halves that; ask for at most ${from / 2}`);
  }
  const rounds: number[] = [];
  for (let k = from / 2; k >= steps; k /= 2) rounds.push(k);
  return rounds;
}

/** The student's timestep t, the teacher's midpoint and the student's next timestep (-1: the clean image). */
export interface TwoStepTimesteps { t: number; mid: number; next: number }

/**
 * For each of the student's N steps, ascending (index i - 1 for Algorithm 2's i = 1..N): the
 * timesteps of u = i/N, u - 0.5/N and u - 1/N, read off the teacher's 2N-step trailing grid.
 */
export function twoStepTimesteps(T: number, N: number): TwoStepTimesteps[] {
  if (2 * N > T) throw new ArgumentError(`distill: a ${N}-step student needs a ${2 * N}-step teacher, more steps than T = ${T}`);
  const desc = spacedTimesteps(T, 2 * N, 'trailing'); // u = 1, 1 - 1/(2N), ..., 1/(2N)
  const at = (m: number): number => (m === 0 ? -1 : desc[2 * N - m]!); // timestep of u = m / (2N)
  return Array.from({ length: N }, (_, k) => ({ t: at(2 * k + 2), mid: at(2 * k + 1), next: at(2 * k) }));
}
