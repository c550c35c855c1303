#!/usr/bin/env python3
"""PyTorch eager side of `npm run bench` for the `dli02` preset (seed 001's notebook model).

Times the same workloads the TypeScript benchmarks run, on the same libtorch kernels, so the
numbers compare engine overhead and nothing else. Model, schedule, loss and reverse step come
from tools/reference/dli02.py. Data is random, shaped like Fashion-MNIST at 16x16 in [-1, 1]:
speed does not depend on pixel values.

  --what train   the notebook's training step (model.train(), t ~ U{0..T-1}, get_loss, zero_grad,
                 backward, Adam lr 1e-3); a repeat times --steps steps; unit img/s
  --what sample  model.eval() + no_grad, the full 150-step reverse_q loop at --batch; a repeat is one
                 full loop (--steps shortens it for quick checks, scaled to the full loop's rate);
                 unit img/s
  --what stack   the U-Net's down-path convolutions as a plain Conv-BN-ReLU stack with a mean-square
                 loss; forward + backward + Adam step; unit img/s
  --what opcall  one torch.add on 1-element tensors; a repeat is --steps calls; unit us per call

Run (from the repo root; OpenBLAS's threading matters, see the README's Speed section):
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/pytorch_dli02.py --what train --threads 2
    /usr/bin/python3 bench/pytorch_dli02.py --what sample --threads 2
    /usr/bin/python3 bench/pytorch_dli02.py --what stack
    /usr/bin/python3 bench/pytorch_dli02.py --what opcall
Options: --threads N (torch.set_num_threads), --batch, --steps, --repeats, --warmup, --seed, and for
train and sample --variant subpixel-cl: the model with the two changes ddpm-ts makes for speed
(transposed convolutions as sub-pixel convolutions, channels-last weights), to show how much of
ddpm-ts's margin they are; `npm run bench` prints it beside the notebook's model.
Prints one JSON line on stdout; the median is over repeats (a 2-core machine is noisy: `other_cpu`
gives, per repeat, the share of the CPUs other processes used, so contaminated repeats show).
Defaults keep train, stack and opcall under about 60 s; `sample` does a single full loop (12-90 s
here at batch 500), so pass `--repeats 5` when the number matters.
Two settings dominate the numbers here (measured, 2 cores): OPENBLAS_NUM_THREADS=1 (2-3x faster
training, 1.1-1.8x faster sampling than OpenBLAS's default 2 threads) and glibc's malloc thresholds
(MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824: about 1.6-2x training, 2.5x stack
and 1.6-7x sampling, and much steadier; with the defaults glibc's adaptive mmap threshold makes
sampling swing between about 6 and 24 img/s from run to run). Compare engines under the same ones.
"""
import argparse
import json
import os
import re
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "reference"))
import dli02  # noqa: E402

# Per-workload defaults, chosen so each default run stays under about 60 s on the 2-core machine.
DEFAULTS = {
    "train": {"batch": 128, "steps": 20, "repeats": 7, "warmup": 3},
    "sample": {"batch": 500, "steps": dli02.T, "repeats": 1, "warmup": 2},  # one full loop took 12-90 s here
    "stack": {"batch": 128, "steps": 20, "repeats": 7, "warmup": 3},
    "opcall": {"batch": 1, "steps": 100_000, "repeats": 7, "warmup": 1000},
}


def blas_info():
    """The build's BLAS_INFO and the BLAS library actually mapped (Debian links the system BLAS)."""
    m = re.search(r"\bBLAS_INFO=[^,\s]*", torch.__config__.show())
    cfg = m.group(0) if m else None
    mapped = None
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
        mapped = sorted(libs)
    except OSError:
        pass
    return cfg, mapped


