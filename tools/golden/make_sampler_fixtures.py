#!/usr/bin/env python3
"""Writes test/fixtures/samplers_golden.json: full seeded sampling loops of every sampler in
src/samplers (DDPM with three variances and respacing, DDIM, DPM-Solver++(2M), predictor-corrector),
computed here by an independent PyTorch implementation of the same formulas, which
test/samplers.test.ts replays through ddpm-ts and compares to 1e-4.

Run from anywhere (deterministic: same torch, same numbers):
    /usr/bin/python3 tools/golden/make_sampler_fixtures.py

The model is an analytic stand-in, the same in both languages: the ideal denoiser for data
N(m, 0.5^2 I), x0_hat = m + k_t (x - a m), k_t = 0.25 a / (0.25 a^2 + s^2), a = sqrt(alphabar_t), s = sqrt(1 - alphabar_t),
m = 0.1 sin(t / T) [+ 0.3 (c . w), w_k = (k + 1) / K - 0.5], output as eps = (x - a x0_hat) / s, as x0_hat,
or as v = a eps - s x0_hat, in float32 from float32 tables of a, s and k. The random draws are identical because ddpm-ts's Generator is libtorch's CPU
generator: every draw below is torch.randn(shape, generator=g) in the order ddpm-ts draws (x_T,
then per step the ancestral / DDIM noise, then the corrector's z).

Layout: {"meta", "timesteps": [{T, K, spacing, list}], "schedules": {name: ScheduleConfig},
"cases": [{name, schedule, objective, sampler, steps, ..., seed, shape, sum, meanAbs, x}]}.
"""
import json
import math
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[2] / 'test' / 'fixtures' / 'samplers_golden.json'
torch.set_num_threads(1)
SHAPE = [2, 2, 4, 4]
NUM_CLASSES = 3


# ------------------------------------------------------------------ schedules (float64, as schedule.ts)
def linear_betas(T, start, end):
    return [start if T == 1 else start + ((end - start) * i) / (T - 1) for i in range(T)]


def cosine_betas(T, s=0.008):
    f = lambda u: math.cos((((u + s) / (1 + s)) * math.pi) / 2) ** 2
    f0 = f(0)
    return [min(max(1 - (f((i + 1) / T) / f0) / (f(i / T) / f0), 0), 0.999) for i in range(T)]


def rescale_zero_terminal_snr(betas):
    T = len(betas)
    sqrt_ab, prod = [], 1.0
    for b in betas:
        prod *= 1 - b
        sqrt_ab.append(math.sqrt(prod))
    a0, aT = sqrt_ab[0], sqrt_ab[-1]
    ab = [((v - aT) * a0 / (a0 - aT)) ** 2 for v in sqrt_ab]
    return [1 - (ab[0] if i == 0 else ab[i] / ab[i - 1]) for i in range(T)]


class Sched:
    def __init__(self, betas):
        self.T = len(betas)
        self.beta = betas
        self.alpha = [1 - b for b in betas]
        self.ab, prod = [], 1.0
        for a in self.alpha:
            prod *= a
            self.ab.append(prod)
        self.ab_prev = [1.0] + self.ab[:-1]
        self.post_var = [self.beta[i] * (1 - self.ab_prev[i]) / (1 - self.ab[i]) for i in range(self.T)]
        self.pred_noise_coeff = [self.beta[i] / math.sqrt(1 - self.ab[i]) for i in range(self.T)]
        self.sqrt_recip_alpha = [1 / math.sqrt(a) if a > 0 else math.inf for a in self.alpha]
        f32 = lambda v: torch.tensor(v, dtype=torch.float64).float()
        sa, ss = [math.sqrt(a) for a in self.ab], [math.sqrt(1 - a) for a in self.ab]
        self.a32, self.s32 = f32(sa), f32(ss)
        self.k32 = f32([0.25 * sa[i] / (0.25 * sa[i] * sa[i] + ss[i] * ss[i]) for i in range(self.T)])  # E[x0 | x_t] = m + k (x_t - a m)

    def coefs(self, t):
        return (1.0, 0.0) if t == -1 else (math.sqrt(self.ab[t]), math.sqrt(1 - self.ab[t]))


SCHEDULES = {
    'linear': {'kind': 'linear', 'T': 100, 'betaStart': 1e-3, 'betaEnd': 0.2},
    'cosine': {'kind': 'cosine', 'T': 100, 's': 0.008},
    'linear-zsnr': {'kind': 'linear', 'T': 100, 'betaStart': 1e-3, 'betaEnd': 0.2, 'zeroTerminalSnr': True},
}


