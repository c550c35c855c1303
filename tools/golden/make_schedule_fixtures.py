#!/usr/bin/env python3
"""Golden values for every noise schedule, computed independently of ddpm-ts in float64 numpy
following the reference code: lucidrains/denoising-diffusion-pytorch (linear, cosine, sigmoid),
diffusers (scaled_linear, rescale_zero_terminal_snr) and Ho et al.'s derived terms.

Writes test/fixtures/schedules_golden.json: for each schedule, the terms at t = 0, T/2 and T-1.
Run: /usr/bin/python3 tools/golden/make_schedule_fixtures.py
"""
import json
import math
import os

import numpy as np


def linear(T, start, end):
    return np.linspace(start, end, T, dtype=np.float64)


def scaled_linear(T, start, end):
    return np.linspace(start ** 0.5, end ** 0.5, T, dtype=np.float64) ** 2


def cosine(T, s=0.008):
    steps = T + 1
    t = np.linspace(0, T, steps, dtype=np.float64) / T
    ac = np.cos((t + s) / (1 + s) * math.pi * 0.5) ** 2
    ac = ac / ac[0]
    return np.clip(1 - (ac[1:] / ac[:-1]), 0, 0.999)


def sigmoid(T, start=-3, end=3, tau=1):
    steps = T + 1
    t = np.linspace(0, T, steps, dtype=np.float64) / T
    sig = lambda x: 1 / (1 + np.exp(-x))
    v_start = sig(start / tau)
    v_end = sig(end / tau)
    ac = (-sig((t * (end - start) + start) / tau) + v_end) / (v_end - v_start)
    ac = ac / ac[0]
    return np.clip(1 - (ac[1:] / ac[:-1]), 0, 0.999)


def rescale_zero_terminal_snr(betas):
    alphas = 1.0 - betas
    alphas_bar_sqrt = np.sqrt(np.cumprod(alphas))
    a0 = alphas_bar_sqrt[0].copy()
    aT = alphas_bar_sqrt[-1].copy()
    alphas_bar_sqrt -= aT
    alphas_bar_sqrt *= a0 / (a0 - aT)
    alphas_bar = alphas_bar_sqrt ** 2
    alphas = np.concatenate([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]])
    return 1 - alphas


def terms(betas):
    with np.errstate(divide='ignore'):
        alphas = 1.0 - betas
        ac = np.cumprod(alphas)
        ac_prev = np.concatenate([[1.0], ac[:-1]])
        post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
        return {
            'beta': betas,
            'alphaBar': ac,
            'alphaBarPrev': ac_prev,
            'sqrtAlphaBar': np.sqrt(ac),
            'sqrtOneMinusAlphaBar': np.sqrt(1.0 - ac),
            'posteriorVariance': post_var,
            'posteriorLogVarianceClipped': np.log(np.concatenate([post_var[1:2], post_var[1:]])),
            'posteriorMeanCoef1': betas * np.sqrt(ac_prev) / (1.0 - ac),
            'posteriorMeanCoef2': (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
            'snr': ac / (1.0 - ac),
            'logSnr': np.log(ac) - np.log(1.0 - ac),
        }


CASES = [
    ({'kind': 'linear', 'T': 150, 'betaStart': 1e-4, 'betaEnd': 0.02}, linear(150, 1e-4, 0.02)),
    ({'kind': 'linear', 'T': 1000, 'betaStart': 1e-4, 'betaEnd': 0.02}, linear(1000, 1e-4, 0.02)),
    ({'kind': 'scaled-linear', 'T': 1000, 'betaStart': 0.00085, 'betaEnd': 0.012}, scaled_linear(1000, 0.00085, 0.012)),
    ({'kind': 'cosine', 'T': 1000, 's': 0.008}, cosine(1000)),
    ({'kind': 'cosine', 'T': 150, 's': 0.008}, cosine(150)),
    ({'kind': 'sigmoid', 'T': 1000, 'start': -3, 'end': 3, 'tau': 1}, sigmoid(1000)),
    ({'kind': 'sigmoid', 'T': 200, 'start': -3, 'end': 3, 'tau': 0.5}, sigmoid(200, tau=0.5)),
    ({'kind': 'custom', 'betas': [0.01, 0.02, 0.05, 0.1, 0.2]}, np.array([0.01, 0.02, 0.05, 0.1, 0.2])),
    ({'kind': 'linear', 'T': 1000, 'betaStart': 1e-4, 'betaEnd': 0.02, 'zeroTerminalSnr': True}, rescale_zero_terminal_snr(linear(1000, 1e-4, 0.02))),
    ({'kind': 'scaled-linear', 'T': 1000, 'betaStart': 0.00085, 'betaEnd': 0.012, 'zeroTerminalSnr': True}, rescale_zero_terminal_snr(scaled_linear(1000, 0.00085, 0.012))),
]


def num(v):
    v = float(v)
    if math.isinf(v):
        return 'Infinity' if v > 0 else '-Infinity'
    return v


def main():
    out = []
    for config, betas in CASES:
        T = len(betas)
        tt = terms(betas)
        at = sorted({0, T // 2, T - 1})
        out.append({'config': config, 't': at, 'terms': {k: [num(v[i]) for i in at] for k, v in tt.items()}})
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(root, 'test', 'fixtures', 'schedules_golden.json')
    with open(path, 'w') as f:
        json.dump({'generator': 'tools/golden/make_schedule_fixtures.py', 'numpy': np.__version__, 'cases': out}, f, indent=1)
    print('wrote', path)


if __name__ == '__main__':
    main()