def busy_jiffies():
    """Busy CPU time of the whole machine in clock ticks (Linux /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(v) - v[3] - v[4]  # all but idle and iowait


def time_repeats(fn, repeats):
    """Seconds per call of fn, and the share of the machine's CPUs that other processes used meanwhile."""
    hz = os.sysconf("SC_CLK_TCK")
    ncpu = os.cpu_count() or 1
    seconds, other = [], []
    for _ in range(repeats):
        b0, c0 = busy_jiffies(), os.times()
        start = time.perf_counter()
        fn()
        wall = time.perf_counter() - start
        b1, c1 = busy_jiffies(), os.times()
        seconds.append(wall)
        if b0 is None or b1 is None:
            other.append(None)
        else:
            own = (c1.user + c1.system) - (c0.user + c0.system)
            other.append(round(max(0.0, ((b1 - b0) / hz - own) / (wall * ncpu)), 3))
    return seconds, other


class SubPixelConvTranspose2d(nn.Module):
    """Wraps a ConvTranspose2d (groups 1, no dilation) and computes it as ddpm-ts does: a convolution
    to stride^2 Cout channels plus a pixel shuffle (src/nn/sub-pixel.ts has the derivation)."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        c = self.conv
        w, b = c.weight, c.bias
        cin, cout = w.shape[0], w.shape[1]
        s, p, op, k = c.stride[0], c.padding[0], c.output_padding[0], c.kernel_size[0]
        # Per output phase r, the taps (input offset e, kernel index j); k stands for a zero tap.
        phases = [[((r + p) // s - n, (r + p) % s + s * n) for n in range(-(-(k - (r + p) % s) // s))] for r in range(s)]
        offsets = [e for taps in phases for e, _ in taps]
        e_min, size = min(offsets), max(offsets) - min(offsets) + 1
        idx = torch.tensor([dict(taps).get(e_min + q, k) for taps in phases for q in range(size)])
        w2 = F.pad(w.permute(1, 0, 2, 3), (0, 1, 0, 1)).index_select(2, idx).index_select(3, idx)
        w2 = w2.reshape(cout, cin, s, size, s, size).permute(0, 2, 4, 1, 3, 5).reshape(cout * s * s, cin, size, size)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            w2 = w2.contiguous(memory_format=torch.channels_last)
        n_in = x.shape[2]
        n_out = (n_in - 1) * s - 2 * p + k + op
        m = -(-n_out // s)
        before, after = -e_min, m - 1 + e_min + size - 1 - (n_in - 1)
        y = F.pixel_shuffle(F.conv2d(F.pad(x, (before, after, before, after)), w2, b.repeat_interleave(s * s)), s)
        return y[:, :, :n_out, :n_out]


def make_model(variant):
    """The notebook's UNet; with variant "subpixel-cl", the two changes ddpm-ts makes to it for speed:
    transposed convolutions computed sub-pixel and channels-last weights (same values to float rounding)."""
    model = dli02.UNet()
    if variant == "subpixel-cl":
        for up in (model.up1, model.up2):
            up.model[0] = SubPixelConvTranspose2d(up.model[0])
        model = model.to(memory_format=torch.channels_last)
    return model


def fake_images(n, gen):
    return torch.rand((n, dli02.IMG_CH, dli02.IMG_SIZE, dli02.IMG_SIZE), generator=gen) * 2 - 1  # (B, 1, 16, 16)


def bench_train(args, gen):
    model = make_model(args.variant)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    model.train()
    x = fake_images(args.batch, gen)

    def step():
        t = torch.randint(0, dli02.T, (args.batch,))
        optimizer.zero_grad()
        loss = dli02.get_loss(model, x, t)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()

    def repeat():
        for _ in range(args.steps):
            step()

    seconds, other = time_repeats(repeat, args.repeats)
    return [args.batch * args.steps / s for s in seconds], other, "img/s"


@torch.no_grad()
def reverse_loop(model, n, steps):
    x_t = torch.randn((n, dli02.IMG_CH, dli02.IMG_SIZE, dli02.IMG_SIZE))
    for i in range(0, dli02.T)[::-1][:steps]:
        t = torch.full((n,), i)
        e_t = model(x_t, t)
        x_t = dli02.reverse_q(x_t, t, e_t)
    return x_t


def bench_sample(args, gen):
    model = make_model(args.variant)
    model.eval()
    with torch.no_grad():
        for _ in range(args.warmup):  # warm-up counts model calls, not full loops
            model(torch.randn(args.batch, dli02.IMG_CH, dli02.IMG_SIZE, dli02.IMG_SIZE), torch.full((args.batch,), 1))
    seconds, other = time_repeats(lambda: reverse_loop(model, args.batch, args.steps), args.repeats)
    # a shortened loop (--steps < 150) is scaled to the full loop's rate
    return [args.batch * args.steps / dli02.T / s for s in seconds], other, "img/s"


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU()]


def bench_stack(args, gen):
    # The dli02 down path's convolution shapes at 16x16 -> 8x8, without the U-Net's wiring.
    model = nn.Sequential(
        *conv_bn_relu(1, 16),
        *conv_bn_relu(16, 32),
        *conv_bn_relu(32, 32),
        nn.MaxPool2d(2),
        *conv_bn_relu(32, 64),
        *conv_bn_relu(64, 64),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    model.train()
    x = fake_images(args.batch, gen)

    def step():
        optimizer.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()

    def repeat():
        for _ in range(args.steps):
            step()

    seconds, other = time_repeats(repeat, args.repeats)
    return [args.batch * args.steps / s for s in seconds], other, "img/s"


def bench_opcall(args, gen):
    a = torch.ones(1)
    b = torch.ones(1)
    add = torch.add
    for _ in range(args.warmup):
        add(a, b)
    def repeat():
        for _ in range(args.steps):
            add(a, b)

    seconds, other = time_repeats(repeat, args.repeats)
    return [s / args.steps * 1e6 for s in seconds], other, "us"


BENCHES = {"train": bench_train, "sample": bench_sample, "stack": bench_stack, "opcall": bench_opcall}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--what", choices=sorted(BENCHES), default="train")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--batch", type=int, help="images per step (train/stack 128, sample 500)")
    p.add_argument("--steps", type=int, help="train/stack: steps per repeat (20); sample: reverse steps per loop (150); opcall: calls per repeat (100000)")
    p.add_argument("--repeats", type=int, help="timed repeats; the median is reported (train/stack/opcall 7, sample 1: a full loop at batch 500 took 12-90 s here)")
    p.add_argument("--warmup", type=int, help="untimed steps first (train/stack 3 steps, sample 2 model calls, opcall 1000 calls)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", choices=["notebook", "subpixel-cl"], default="notebook",
                   help="train/sample: the notebook's model as written (default), or with ddpm-ts's two speed changes "
                        "(sub-pixel transposed convolutions, channels-last weights), for reference")
    args = p.parse_args()
    for k, v in DEFAULTS[args.what].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.what == "sample" and not 1 <= args.steps <= dli02.T:
        p.error(f"--steps for sample is the number of reverse steps, 1..{dli02.T}; got {args.steps}")

    load_before = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    per_repeat, other_cpu, unit = BENCHES[args.what](args, gen)
    blas, blas_lib = blas_info()
    result = {
        "engine": "pytorch",
        "torch": torch.__version__,
        "what": args.what,
        "variant": args.variant,
        "threads": args.threads,
        "batch": args.batch,
        "steps": args.steps,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "blas": blas,
        "blas_lib": blas_lib,
        # glibc returns large freed blocks to the OS below these thresholds: PyTorch ran 2-6x slower
        # here with the defaults (mmap/munmap and page faults for every big activation)
        "malloc": {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")},
        "per_repeat": [round(v, 3) for v in per_repeat],
        "median": round(statistics.median(per_repeat), 3),
        "unit": unit,
        # share of all CPUs used by other processes during each repeat (from /proc/stat)
        "other_cpu": other_cpu,
        # 1-minute load average before and after: other work on a 2-core machine skews the numbers
        "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
