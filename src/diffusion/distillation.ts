// Progressive distillation (Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of
// Diffusion Models", Algorithm 2): the student's one DDIM step from z_t must land where two DDIM
// steps of the teacher land. With alpha = sqrt(alphabar), sigma = sqrt(1 - alphabar), t' the
// teacher's midpoint and t'' the student's next timestep:
//   z_t'  = alpha_t'  x_hat(z_t)  + (sigma_t' / sigma_t)  (z_t  - alpha_t  x_hat(z_t))
//   z_t'' = alpha_t'' x_hat(z_t') + (sigma_t'' / sigma_t') (z_t' - alpha_t' x_hat(z_t'))
//   x~    = (z_t'' - (sigma_t'' / sigma_t) z_t) / (alpha_t'' - (sigma_t'' / sigma_t) alpha_t)
// and the loss is w(lambda_t) ||x~ - x_hat_student(z_t)||^2 with the truncated-SNR weight
// max(SNR_t, 1) or SNR_t + 1, which is the MSE of v (section 4). The step is DDIM's with eta 0
// (Song et al. 2021, eq. 12) written in x_hat: eps_hat = (z_t - alpha_t x_hat) / sigma_t.
import { type Tensor, mseLoss, tidy, ArgumentError } from '../tensor/index.js';

/** The loss weights of section 4: max(SNR, 1) ("truncated SNR") or SNR + 1 (the v loss), on the x_0 error. */
export const DISTILL_WEIGHTINGS = ['truncated-snr', 'snr-plus-one'] as const;
export type DistillWeighting = (typeof DISTILL_WEIGHTINGS)[number];

/** alpha and sigma at the student's timestep t, the teacher's midpoint t' and the student's next timestep t'' (each (B, 1, 1, 1); t'' = clean: alpha 1, sigma 0). */
export interface TwoStepCoefs { a: Tensor; s: Tensor; aMid: Tensor; sMid: Tensor; aNext: Tensor; sNext: Tensor }

/** DDIM with eta 0 from z at (a, s) to (aTo, sTo), given x_hat: aTo x_hat + (sTo / s) (z - a x_hat). */
export function ddimTowards(z: Tensor, x0: Tensor, a: Tensor, s: Tensor, aTo: Tensor, sTo: Tensor): Tensor {
  return tidy(() => x0.mul(aTo).add(z.sub(x0.mul(a)).mul(sTo.div(s))));
}

/**
 * The student's x_0 target x~ from two DDIM steps of the teacher. `teacherX0(z, mid)` is the
 * teacher's x_hat at the student's timestep (mid false) or at the midpoint t' (mid true).
 */
export function distillationTarget(teacherX0: (z: Tensor, mid: boolean) => Tensor, zt: Tensor, c: TwoStepCoefs): Tensor {
  return tidy(() => {
    const zMid = ddimTowards(zt, teacherX0(zt, false), c.a, c.s, c.aMid, c.sMid);
    const zNext = ddimTowards(zMid, teacherX0(zMid, true), c.aMid, c.sMid, c.aNext, c.sNext);
    const r = c.sNext.div(c.s); // sigma_t'' / sigma_t: 0 at the last step, where x~ is the teacher's z_t'' itself
    return zNext.sub(zt.mul(r)).div(c.aNext.sub(c.a.mul(r)));
  });
}

/** The weight of the x_0 error at signal-to-noise ratio `snr`. */
export function distillationWeight(snr: number, weighting: DistillWeighting): number {
  switch (weighting) {
    case 'truncated-snr': return Math.max(snr, 1);
    case 'snr-plus-one': return snr + 1;
    default: throw new ArgumentError(`distillation loss weighting must be one of ${DISTILL_WEIGHTINGS.join(', ')}, got ${JSON.stringify(weighting)}`);
  }
}

/** mean_b w_b mean_pixels (x_hat - x~)^2, for the student's x_hat (B, C, H, W) and the weights w (B,). */
export function distillationLoss(studentX0: Tensor, target: Tensor, weights: Tensor): Tensor {
  return tidy(() => mseLoss(studentX0, target, 'none').mean([1, 2, 3]).mul(weights).mean());
}
