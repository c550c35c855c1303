#!/usr/bin/env python3
"""Writes test/fixtures/ops_golden.safetensors: PyTorch's forward values and gradients for every
op of ddpm-ts's tensor API, which test/ops.golden.test.ts replays through our libtorch addon.

Run from anywhere (deterministic: same torch, same bytes):
    /usr/bin/python3 tools/golden/make_op_fixtures.py

Layout of the file (names are '/'-separated):
    <case>/<f64|f32>/in/<name>   an input (float inputs cast to the case dtype; int/bool as is)
    <case>/<f64|f32>/out/<i>     the i-th output (bool/int outputs compare exactly)
    <case>/<f64|f32>/w/<i>       random weights for the i-th output, given only when it is
                                 differentiable; the loss is sum_i (out_i * w_i).sum()
    <case>/<f64|f32>/grad/<name> d loss / d input, for each differentiable input
    rng/<i>, init/<module>/<param>, optim/<name>/..., clip/<name>/...: see the sections below.
A case is named <op>.<variant>; the op part keys the tolerance table of the test.
`__metadata__` holds the torch version, the seed and, per case, the list of differentiable inputs.

Inputs are drawn in float64 from one seeded generator and then cast, so the f32 and f64 variants of
a case see the same values up to rounding. Shapes are tiny: the file stays well under 2 MB.
"""
import json
import math
import struct
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 20240601
OUT = Path(__file__).resolve().parents[2] / 'test' / 'fixtures' / 'ops_golden.safetensors'
DTYPES = {'f64': torch.float64, 'f32': torch.float32}
ST_DTYPE = {torch.float64: 'F64', torch.float32: 'F32', torch.int64: 'I64', torch.bool: 'BOOL'}

torch.set_num_threads(1)  # reductions then sum in one fixed order, as our single-threaded runs do
gen = torch.Generator().manual_seed(SEED)
tensors: dict = {}  # insertion order is file order


def put(name: str, t: torch.Tensor) -> None:
    assert name not in tensors, name
    assert t.dtype in ST_DTYPE, (name, t.dtype)
    tensors[name] = t.detach().clone().contiguous()


# ------------------------------------------------------------------ seeded inputs (float64)
def randn(*shape, scale=1.0):
    return torch.randn(shape, generator=gen, dtype=torch.float64) * scale


def uniform(lo, hi, *shape):
    return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64)


def positive(*shape):  # away from 0 for log, sqrt, rsqrt, pow, div
    return uniform(0.5, 2.0, *shape)


def away0(*shape):  # |x| >= 0.2 with random sign, for abs and divisors
    sign = torch.randint(0, 2, shape, generator=gen, dtype=torch.float64) * 2 - 1
    return sign * uniform(0.2, 1.5, *shape)


def ints(lo, hi, *shape):
    return torch.randint(lo, hi, shape, generator=gen, dtype=torch.int64)


def small_ints(*shape):  # integer-valued floats so comparisons see ties
    return torch.randint(0, 3, shape, generator=gen, dtype=torch.float64)


class D:
    """A differentiable float input."""
    def __init__(self, t):
        self.t = t


class C:
    """A constant input (float inputs are still cast to the case dtype)."""
    def __init__(self, t):
        self.t = t


CASES = []


def case(name, fn, **inputs):
    CASES.append((name, fn, inputs))


