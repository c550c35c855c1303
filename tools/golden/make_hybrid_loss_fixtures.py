#!/usr/bin/env python3
"""Writes test/fixtures/hybrid_loss_golden.json: the L_vlb term of the hybrid loss of a
learned-variance model (Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models"),
computed here in PyTorch in float32, as openai/improved-diffusion computes it in training, which
test/learned-variance.test.ts replays through src/diffusion/loss.ts and compares.

Run from anywhere (deterministic: numpy's RandomState(0) draws the inputs):
    /usr/bin/python3 tools/golden/make_hybrid_loss_fixtures.py

Written from improved-diffusion, not from ddpm-ts:
  - gaussian_diffusion.py: the schedule terms of GaussianDiffusion.__init__ (posterior_variance,
    posterior_log_variance_clipped = log(append(posterior_variance[1], posterior_variance[1:])),
    posterior_mean_coef1/2), get_named_beta_schedule ("linear" with ddpm-ts's endpoints, "cosine"
    through betas_for_alpha_bar with max_beta 0.999), q_posterior_mean_variance, p_mean_variance
    for ModelVarType.LEARNED_RANGE (min_log = posterior_log_variance_clipped, max_log = log(betas),
    frac = (v + 1) / 2, log var = frac max_log + (1 - frac) min_log), _vb_terms_bpd with
    clip_denoised=False (KL in bits/dim for t > 0, the decoder NLL at t == 0), and training_losses for
    LossType.RESCALED_MSE (vb * num_timesteps / 1000.0, with the mean output detached:
    frozen_out = cat([model_output.detach(), model_var_values])).
  - losses.py: normal_kl, approx_standard_normal_cdf, discretized_gaussian_log_likelihood.
improved-diffusion predicts eps or x0 (ModelMeanType.EPSILON / START_X); the v case reads
x0 = sqrt(alphabar) x_t - sqrt(1 - alphabar) v (Salimans & Ho 2022, section 4).

The gradient of lambda L_vlb with respect to the model output is recorded too: zero on the mean's
channels (the stop-gradient) and torch.autograd's on v's.

Layout: {"meta", "cases": [{name, schedule: ScheduleConfig, T, objective, shape, t, x0, xt, meanOut, v,
vb (per example, bits/dim), hybridTerm (mean(vb) T / 1000), gradV}]}; arrays are flat, row-major.
"""
import json
import math
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[2] / 'test' / 'fixtures' / 'hybrid_loss_golden.json'
# float32 as improved-diffusion trains (its _extract_into_tensor casts each term with .float()): in
# the decoder's tails cdf_plus - cdf_min cancels to 0 and is clamped at 1e-12 in float32 where float64
# still resolves it, so a float64 reference would disagree with both implementations there.
torch.set_default_dtype(torch.float32)


# ------------------------------------------------------------------ improved-diffusion's schedules
def linear_betas(T, start, end):
    return np.linspace(start, end, T, dtype=np.float64)


def betas_for_alpha_bar(T, alpha_bar, max_beta=0.999):
    betas = []
    for i in range(T):
        t1 = i / T
        t2 = (i + 1) / T
        betas.append(min(1 - alpha_bar(t2) / alpha_bar(t1), max_beta))
    return np.array(betas)


def cosine_betas(T):
    return betas_for_alpha_bar(T, lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2)


class Terms:
    """GaussianDiffusion.__init__'s arrays, float64 numpy."""

    def __init__(self, betas):
        self.T = len(betas)
        self.betas = betas
        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas, axis=0)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_log_variance_clipped = np.log(np.append(self.posterior_variance[1], self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)


def extract(arr, t, shape):
    res = torch.from_numpy(arr)[t].float()
    while len(res.shape) < len(shape):
        res = res[..., None]
    return res.expand(shape)


# ------------------------------------------------------------------ losses.py
def normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + ((mean1 - mean2) ** 2) * torch.exp(-logvar2))


def approx_standard_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


def discretized_gaussian_log_likelihood(x, *, means, log_scales):
    centered_x = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered_x + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered_x - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))))


def mean_flat(x):
    return x.mean(dim=list(range(1, len(x.shape))))


# ------------------------------------------------------------------ gaussian_diffusion.py
def pred_xstart(d, objective, out, x_t, t):
    a = extract(d.sqrt_alphas_cumprod, t, x_t.shape)
    s = extract(d.sqrt_one_minus_alphas_cumprod, t, x_t.shape)
    if objective == 'eps':  # _predict_xstart_from_eps
        return extract(np.sqrt(1.0 / d.alphas_cumprod), t, x_t.shape) * x_t - extract(np.sqrt(1.0 / d.alphas_cumprod - 1), t, x_t.shape) * out
    if objective == 'x0':
        return out
    return a * x_t - s * out  # v


