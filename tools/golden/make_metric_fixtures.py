#!/usr/bin/env python3
"""Writes test/fixtures/metrics_golden.safetensors: fixed feature arrays and the FID, KID,
precision/recall and Inception-Score values that numpy alone computes for them, which
test/metrics.test.ts checks src/eval against (1e-6 relative).

Run from anywhere (deterministic: same numpy, same bytes):
    /usr/bin/python3 tools/golden/make_metric_fixtures.py

Independent of src/eval: numpy only. scipy is not installed here, so pytorch-fid's
scipy.linalg.sqrtm(S1 @ S2) is replaced by two numpy computations of tr sqrt(S1 S2) that must agree:
  1. the eigenvalues of the non-symmetric product S1 S2 (np.linalg.eigvals), whose square roots sum to
     the trace of its principal square root (S1 S2 is similar to a PSD matrix, so they are real, >= 0);
  2. the symmetric form tr sqrt(sqrt(S1) S2 sqrt(S1)) with np.linalg.eigh.
The fixture records form 2 (the better conditioned); the script asserts form 1 agrees to 1e-9
(1e-7 for the rank-deficient case, where eigvals' +-1e-16 zero eigenvalues have square roots of 1e-8).
KID follows clean-fid's kernel_distance line for line, with its random subset draws replaced by
index lists stored in the fixture; precision/recall follows Kynkaanniemi et al.'s reference code
(np.partition for the k-th neighbour, '<=' for ball membership); the Inception Score follows
openai/improved-gan's inception_score.py (consecutive splits, exp of the mean KL).

Layout (names '/'-separated, float64 unless noted):
    feat/a (400, 32), feat/b (300, 32), feat/c (20, 32)   feature sets
    kid/<i>/x, kid/<i>/y                                   int64 row indices of subset i of a and b
    is/p250 (250, 10), is/p253 (253, 10)                  class probabilities
`__metadata__.expected` is JSON with every expected number.
"""
import json
import struct
from pathlib import Path

import numpy as np

SEED = 20240605
OUT = Path(__file__).resolve().parents[2] / 'test' / 'fixtures' / 'metrics_golden.safetensors'
rng = np.random.default_rng(SEED)
D = 32


def features(n, shift, mix):
    """ReLU features of correlated Gaussians, like a network's penultimate layer."""
    z = rng.standard_normal((n, D))
    return np.maximum(z @ mix + shift, 0.0)


mix_a = rng.standard_normal((D, D)) / np.sqrt(D)
mix_b = mix_a + 0.15 * rng.standard_normal((D, D)) / np.sqrt(D)
a = features(400, 0.2, mix_a)
b = features(300, 0.35, mix_b)
c = features(20, 0.1, mix_b)  # fewer rows than dims: a rank-deficient covariance


# ------------------------------------------------------------------ FID
def stats(f):
    return f.mean(axis=0), np.cov(f, rowvar=False)  # ddof 1, as pytorch-fid


def psd_sqrt(s):
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def fid(f1, f2):
    mu1, s1 = stats(f1)
    mu2, s2 = stats(f2)
    r1 = psd_sqrt(s1)
    m = r1 @ s2 @ r1
    tr_sym = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    ev = np.linalg.eigvals(s1 @ s2)
    tr_gen = np.sqrt(np.clip(ev.real, 0, None)).sum()
    assert abs(ev.imag).max() <= 1e-8 * abs(ev).max(), 'S1 S2 should have real eigenvalues'
    # With fewer rows than dims, S1 S2 has zero eigenvalues that eigvals returns as +-1e-16, and
    # sqrt turns those into 1e-8: the general form then only agrees to about 1e-8 relative.
    full_rank = min(len(f1), len(f2)) > D
    assert abs(tr_sym - tr_gen) <= (1e-9 if full_rank else 1e-7) * max(1.0, tr_sym), (tr_sym, tr_gen)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_sym)


