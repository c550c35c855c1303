// The corrector of predictor-corrector sampling (Song et al. 2021, "Score-Based Generative Modeling
// through Stochastic Differential Equations", Algorithms 4 and 5 for the VP SDE): Langevin MCMC at a
// fixed noise level with the score s = -eps_hat / sqrt(1 - alphabar_t) (Ho et al.'s eps and the score
// differ by that factor) and the step size 2 alpha_t (snr ||z|| / ||s||)^2, which keeps the
// signal-to-noise ratio of each update at `snr`.
// Norms are per sample (the reference code, score_sde's LangevinCorrector, averages them over the
// batch), so an image does not depend on which others share its batch.
import * as z from 'zod';
import { tidy } from '../tensor/scope.js';
import { ArgumentError } from '../tensor/check.js';
import { refusal } from '../options/declare.js';
import type { NdArray, NoiseLike } from './array.js';

/** The corrector's r that Song et al. 2021 use for the VP SDE on CIFAR-10 (Table 4 / their configs): 0.16. */
export const DEFAULT_SNR = 0.16;

/** Langevin corrector steps per noise level (0: the predictor alone). The --corrector-steps declaration (options.ts) is this schema. */
export const CORRECTOR_STEPS = z.int().min(0);
/** The corrector's signal-to-noise ratio r. The --snr declaration (options.ts) is this schema. */
export const SNR = z.number().gt(0);

export function checkCorrector(correctorSteps: number, snr: number): void {
  const r = refusal(CORRECTOR_STEPS, correctorSteps, 'pc: correctorSteps') ?? refusal(SNR, snr, 'pc: snr');
  if (r !== null) throw new ArgumentError(r.startsWith('pc: snr') ? `${r} (Song et al. use ${DEFAULT_SNR})` : `${r} (Langevin steps per noise level)`);
}

/** Per-sample Euclidean norm: (B, ...) -> (B,). */
function perSampleNorm<A extends NdArray<A>>(x: A): A { return x.reshape([x.shape[0]!, -1]).square().sum(1).sqrt(); }

/**
 * One Langevin step at noise level alphabar (alpha: 1 - beta of that level):
 * x <- x + step s + sqrt(2 step) z, step = 2 alpha (snr ||z|| / ||s||)^2 per sample.
 */
export function langevinStep<A extends NdArray<A>>(x: A, eps: A, alphaBar: number, alpha: number, snr: number, noise: NoiseLike<A>): { x: A; mean: A; stepSize: A } {
  return tidy(() => {
    const b = x.shape[0]!;
    const score = eps.mul(-1 / Math.sqrt(1 - alphaBar)); // s = -eps / sqrt(1 - alphabar)
    const z = noise(x);
    const stepSize = perSampleNorm(z).div(perSampleNorm(score)).mul(snr).square().mul(2 * alpha).reshape([b, ...new Array<number>(x.rank - 1).fill(1)]); // (B, 1, 1, 1)
    const mean = x.add(score.mul(stepSize));
    return { x: mean.add(z.mul(stepSize.mul(2).sqrt())), mean, stepSize };
  });
}