# ------------------------------------------------------------------ elementwise and broadcasting
case('add.tensor', lambda x, y: x + y, x=D(randn(2, 3, 4)), y=D(randn(3, 1)))
case('add.scalar', lambda x: x + 0.75, x=D(randn(2, 3)))
case('sub.tensor', lambda x, y: x - y, x=D(randn(2, 1, 4)), y=D(randn(3, 4)))
case('sub.scalar', lambda x: x - 1.5, x=D(randn(2, 3)))
case('sub.rscalar', lambda x: 2 - x, x=D(randn(2, 3)))
case('mul.tensor', lambda x, y: x * y, x=D(randn(2, 3, 4)), y=D(randn(4)))
case('mul.scalar', lambda x: x * -1.25, x=D(randn(2, 3)))
case('div.tensor', lambda x, y: x / y, x=D(randn(2, 3)), y=D(away0(2, 1)))
case('div.scalar', lambda x: x / 3, x=D(randn(2, 3)))
case('pow.tensor', lambda x, y: x ** y, x=D(positive(2, 3)), y=D(randn(3)))
case('pow.square', lambda x: x ** 2, x=D(randn(2, 3)))
case('pow.frac', lambda x: x ** 1.5, x=D(positive(2, 3)))
case('neg', lambda x: -x, x=D(randn(2, 3)))
case('exp', torch.exp, x=D(randn(2, 3)))
case('log', torch.log, x=D(positive(2, 3)))
case('sqrt', torch.sqrt, x=D(positive(2, 3)))
case('rsqrt', torch.rsqrt, x=D(positive(2, 3)))
case('abs', torch.abs, x=D(away0(2, 3)))
case('square', torch.square, x=D(randn(2, 3)))
case('reciprocal', torch.reciprocal, x=D(away0(2, 3)))
case('sin', torch.sin, x=D(randn(2, 3)))
case('cos', torch.cos, x=D(randn(2, 3)))
case('maximum', torch.maximum, x=D(randn(2, 3)), y=D(randn(3)))
case('minimum', torch.minimum, x=D(randn(2, 3)), y=D(randn(3)))
case('clamp.both', lambda x: x.clamp(-0.5, 0.7), x=D(randn(3, 4)))
case('clamp.min', lambda x: x.clamp(min=0.0), x=D(randn(3, 4)))
case('clamp.max', lambda x: x.clamp(max=0.3), x=D(randn(3, 4)))
case('where', torch.where, cond=C(ints(0, 2, 2, 3, 4).bool()), x=D(randn(2, 3, 4)), y=D(randn(4)))
for cmp in ('eq', 'ne', 'lt', 'le', 'gt', 'ge'):
    fn = getattr(torch, cmp)
    case(f'{cmp}.tensor', fn, x=C(small_ints(2, 3, 4)), y=C(small_ints(3, 1)))
    case(f'{cmp}.scalar', lambda x, fn=fn: fn(x, 1), x=C(small_ints(2, 5)))

# ------------------------------------------------------------------ reductions
case('sum.all', lambda x: x.sum(), x=D(randn(2, 3, 4)))
case('sum.dim', lambda x: x.sum(1), x=D(randn(2, 3, 4)))
case('sum.negdim', lambda x: x.sum(-1), x=D(randn(2, 3, 4)))
case('sum.dims_keepdim', lambda x: x.sum([0, 2], keepdim=True), x=D(randn(2, 3, 4)))
case('mean.all', lambda x: x.mean(), x=D(randn(2, 3, 4)))
case('mean.dim_keepdim', lambda x: x.mean(1, keepdim=True), x=D(randn(2, 3, 4)))
case('mean.dims', lambda x: x.mean([1, 2]), x=D(randn(2, 3, 4)))
case('var.all', lambda x: x.var(), x=D(randn(2, 3, 4)))
case('var.dim', lambda x: x.var(1), x=D(randn(2, 3, 4)))
case('var.dims_keepdim_biased', lambda x: x.var([0, 2], unbiased=False, keepdim=True), x=D(randn(2, 3, 4)))
case('max.all', lambda x: x.max(), x=D(randn(2, 3, 4)))
case('max.dim', lambda x: tuple(x.max(1)), x=D(randn(2, 3, 4)))
case('max.dim_keepdim', lambda x: tuple(x.max(-1, keepdim=True)), x=D(randn(2, 3, 4)))
case('min.dim', lambda x: tuple(x.min(0)), x=D(randn(2, 3, 4)))
case('argmax.all', lambda x: x.argmax(), x=C(randn(2, 3, 4)))
case('argmax.dim', lambda x: x.argmax(1), x=C(randn(2, 3, 4)))
case('argmax.dim_keepdim', lambda x: x.argmax(0, keepdim=True), x=C(randn(2, 3, 4)))
case('norm', lambda x: x.norm(), x=D(randn(3, 4)))
case('cumsum', lambda x: x.cumsum(1), x=D(randn(2, 5)))