def q_posterior(d, x_start, x_t, t):
    mean = extract(d.posterior_mean_coef1, t, x_t.shape) * x_start + extract(d.posterior_mean_coef2, t, x_t.shape) * x_t
    return mean, extract(d.posterior_log_variance_clipped, t, x_t.shape)


def vb_terms_bpd(d, objective, model_output, x_start, x_t, t):
    C = x_t.shape[1]
    mean_out, v = torch.split(model_output, C, dim=1)
    # p_mean_variance, LEARNED_RANGE
    min_log = extract(d.posterior_log_variance_clipped, t, x_t.shape)
    max_log = extract(np.log(d.betas), t, x_t.shape)
    frac = (v + 1) / 2
    model_log_variance = frac * max_log + (1 - frac) * min_log
    model_mean, _ = q_posterior(d, pred_xstart(d, objective, mean_out, x_t, t), x_t, t)
    true_mean, true_log_variance_clipped = q_posterior(d, x_start, x_t, t)
    kl = mean_flat(normal_kl(true_mean, true_log_variance_clipped, model_mean, model_log_variance)) / np.log(2.0)
    decoder_nll = mean_flat(-discretized_gaussian_log_likelihood(x_start, means=model_mean, log_scales=0.5 * model_log_variance)) / np.log(2.0)
    return torch.where(t == 0, decoder_nll, kl)


def case(name, schedule, betas, objective, t, rs):
    d = Terms(betas)
    B = len(t)
    shape = (B, 1, 4, 4)
    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)
    x0 = f32(rs.randint(0, 256, size=shape) / 127.5 - 1)
    x0[0, 0, 0, :2] = [-1.0, 1.0]  # both edge bins of the decoder
    noise = f32(rs.randn(*shape))
    tt = torch.tensor(t, dtype=torch.int64)
    x_t = f32((extract(d.sqrt_alphas_cumprod, tt, shape).double() * torch.from_numpy(x0) + extract(d.sqrt_one_minus_alphas_cumprod, tt, shape).double() * torch.from_numpy(noise)).numpy())
    # A model output near the truth, as a trained model's: the target plus noise, and v in about [-1.2, 1.2].
    a = extract(d.sqrt_alphas_cumprod, tt, shape).double().numpy()
    s = extract(d.sqrt_one_minus_alphas_cumprod, tt, shape).double().numpy()
    target = {'eps': noise, 'x0': x0, 'v': a * noise - s * x0}[objective]
    mean_out = f32(target + 0.05 * rs.randn(*shape))
    v = f32(rs.uniform(-1.2, 1.2, size=shape))
    T32 = lambda a: torch.from_numpy(np.asarray(a)).float()
    model_output = torch.cat([T32(mean_out), T32(v)], dim=1).requires_grad_(True)
    C = shape[1]
    # training_losses: frozen_out = cat([model_output.detach(), model_var_values])
    frozen = torch.cat([model_output[:, :C].detach(), model_output[:, C:]], dim=1)
    vb = vb_terms_bpd(d, objective, frozen, T32(x0), T32(x_t), tt)
    term = (vb * d.T / 1000.0).mean()  # RESCALED_MSE, uniform t: losses["loss"].mean()
    term.backward()
    grad = model_output.grad
    assert torch.all(grad[:, :C] == 0), 'the stop-gradient must leave the mean untouched'
    flat = lambda a: [float(x) for x in np.asarray(a).reshape(-1)]
    return {
        'name': name, 'schedule': schedule, 'T': d.T, 'objective': objective, 'shape': list(shape), 't': t,
        'x0': flat(x0), 'xt': flat(x_t), 'meanOut': flat(mean_out), 'v': flat(v),
        'vb': flat(vb.detach().numpy()), 'hybridTerm': float(term), 'gradV': flat(grad[:, C:].numpy()),
    }


def main():
    rs = np.random.RandomState(0)
    cases = [
        case('dli02 linear T=150, eps', {'kind': 'linear', 'T': 150, 'betaStart': 1e-4, 'betaEnd': 0.02}, linear_betas(150, 1e-4, 0.02), 'eps', [0, 1, 2, 75, 148, 149], rs),
        case('linear T=150, x0', {'kind': 'linear', 'T': 150, 'betaStart': 1e-4, 'betaEnd': 0.02}, linear_betas(150, 1e-4, 0.02), 'x0', [0, 0, 3, 40, 100, 149], rs),
        case('ddpm cosine T=1000, v', {'kind': 'cosine', 'T': 1000, 's': 0.008}, cosine_betas(1000), 'v', [0, 1, 10, 500, 998, 999], rs),
    ]
    meta = {'torch': torch.__version__, 'numpy': np.__version__, 'script': 'tools/golden/make_hybrid_loss_fixtures.py'}
    OUT.write_text(json.dumps({'meta': meta, 'cases': cases}) + '\n')
    print(f'wrote {OUT} ({len(cases)} cases)')


if __name__ == '__main__':
    main()