def make_sched(c):
    betas = linear_betas(c['T'], c['betaStart'], c['betaEnd']) if c['kind'] == 'linear' else cosine_betas(c['T'], c['s'])
    return Sched(rescale_zero_terminal_snr(betas) if c.get('zeroTerminalSnr') else betas)


# ------------------------------------------------------------------ timesteps (diffusers' formulas, numpy)
def ts_leading(T, K):
    return list((np.arange(0, K) * (T // K)).round()[::-1].astype(np.int64))


def ts_linspace(T, K):
    return list(np.linspace(0, T - 1, K).round()[::-1].astype(np.int64))


def ts_trailing(T, K):
    # diffusers: np.round(np.arange(T, 0, -T / K)).astype(np.int64) - 1; numpy may give K + 1 values.
    return list((np.round(np.arange(T, 0, -T / K)).astype(np.int64) - 1)[:K])


def ts_dpm(T, K):
    if K == T:
        return list(range(T - 1, -1, -1))
    return list(np.linspace(0, T - 1, K + 1).round()[::-1][:-1].astype(np.int64))


SPACING = {'leading': ts_leading, 'linspace': ts_linspace, 'trailing': ts_trailing}


# ------------------------------------------------------------------ the stand-in model and the denoiser
CLASS_W = torch.tensor([(k + 1) / NUM_CLASSES - 0.5 for k in range(NUM_CLASSES)], dtype=torch.float32)


def standin(sch, objective, x, t, c):
    """The ideal denoiser for data N(m, 0.5^2 I) with a mean m that moves with t (and the class), written
    as the output of an eps, x0 or v model, so every objective samples a similar, moderate distribution."""
    b = x.shape[0]
    col = lambda table: table[t].reshape(b, 1, 1, 1)
    a, s, k = col(sch.a32), col(sch.s32), col(sch.k32)
    m = torch.sin(t.to(torch.float64) / sch.T).to(torch.float32).reshape(b, 1, 1, 1) * 0.1
    if c is not None:
        m = m + (c @ CLASS_W.reshape(NUM_CLASSES, 1)).reshape(b, 1, 1, 1) * 0.3
    x0 = (x - m * a) * k + m
    if objective == 'x0':
        return x0
    eps = (x - x0 * a) / s
    return eps if objective == 'eps' else eps * a - x0 * s


def one_hot(labels):
    c = torch.zeros(len(labels), NUM_CLASSES)
    for i, l in enumerate(labels):
        c[i, l] = 1
    return c


def denoise(sch, objective, processing, w, x, t, c):
    b = x.shape[0]
    a, s = sch.coefs(t)
    if c is None or w == 0:
        out = standin(sch, objective, x, torch.full((b,), t, dtype=torch.int64), c)
    else:
        both = standin(sch, objective, torch.cat([x, x]), torch.full((2 * b,), t, dtype=torch.int64), torch.cat([c, torch.zeros_like(c)]))
        out = both[:b] * (1 + w) - both[b:] * w
    if objective == 'eps':
        eps, x0 = out, (x - out * s) / a
    elif objective == 'x0':
        eps, x0 = (x - out * a) / s, out
    else:
        eps, x0 = x * s + out * a, x * a - out * s
    if processing == 'none':
        return eps, x0
    if processing == 'clip':
        x0 = x0.clamp(-1, 1)
    else:  # dynamic thresholding (Saharia et al. 2022)
        q = x0.reshape(b, -1).abs().quantile(0.995, dim=1).clamp(min=1).reshape(b, 1, 1, 1)
        x0 = torch.maximum(x0, -q).minimum(q) / q
    return (x - x0 * a) / s, x0


# ------------------------------------------------------------------ the samplers
def plan(sch, ts):
    ab = lambda i: 1.0 if i >= len(ts) else sch.ab[ts[i]]
    return [dict(t=t, tPrev=ts[i + 1] if i + 1 < len(ts) else -1, abT=ab(i), abPrev=ab(i + 1), abPrevPrev=ab(i + 2)) for i, t in enumerate(ts)]


def respaced_sigma(p, variance):
    if p['tPrev'] < 0:
        return 0.0
    beta_p = 1 - p['abT'] / p['abPrev']
    if variance == 'notebook':
        return math.sqrt(1 - p['abPrev'] / p['abPrevPrev'])
    if variance == 'beta':
        return math.sqrt(beta_p)
    return math.sqrt(beta_p * (1 - p['abPrev']) / (1 - p['abT']))


def ancestral(sch, p, x, eps, x0, variance, notebook_form, g):
    t = p['t']
    if notebook_form:  # Ho et al.'s eq. 11 with the original schedule, as ddpmStep
        sigma = 0.0 if t == 0 else math.sqrt({'notebook': sch.beta[t - 1] if t > 0 else 0, 'beta': sch.beta[t], 'posterior': sch.post_var[t]}[variance])
        mean = (x - eps * sch.pred_noise_coeff[t]) * sch.sqrt_recip_alpha[t]
    else:  # posterior mean on the respaced schedule (improved-diffusion's SpacedDiffusion)
        sigma = respaced_sigma(p, variance)
        beta_p = 1 - p['abT'] / p['abPrev']
        coef1 = beta_p * math.sqrt(p['abPrev']) / (1 - p['abT'])
        coef2 = (1 - p['abPrev']) * math.sqrt(p['abT'] / p['abPrev']) / (1 - p['abT'])
        mean = x0 * coef1 + x * coef2
    return mean if sigma == 0 else mean + torch.randn(x.shape, generator=g) * sigma


def ddim(p, eps, x0, eta, g):
    sigma = eta * math.sqrt((1 - p['abPrev']) / (1 - p['abT'])) * math.sqrt(1 - p['abT'] / p['abPrev'])
    d = math.sqrt(max(0.0, 1 - p['abPrev'] - sigma * sigma))
    mean = x0 * math.sqrt(p['abPrev']) + eps * d
    return mean if sigma == 0 else mean + torch.randn(x0.shape, generator=g) * sigma


def lam(ab):
    return math.log(math.sqrt(ab)) - math.log(math.sqrt(1 - ab)) if ab > 0 else -math.inf


def dpmpp2m(p, x, m0, m1, ab_last):
    if p['tPrev'] < 0:
        return m0.clone()
    a_s, s_s = math.sqrt(p['abT']), math.sqrt(1 - p['abT'])
    a_t, s_t = math.sqrt(p['abPrev']), math.sqrt(1 - p['abPrev'])
    ratio = s_t / s_s
    exp_mh = (s_t * a_s) / (a_t * s_s)
    c0 = a_t * (exp_mh - 1)
    if m1 is None:
        return x * ratio - m0 * c0
    h = lam(p['abPrev']) - lam(p['abT'])
    h0 = lam(p['abT']) - lam(ab_last)
    r0 = h0 / h if math.isfinite(h0) else math.inf
    c1 = 0.5 * c0 / r0
    return x * ratio - m0 * c0 - (m0 - m1) * c1


def langevin(x, eps, ab, alpha, snr, g):
    b = x.shape[0]
    score = eps * (-1 / math.sqrt(1 - ab))
    z = torch.randn(x.shape, generator=g)
    norm = lambda v: v.reshape(b, -1).square().sum(1).sqrt()
    step = (norm(z) / norm(score) * snr).square() * (2 * alpha)
    step = step.reshape(b, 1, 1, 1)
    return x + score * step + z * (step * 2).sqrt()


DEFAULT_STEPS = {'ddim': 50, 'dpmpp2m': 20}


def run_case(sch, case):
    g = torch.Generator().manual_seed(case['seed'])
    sampler, objective, T = case['sampler'], case['objective'], sch.T
    K = case['steps']
    processing = case.get('x0Processing', 'none')
    w = case.get('guidance', 0)
    if sampler == 'dpmpp2m':
        ts = ts_dpm(T, K)
    else:
        ts = SPACING[case.get('spacing', 'trailing' if sampler == 'ddim' else 'linspace')](T, K)
    ts = [int(t) for t in ts]
    steps = plan(sch, ts)
    variance = case.get('variance', 'beta' if sampler == 'pc' else 'notebook')
    notebook_form = objective == 'eps' and processing == 'none' and K == T
    c = one_hot(case['labels']) if 'labels' in case else None
    x = torch.randn(SHAPE, generator=g)
    last_x0 = None
    for i, p in enumerate(steps):
        eps, x0 = denoise(sch, objective, processing, w, x, p['t'], c)
        if sampler == 'ddpm':
            x = ancestral(sch, p, x, eps, x0, variance, notebook_form, g)
        elif sampler == 'ddim':
            x = ddim(p, eps, x0, case.get('eta', 0), g)
        elif sampler == 'dpmpp2m':
            x = dpmpp2m(p, x, x0, last_x0, steps[i - 1]['abT'] if i > 0 else None)
            last_x0 = x0
        else:
            x = ancestral(sch, p, x, eps, x0, variance, notebook_form, g)
            if p['tPrev'] >= 0:
                alpha = p['abPrev'] / p['abPrevPrev']
                for _ in range(case.get('correctorSteps', 1)):
                    e2, _x0 = denoise(sch, objective, processing, w, x, p['tPrev'], c)
                    x = langevin(x, e2, p['abPrev'], alpha, case.get('snr', 0.16), g)
    return x


def main():
    cases = []

    def add(**kw):
        kw['name'] = ' '.join(f'{k}={v}' for k, v in kw.items())
        kw['seed'] = 1000 + len(cases)
        cases.append(kw)

    for sched in ['linear', 'cosine', 'linear-zsnr']:
        for objective in ['eps', 'x0', 'v']:
            if sched == 'linear-zsnr' and objective == 'eps':
                continue  # refused: x0 from eps divides by sqrt(alphabar) = 0
            T = SCHEDULES[sched]['T']
            for variance in ['notebook', 'beta', 'posterior']:
                for K in [T, 10]:
                    add(schedule=sched, objective=objective, sampler='ddpm', steps=K, variance=variance)
            for eta in [0, 0.5]:
                for spacing in ['leading', 'linspace', 'trailing']:
                    add(schedule=sched, objective=objective, sampler='ddim', steps=10, eta=eta, spacing=spacing)
            for K in [10, 4]:
                add(schedule=sched, objective=objective, sampler='dpmpp2m', steps=K)
            for K in [T, 10]:
                add(schedule=sched, objective=objective, sampler='pc', steps=K)
    # x0 processing, guidance and corrector settings on top of the plain loops.
    for sched, objective in [('linear', 'eps'), ('cosine', 'v')]:
        for processing in ['clip', 'dynamic']:
            add(schedule=sched, objective=objective, sampler='ddpm', steps=10, variance='posterior', x0Processing=processing)
            add(schedule=sched, objective=objective, sampler='ddim', steps=10, eta=0, x0Processing=processing)
            add(schedule=sched, objective=objective, sampler='dpmpp2m', steps=10, x0Processing=processing)
    add(schedule='linear', objective='eps', sampler='ddpm', steps=100, labels=[0, 2], guidance=1.5)
    add(schedule='linear', objective='x0', sampler='ddim', steps=10, eta=0.5, labels=[1, 2], guidance=2)
    add(schedule='cosine', objective='v', sampler='dpmpp2m', steps=10, labels=[2, 0], guidance=0)
    add(schedule='cosine', objective='eps', sampler='pc', steps=10, labels=[0, 1], guidance=-0.5, x0Processing='clip')
    add(schedule='linear', objective='v', sampler='pc', steps=20, correctorSteps=2, snr=0.3, variance='posterior')

    scheds = {k: make_sched(v) for k, v in SCHEDULES.items()}
    for case in cases:
        x = run_case(scheds[case['schedule']], case)
        assert torch.isfinite(x).all(), case['name']
        case['shape'] = SHAPE
        case['sum'] = float(x.double().sum())
        case['meanAbs'] = float(x.double().abs().mean())
        case['x'] = [float(v) for v in x.flatten()]

    timesteps = []
    for T, K in [(1000, 10), (1000, 50), (1000, 7), (1000, 1), (150, 7), (150, 20), (150, 50), (150, 149), (150, 150), (100, 3), (7, 7), (10, 4)]:
        for spacing, f in SPACING.items():
            timesteps.append({'T': T, 'K': K, 'spacing': spacing, 'list': [int(t) for t in f(T, K)]})
        timesteps.append({'T': T, 'K': K, 'spacing': 'dpmpp2m', 'list': [int(t) for t in ts_dpm(T, K)]})

    meta = {'torch': torch.__version__, 'numpy': np.__version__, 'numClasses': NUM_CLASSES,
            'model': 'x0_hat = m + k_t (x - a m), m = 0.1 sin(t / T) + 0.3 (c . w), k_t = 0.25 a / (0.25 a^2 + s^2), w_k = (k + 1) / K - 0.5; eps = (x - a x0_hat) / s, v = a eps - s x0_hat'}
    OUT.write_text(json.dumps({'meta': meta, 'schedules': SCHEDULES, 'timesteps': timesteps, 'cases': cases}, separators=(',', ':')) + '\n')
    print(f'wrote {OUT} ({len(cases)} cases, {OUT.stat().st_size} bytes)')


if __name__ == '__main__':
    main()