# ------------------------------------------------------------------ linear algebra, convolutions
case('matmul.2d', torch.matmul, x=D(randn(3, 4)), y=D(randn(4, 5)))
case('matmul.batched_broadcast', torch.matmul, x=D(randn(2, 1, 3, 4)), y=D(randn(3, 4, 2)))
case('matmul.vec', torch.matmul, x=D(randn(3, 4)), y=D(randn(4)))
case('linear.bias', F.linear, x=D(randn(2, 3, 4)), weight=D(randn(5, 4)), bias=D(randn(5)))
case('linear.nobias', F.linear, x=D(randn(3, 4)), weight=D(randn(2, 4)))

case('conv2d.basic', F.conv2d, x=D(randn(2, 3, 6, 6)), weight=D(randn(4, 3, 3, 3, scale=0.3)), bias=D(randn(4)))
case('conv2d.stride_pad', lambda x, weight, bias: F.conv2d(x, weight, bias, stride=2, padding=1),
     x=D(randn(2, 3, 7, 7)), weight=D(randn(4, 3, 3, 3, scale=0.3)), bias=D(randn(4)))
case('conv2d.dilation', lambda x, weight: F.conv2d(x, weight, None, padding=2, dilation=2),
     x=D(randn(1, 2, 6, 6)), weight=D(randn(3, 2, 3, 3, scale=0.3)))
case('conv2d.asym', lambda x, weight, bias: F.conv2d(x, weight, bias, stride=(1, 2), padding=(2, 1), dilation=(2, 1)),
     x=D(randn(2, 2, 6, 7)), weight=D(randn(3, 2, 3, 2, scale=0.3)), bias=D(randn(3)))
case('conv2d.groups', lambda x, weight, bias: F.conv2d(x, weight, bias, padding=1, groups=2),
     x=D(randn(2, 4, 5, 5)), weight=D(randn(6, 2, 3, 3, scale=0.3)), bias=D(randn(6)))
case('conv2d.depthwise', lambda x, weight: F.conv2d(x, weight, None, padding=1, groups=3),
     x=D(randn(1, 3, 5, 5)), weight=D(randn(3, 1, 3, 3, scale=0.3)))

case('convTranspose2d.basic', F.conv_transpose2d, x=D(randn(2, 3, 4, 4)), weight=D(randn(3, 2, 3, 3, scale=0.3)), bias=D(randn(2)))
case('convTranspose2d.stride_pad_outpad',
     lambda x, weight, bias: F.conv_transpose2d(x, weight, bias, stride=2, padding=1, output_padding=1),
     x=D(randn(2, 4, 3, 3)), weight=D(randn(4, 2, 3, 3, scale=0.3)), bias=D(randn(2)))
case('convTranspose2d.groups', lambda x, weight: F.conv_transpose2d(x, weight, None, stride=2, groups=2),
     x=D(randn(2, 4, 3, 3)), weight=D(randn(4, 3, 3, 3, scale=0.3)))
case('convTranspose2d.dilation',
     lambda x, weight, bias: F.conv_transpose2d(x, weight, bias, stride=2, padding=(1, 0), output_padding=(1, 0), dilation=(2, 1)),
     x=D(randn(1, 2, 3, 4)), weight=D(randn(2, 3, 3, 2, scale=0.3)), bias=D(randn(3)))

# ------------------------------------------------------------------ pooling
case('maxPool2d.k2', lambda x: F.max_pool2d(x, 2), x=D(randn(2, 3, 6, 6)))
case('maxPool2d.k3s2p1', lambda x: F.max_pool2d(x, 3, stride=2, padding=1), x=D(randn(1, 2, 7, 7)))
case('maxPool2d.ceil', lambda x: F.max_pool2d(x, 2, stride=2, ceil_mode=True), x=D(randn(1, 2, 5, 5)))
case('maxPool2d.dilation', lambda x: F.max_pool2d(x, 2, stride=1, dilation=2), x=D(randn(1, 2, 6, 6)))
case('avgPool2d.k2', lambda x: F.avg_pool2d(x, 2), x=D(randn(2, 3, 6, 6)))
case('avgPool2d.k3s2p1', lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), x=D(randn(1, 2, 7, 7)))
case('avgPool2d.exclude_pad', lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False), x=D(randn(1, 2, 7, 7)))
case('avgPool2d.ceil', lambda x: F.avg_pool2d(x, 2, stride=2, ceil_mode=True), x=D(randn(1, 2, 5, 5)))
case('adaptiveAvgPool2d.divisible', lambda x: F.adaptive_avg_pool2d(x, 3), x=D(randn(2, 2, 6, 6)))
case('adaptiveAvgPool2d.uneven', lambda x: F.adaptive_avg_pool2d(x, (3, 2)), x=D(randn(1, 2, 7, 5)))
case('adaptiveAvgPool2d.global', lambda x: F.adaptive_avg_pool2d(x, 1), x=D(randn(2, 3, 4, 5)))