# ------------------------------------------------------------------ KID (clean-fid kernel_distance, subsets given)
def kid_subsets(feats1, feats2, subsets):
    n = feats1.shape[1]
    values = []
    for ix, iy in subsets:
        m = len(ix)
        x = feats1[ix]
        y = feats2[iy]
        a_ = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b_ = (x @ y.T / n + 1) ** 3
        t = (a_.sum() - np.diag(a_).sum()) / (m - 1) - b_.sum() * 2 / m
        values.append(t / m)
    values = np.array(values)
    return float(values.mean()), float(values.std())


kid_draws = [(rng.choice(400, 100, replace=False), rng.choice(300, 100, replace=False)) for _ in range(5)]


# ------------------------------------------------------------------ precision / recall (Kynkaanniemi et al. 2019)
def dists(x, y):
    return np.sqrt(np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T, 0))


def radii(f, k):
    d = dists(f, f)
    np.fill_diagonal(d, 0.0)
    return np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself


def in_manifold(query, ref, k):
    r = radii(ref, k)
    return float((dists(query, ref) <= r[None, :]).any(axis=1).mean())


def precision_recall(real, fake, k=5):
    return in_manifold(fake, real, k), in_manifold(real, fake, k)


# ------------------------------------------------------------------ Inception Score (openai/improved-gan)
def inception_score(p, splits=10):
    scores = []
    n = p.shape[0]
    for k in range(splits):
        part = p[(k * n // splits):((k + 1) * n // splits), :]
        py = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part) - np.log(py))).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def softmax_rows(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# Confident rows with an uneven class mix, so the score is well inside (1, 10).
p250 = softmax_rows(3.0 * rng.standard_normal((250, 10)) + np.linspace(0, 1.5, 10))
p253 = softmax_rows(1.0 * rng.standard_normal((253, 10)))

expected = {
    'fid': {'a_b': fid(a, b), 'b_a': fid(b, a), 'a_c': fid(a, c), 'a_a': fid(a, a)},
    'kid_subsets': dict(zip(('mean', 'std'), kid_subsets(a, b, kid_draws))),
    'kid_all_pairs': kid_subsets(a[:300], b, [(np.arange(300), np.arange(300))])[0],
    'pr': {
        'a_b': dict(zip(('precision', 'recall'), precision_recall(a, b))),
        'a_a300': dict(zip(('precision', 'recall'), precision_recall(a, np.concatenate([a[:150], b[:150]])))),
    },
    'is': {'p250': dict(zip(('mean', 'std'), inception_score(p250))), 'p253': dict(zip(('mean', 'std'), inception_score(p253)))},
}
assert 0 < expected['pr']['a_b']['precision'] < 1 and 0 < expected['pr']['a_b']['recall'] < 1, expected['pr']

tensors = {'feat/a': a, 'feat/b': b, 'feat/c': c, 'is/p250': p250, 'is/p253': p253}
for i, (ix, iy) in enumerate(kid_draws):
    tensors[f'kid/{i}/x'] = ix.astype(np.int64)
    tensors[f'kid/{i}/y'] = iy.astype(np.int64)


def write_safetensors(path, named, metadata):
    header = {'__metadata__': metadata}
    blobs = []
    offset = 0
    for name in sorted(named):
        arr = np.ascontiguousarray(named[name])
        dtype = {np.dtype('float64'): 'F64', np.dtype('int64'): 'I64'}[arr.dtype]
        blob = arr.astype(arr.dtype.newbyteorder('<')).tobytes()
        header[name] = {'dtype': dtype, 'shape': list(arr.shape), 'data_offsets': [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-len(text) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    return 8 + len(text) + offset


size = write_safetensors(OUT, tensors, {'expected': json.dumps(expected), 'seed': str(SEED), 'numpy': np.__version__})
print(f'wrote {OUT} ({size} bytes)')
print(json.dumps(expected, indent=1))
