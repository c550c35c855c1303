// The Gaussian terms of the variational bound (Ho et al. 2020, eqs. 5 and 13), as improved-diffusion's
// losses.py writes them. The hybrid training loss (loss.ts) and the bound of `ddpm eval --nll`
// (eval/nll.ts) both use these, so each formula exists once.
import { type Tensor, full, where } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { ArgumentError } from '../tensor/check.js';

/** Elementwise KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) in nats (improved-diffusion's normal_kl). */
export function normalKl(mean1: Tensor | number, logvar1: Tensor | number, mean2: Tensor | number, logvar2: Tensor | number): Tensor {
  return tidy(() => {
    const t = [mean1, logvar1, mean2, logvar2].find((v): v is Tensor => typeof v !== 'number');
    if (!t) throw new ArgumentError('normalKl: at least one argument must be a tensor');
    const T = (v: Tensor | number): Tensor => (typeof v === 'number' ? full(t.shape, v, { dtype: t.dtype }) : v);
    const [m1, lv1, m2, lv2] = [T(mean1), T(logvar1), T(mean2), T(logvar2)];
    // 0.5 (-1 + logvar2 - logvar1 + exp(logvar1 - logvar2) + (mean1 - mean2)^2 exp(-logvar2))
    return lv2.sub(lv1).sub(1).add(lv1.sub(lv2).exp()).add(m1.sub(m2).square().mul(lv2.neg().exp())).mul(0.5);
  });
}

/** improved-diffusion's approx_standard_normal_cdf: 0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), erf-free. */
export function approxStandardNormalCdf(x: Tensor): Tensor {
  return tidy(() => x.add(x.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI)).tanh().add(1).mul(0.5));
}

/**
 * log p(x) of 8-bit data x in [-1, 1] under N(means, exp(logScales)^2) discretised to bins of width
 * 2/255, with the outer bins reaching to -inf and +inf (Ho et al. 2020, eq. 13; improved-diffusion's
 * discretized_gaussian_log_likelihood, clamps at 1e-12 included). Elementwise, in nats.
 */
export function discretizedGaussianLogLikelihood(x: Tensor, means: Tensor, logScales: Tensor | number): Tensor {
  return tidy(() => {
    if (x.shape.join() !== means.shape.join()) throw new ArgumentError(`discretizedGaussianLogLikelihood: x has shape [${x.shape.join(', ')}] but means has [${means.shape.join(', ')}]`);
    const centered = x.sub(means);
    const invStdv = typeof logScales === 'number' ? Math.exp(-logScales) : logScales.neg().exp();
    const cdfPlus = approxStandardNormalCdf(centered.add(1 / 255).mul(invStdv));
    const cdfMin = approxStandardNormalCdf(centered.sub(1 / 255).mul(invStdv));
    const logCdfPlus = cdfPlus.clamp(1e-12, null).log();
    const logOneMinusCdfMin = cdfMin.neg().add(1).clamp(1e-12, null).log();
    const logCdfDelta = cdfPlus.sub(cdfMin).clamp(1e-12, null).log();
    return where(x.lt(-0.999), logCdfPlus, where(x.gt(0.999), logOneMinusCdfMin, logCdfDelta));
  });
}