# ------------------------------------------------------------------ normalisation
# Training-mode batch norm updates the running stats in place: they are outputs 1 and 2.
case('batchNorm.train',
     lambda x, rm, rv, weight, bias: (F.batch_norm(x, rm, rv, weight, bias, training=True, momentum=0.1, eps=1e-5), rm, rv),
     x=D(randn(4, 3, 3, 3)), rm=C(randn(3, scale=0.1)), rv=C(positive(3)), weight=D(positive(3)), bias=D(randn(3)))
case('batchNorm.train_noaffine',
     lambda x, rm, rv: (F.batch_norm(x, rm, rv, None, None, training=True, momentum=0.3, eps=1e-3), rm, rv),
     x=D(randn(3, 2, 4, 2)), rm=C(randn(2, scale=0.1)), rv=C(positive(2)))
case('batchNorm.eval',
     lambda x, rm, rv, weight, bias: F.batch_norm(x, rm, rv, weight, bias, training=False, eps=1e-5),
     x=D(randn(2, 3, 3, 3)), rm=C(randn(3, scale=0.5)), rv=C(positive(3)), weight=D(positive(3)), bias=D(randn(3)))
case('groupNorm.affine', lambda x, weight, bias: F.group_norm(x, 3, weight, bias, eps=1e-5),
     x=D(randn(2, 6, 3, 3)), weight=D(positive(6)), bias=D(randn(6)))
case('groupNorm.noaffine_3d', lambda x: F.group_norm(x, 2, None, None, eps=1e-3), x=D(randn(2, 4, 5)))
case('layerNorm.last', lambda x, weight, bias: F.layer_norm(x, [5], weight, bias, eps=1e-5),
     x=D(randn(2, 3, 5)), weight=D(positive(5)), bias=D(randn(5)))
case('layerNorm.last2', lambda x, weight, bias: F.layer_norm(x, [3, 4], weight, bias, eps=1e-3),
     x=D(randn(2, 3, 4)), weight=D(positive(3, 4)), bias=D(randn(3, 4)))
case('layerNorm.noaffine', lambda x: F.layer_norm(x, [4]), x=D(randn(3, 4)))

# ------------------------------------------------------------------ activations
case('relu', torch.relu, x=D(randn(3, 4)))
case('gelu.exact', F.gelu, x=D(randn(3, 4)))
case('gelu.tanh', lambda x: F.gelu(x, approximate='tanh'), x=D(randn(3, 4)))
case('silu', F.silu, x=D(randn(3, 4)))
case('sigmoid', torch.sigmoid, x=D(randn(3, 4)))
case('tanh', torch.tanh, x=D(randn(3, 4)))
case('softmax.dim1', lambda x: torch.softmax(x, 1), x=D(randn(2, 3, 4)))
case('softmax.last', lambda x: torch.softmax(x, -1), x=D(randn(2, 3, 4)))
case('logSoftmax.dim1', lambda x: torch.log_softmax(x, 1), x=D(randn(2, 3, 4)))
case('logSoftmax.last', lambda x: torch.log_softmax(x, -1), x=D(randn(2, 3, 4)))

# ------------------------------------------------------------------ resampling
case('interpolate.nearest_up', lambda x: F.interpolate(x, size=(6, 8), mode='nearest'), x=D(randn(1, 2, 3, 4)))
case('interpolate.nearest_down', lambda x: F.interpolate(x, size=(3, 4), mode='nearest'), x=D(randn(1, 2, 7, 6)))
case('interpolate.bilinear_up', lambda x: F.interpolate(x, size=(5, 7), mode='bilinear', align_corners=False), x=D(randn(1, 2, 3, 4)))
case('interpolate.bilinear_align', lambda x: F.interpolate(x, size=(5, 7), mode='bilinear', align_corners=True), x=D(randn(1, 2, 3, 4)))
case('interpolate.bilinear_down', lambda x: F.interpolate(x, size=(3, 5), mode='bilinear', align_corners=False), x=D(randn(1, 2, 8, 8)))
case('interpolate.antialias_down', lambda x: F.interpolate(x, size=(4, 3), mode='bilinear', align_corners=False, antialias=True),
     x=D(randn(2, 2, 9, 8)))
case('interpolate.antialias_up', lambda x: F.interpolate(x, size=(5, 6), mode='bilinear', align_corners=False, antialias=True),
     x=D(randn(1, 1, 3, 4)))

# ------------------------------------------------------------------ shapes and indexing
case('reshape', lambda x: x.reshape(4, -1), x=D(randn(2, 3, 4)))
case('permute', lambda x: x.permute(2, 0, 1), x=D(randn(2, 3, 4)))
case('transpose', lambda x: x.transpose(-1, 0), x=D(randn(2, 3, 4)))
case('flatten.all', lambda x: x.flatten(), x=D(randn(2, 3, 2, 2)))
case('flatten.range', lambda x: x.flatten(1, 2), x=D(randn(2, 3, 2, 2)))
case('squeeze.all', lambda x: x.squeeze(), x=D(randn(2, 1, 3, 1)))
case('squeeze.dim', lambda x: x.squeeze(1), x=D(randn(2, 1, 3, 1)))
case('unsqueeze.dim', lambda x: x.unsqueeze(1), x=D(randn(2, 3)))
case('unsqueeze.neg', lambda x: x.unsqueeze(-1), x=D(randn(2, 3)))
case('cat.dim0', lambda a, b: torch.cat([a, b], 0), a=D(randn(2, 3)), b=D(randn(1, 3)))
case('cat.last', lambda a, b, c: torch.cat([a, b, c], -1), a=D(randn(2, 2, 1)), b=D(randn(2, 2, 3)), c=D(randn(2, 2, 2)))
case('stack.dim0', lambda a, b: torch.stack([a, b], 0), a=D(randn(2, 3)), b=D(randn(2, 3)))
case('stack.last', lambda a, b, c: torch.stack([a, b, c], 2), a=D(randn(2, 3)), b=D(randn(2, 3)), c=D(randn(2, 3)))
case('chunk.uneven', lambda x: tuple(x.chunk(3, 0)), x=D(randn(5, 4)))
case('chunk.dim1', lambda x: tuple(x.chunk(2, 1)), x=D(randn(3, 4)))
case('split', lambda x: tuple(x.split([1, 3, 2], 0)), x=D(randn(6, 3)))
case('narrow', lambda x: x.narrow(1, 1, 3), x=D(randn(4, 5)))
case('select', lambda x: x.select(1, -1), x=D(randn(3, 4, 2)))
case('indexSelect', lambda x, index: x.index_select(0, index), x=D(randn(5, 3)), index=C(torch.tensor([4, 0, 2, 2])))
case('gather', lambda x, index: x.gather(1, index), x=D(randn(3, 4)), index=C(ints(0, 4, 3, 5)))
case('expand', lambda x: x.expand(2, 3, 4), x=D(randn(3, 1)))
case('expand.infer', lambda x: x.expand(2, -1, 4), x=D(randn(1, 3, 1)))
case('repeat', lambda x: x.repeat(2, 1, 3), x=D(randn(2, 2)))
case('flip', lambda x: x.flip([0, 2]), x=D(randn(2, 3, 4)))
case('pad.constant', lambda x: F.pad(x, [1, 2, 0, 1], value=0.5), x=D(randn(1, 2, 3, 4)))
case('pad.constant_last', lambda x: F.pad(x, [2, 1]), x=D(randn(2, 3)))
case('pad.reflect', lambda x: F.pad(x, [1, 2, 2, 1], mode='reflect'), x=D(randn(1, 2, 4, 5)))
case('pad.replicate', lambda x: F.pad(x, [2, 0, 1, 1], mode='replicate'), x=D(randn(1, 2, 3, 4)))
case('pixelShuffle', lambda x: F.pixel_shuffle(x, 2), x=D(randn(1, 8, 2, 3)))
case('pixelUnshuffle', lambda x: F.pixel_unshuffle(x, 2), x=D(randn(1, 2, 4, 6)))
case('embedding', lambda weight, index: F.embedding(index, weight), weight=D(randn(7, 3)), index=C(torch.tensor([[1, 3, 3, 6], [0, 1, 6, 2]])))

# ------------------------------------------------------------------ losses
case('mseLoss.mean', F.mse_loss, input=D(randn(3, 4)), target=D(randn(3, 4)))
case('mseLoss.sum', lambda input, target: F.mse_loss(input, target, reduction='sum'), input=D(randn(2, 5)), target=D(randn(2, 5)))
case('mseLoss.none', lambda input, target: F.mse_loss(input, target, reduction='none'), input=D(randn(2, 3)), target=D(randn(2, 3)))
case('crossEntropy.mean', F.cross_entropy, logits=D(randn(5, 4)), target=C(ints(0, 4, 5)))
case('crossEntropy.sum_smooth', lambda logits, target: F.cross_entropy(logits, target, reduction='sum', label_smoothing=0.1),
     logits=D(randn(5, 4)), target=C(ints(0, 4, 5)))
case('crossEntropy.ignore', lambda logits, target: F.cross_entropy(logits, target, ignore_index=1),
     logits=D(randn(6, 3)), target=C(torch.tensor([0, 1, 2, 1, 2, 0])))
case('crossEntropy.none', lambda logits, target: F.cross_entropy(logits, target, reduction='none'),
     logits=D(randn(4, 3)), target=C(ints(0, 3, 4)))


# ------------------------------------------------------------------ attention: the explicit formula
def attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + mask
    return torch.softmax(scores, dim=-1) @ v


causal = torch.zeros(3, 5, dtype=torch.float64).masked_fill(torch.ones(3, 5).triu(3).bool(), float('-inf'))
case('sdpa.nomask', attention, q=D(randn(2, 3, 4)), k=D(randn(2, 5, 4)), v=D(randn(2, 5, 6)))
case('sdpa.heads_d5', attention, q=D(randn(2, 2, 3, 5)), k=D(randn(2, 2, 4, 5)), v=D(randn(2, 2, 4, 3)))
case('sdpa.mask', attention, q=D(randn(2, 3, 4)), k=D(randn(2, 5, 4)), v=D(randn(2, 5, 2)), mask=C(causal))


# ------------------------------------------------------------------ run the cases
def run_cases():
    weights = {}  # (case, i) -> float64 w, shared by both dtypes
    grads_of = {}
    for name, fn, inputs in CASES:
        grads_of[name] = [k for k, s in inputs.items() if isinstance(s, D)]
        for dk, dt in DTYPES.items():
            args = {}
            for k, spec in inputs.items():
                t = spec.t.clone()
                if t.is_floating_point():
                    t = t.to(dt)
                if isinstance(spec, D):
                    t.requires_grad_(True)
                put(f'{name}/{dk}/in/{k}', t)  # before the call: batch norm mutates its running stats
                args[k] = t
            out = fn(*args.values())  # positional, in the order the inputs were declared
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            loss = None
            for i, o in enumerate(outs):
                put(f'{name}/{dk}/out/{i}', o)
                if o.requires_grad:
                    if (name, i) not in weights:
                        weights[(name, i)] = randn(*o.shape)
                    w = weights[(name, i)].to(dt)
                    put(f'{name}/{dk}/w/{i}', w)
                    term = (o * w).sum()
                    loss = term if loss is None else loss + term
            if loss is not None:
                loss.backward()
            for k in grads_of[name]:
                g = args[k].grad
                put(f'{name}/{dk}/grad/{k}', g if g is not None else torch.zeros_like(args[k]))
    return grads_of


# ------------------------------------------------------------------ random numbers: bit-equal draws
def rng():
    g = torch.Generator().manual_seed(1234)
    draws = [
        ('randn', torch.randn((3, 5), generator=g, dtype=torch.float32)),  # < 16 elements: scalar path
        ('randn', torch.randn((40,), generator=g, dtype=torch.float32)),   # >= 16: vectorised path
        ('randn', torch.randn((2, 10), generator=g, dtype=torch.float64)),
        ('rand', torch.rand((7,), generator=g, dtype=torch.float32)),
        ('rand', torch.rand((3, 9), generator=g, dtype=torch.float64)),
        ('randint', torch.randint(0, 10, (12,), generator=g)),
        ('randint', torch.randint(-5, 5, (3, 4), generator=g)),
        ('randperm', torch.randperm(10, generator=g)),
        ('randperm', torch.randperm(37, generator=g)),
        ('randn', torch.randn((17,), generator=g, dtype=torch.float32)),  # after the others: state carried
    ]
    for i, (kind, t) in enumerate(draws):
        put(f'rng/{i}/{kind}', t)


# ------------------------------------------------------------------ nn init after torch.manual_seed(0)
def init():
    torch.manual_seed(0)
    modules = [
        ('linear', nn.Linear(5, 3)),
        ('conv2d', nn.Conv2d(2, 4, 3)),
        ('convTranspose2d', nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)),
        ('embedding', nn.Embedding(7, 3)),
    ]
    for mname, m in modules:
        for pname, p in m.named_parameters():
            put(f'init/{mname}/{pname}', p)


# ------------------------------------------------------------------ optimizers and gradient clipping
OPTIMIZERS = {
    'adam': (torch.optim.Adam, dict(lr=0.01)),
    'adam_wd': (torch.optim.Adam, dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05)),
    'adamw': (torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
}


def optim():
    p0 = randn(3, 4)
    grads = [randn(3, 4) for _ in range(5)]
    for dk, dt in DTYPES.items():
        put(f'optim/{dk}/param0', p0.to(dt))
        for s, g in enumerate(grads):
            put(f'optim/{dk}/grad/{s}', g.to(dt))
        for oname, (cls, kw) in OPTIMIZERS.items():
            p = nn.Parameter(p0.to(dt).clone())
            opt = cls([p], foreach=False, **kw)  # the single-tensor loop, which ours follows
            for s, g in enumerate(grads):
                p.grad = g.to(dt).clone()
                opt.step()
                st = opt.state[p]
                put(f'optim/{dk}/{oname}/{s}/param', p)
                put(f'optim/{dk}/{oname}/{s}/exp_avg', st['exp_avg'])
                put(f'optim/{dk}/{oname}/{s}/exp_avg_sq', st['exp_avg_sq'])


def clip():
    ga, gb = randn(3, 4), randn(5)
    for dk, dt in DTYPES.items():
        for cname, max_norm in (('clipped', 0.5), ('unclipped', 100.0)):
            a = nn.Parameter(torch.zeros(3, 4, dtype=dt))
            b = nn.Parameter(torch.zeros(5, dtype=dt))
            a.grad, b.grad = ga.to(dt).clone(), gb.to(dt).clone()
            put(f'clip/{dk}/{cname}/grad_in/a', a.grad)
            put(f'clip/{dk}/{cname}/grad_in/b', b.grad)
            total = nn.utils.clip_grad_norm_([a, b], max_norm)
            put(f'clip/{dk}/{cname}/total_norm', total.reshape(1))
            put(f'clip/{dk}/{cname}/grad_out/a', a.grad)
            put(f'clip/{dk}/{cname}/grad_out/b', b.grad)


# ------------------------------------------------------------------ safetensors, written by hand
def write_safetensors(path: Path, named: dict, metadata: dict) -> int:
    header = {'__metadata__': metadata}
    blobs = []
    offset = 0
    for name, t in named.items():
        raw = t.numpy().tobytes() if t.dtype != torch.bool else t.to(torch.uint8).numpy().tobytes()
        header[name] = {'dtype': ST_DTYPE[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-len(text) % 8)  # data starts 8-aligned
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    return 8 + len(text) + offset


def main():
    grads_of = run_cases()
    rng()
    init()
    optim()
    clip()
    metadata = {
        'torch_version': torch.__version__,
        'seed': str(SEED),
        'generator': 'tools/golden/make_op_fixtures.py',
        'cases': json.dumps(grads_of, separators=(',', ':')),
    }
    size = write_safetensors(OUT, tensors, metadata)
    print(f'wrote {OUT} ({size} bytes, {len(tensors)} tensors, {len(CASES)} cases, torch {torch.__version__})')
    if size >= 2 * 1024 * 1024:
        sys.exit('fixture is over 2 MB: shrink the shapes')


if __name__ == '__main__':
    main()
