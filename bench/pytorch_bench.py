#!/usr/bin/env python3
"""PyTorch eager side of `npm run bench`: every preset's PyTorch twin (tools/reference/dli02.py,
dli03.py, ddpm_unet.py) timed on the workloads bench/workloads.ts runs in ddpm-ts, on the same
libtorch kernels, so the figures compare the engines and nothing else. Data is random, shaped like
the preset's images in [-1, 1]: speed does not depend on pixel values.

  --what train   one step of `ddpm train` for the preset: a shuffled batch with random horizontal
                 flips, t ~ U{0..T-1}, the preset's objective and loss weighting (dli02/dli03: eps,
                 simple MSE; ddpm: v, min-SNR-5), the class input dropped with p 0.1 when
                 conditional, zero_grad, backward, gradient clipping and EMA where the preset has
                 them (ddpm: clip 1, EMA 0.995), Adam lr 1e-3; a repeat is --steps steps; img/s
  --what sample  model.eval() + no_grad, the preset's default sampler over its full step list (dli02,
                 dli03: the notebook's DDPM loop, 150 steps; ddpm: DDIM eta 0, 50 trailing steps of
                 1000, v to x0 clipped to [-1, 1]), classifier-free guidance with the batch doubled
                 when --classes and --guidance are given; a repeat is one full loop (--steps
                 shortens it, scaled to the full loop's rate); img/s
  --what stack   dli02's down-path convolutions as a plain Conv-BN-ReLU stack; img/s
  --what opcall  one torch.add on 1-element tensors; us per call
  --what check   the full reverse process for --batch (4) images from the seeded weights and x_T,
                 printed, for bench/compare.ts to check against ddpm-ts's

    OPENBLAS_NUM_THREADS=1 MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 \\
      /usr/bin/python3 bench/pytorch_bench.py --preset ddpm --what sample --batch 64 --classes 10 --guidance 1.5

Prints one JSON line on stdout: img/s per repeat and their median, the peak resident memory of the
process (VmHWM, /proc/self/status, MB), and minor page faults per step (per training step, per
reverse step) during the timed repeats (getrusage). Two settings dominate the figures here:
OPENBLAS_NUM_THREADS=1 and glibc's malloc thresholds (above): compare engines under the same ones.
"""
import argparse
import json
import math
import os
import re
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "reference"))
import dli02  # noqa: E402
import dli03  # noqa: E402
import ddpm_unet  # noqa: E402
from models_golden import Dli02Cond  # noqa: E402

# What `ddpm train` / `ddpm sample` use for each preset (src/train/config.ts presetDefaults).
PRESETS = {
    "dli02": dict(size=16, T=150, schedule="linear", objective="eps", weighting="simple", clip=0, ema=0,
                  batch=128, sampler="ddpm", steps=150),
    "dli03": dict(size=16, T=150, schedule="linear", objective="eps", weighting="simple", clip=0, ema=0,
                  batch=128, sampler="ddpm", steps=150),
    "ddpm": dict(size=28, T=1000, schedule="cosine", objective="v", weighting="min-snr", clip=1.0, ema=0.995,
                 batch=128, sampler="ddim", steps=50),
}
COND_DROP = 0.1
MIN_SNR_GAMMA = 5


def make_model(preset, classes, variant):
    if preset == "dli02":
        model = Dli02Cond(c_embed_dim=classes) if classes else dli02.UNet()
        if variant == "subpixel-cl":
            for up in (model.up1, model.up2):
                up.model[0] = SubPixelConvTranspose2d(up.model[0])
            model = model.to(memory_format=torch.channels_last)
        return model
    if variant == "subpixel-cl":
        raise SystemExit(f"--variant {variant} is for dli02 only")
    model = dli03.UNet(c_embed_dim=classes) if preset == "dli03" else ddpm_unet.Unet(**{**ddpm_unet.DEFAULTS, "num_classes": classes})
    return model.to(memory_format=torch.channels_last) if variant == "channels-last" else model


def as_variant(x, variant):
    """The model's input in the variant's memory format (channels-last twins take NHWC inputs)."""
    return x.contiguous(memory_format=torch.channels_last) if variant == "channels-last" else x


def betas(p):
    """float64 betas as src/diffusion/schedule.ts computes them (linear 1e-4..0.02; Nichol & Dhariwal's cosine, s 0.008)."""
    T = p["T"]
    if p["schedule"] == "linear":
        return [1e-4 + (0.02 - 1e-4) * i / (T - 1) for i in range(T)]
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    return [min(max(1 - f((i + 1) / T) / f(i / T), 0), 0.999) for i in range(T)]


class Terms:
    def __init__(self, p):
        b = betas(p)
        self.beta = b
        self.ab = []
        acc = 1.0
        for x in b:
            acc *= 1 - x
            self.ab.append(acc)
        t = torch.tensor(self.ab, dtype=torch.float64)
        self.sqrt_ab = t.sqrt().float()
        self.sqrt_1mab = (1 - t).sqrt().float()
        snr = t / (1 - t)
        self.min_snr_v = (snr.clamp(max=MIN_SNR_GAMMA) / (snr + 1)).float()


def model_call(model, x, t, c):
    return model(x, t, c) if c is not None else model(x, t)


def train_bench(args, p, gen):
    model = make_model(args.preset, args.classes, args.variant)
    model.train()
    terms = Terms(p)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=args.foreach)
    ema = [q.detach().clone() for q in model.parameters()] if p["ema"] else None
    n = args.batch * 8  # an in-memory "dataset" of 8 batches, shuffled each epoch as DataLoader does
    data = torch.rand((n, 1, p["size"], p["size"]), generator=gen) * 2 - 1
    labels = torch.randint(0, 10, (n,), generator=gen)
    state = {"perm": torch.randperm(n), "pos": 0, "updates": 0}

    def step():
        if state["pos"] + args.batch > n:
            state["perm"], state["pos"] = torch.randperm(n), 0
        idx = state["perm"][state["pos"]:state["pos"] + args.batch]
        state["pos"] += args.batch
        x0 = data.index_select(0, idx)
        flip = torch.rand(args.batch) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)  # (B, 1, S, S)
        c = None
        if args.classes:
            keep = (torch.rand(args.batch) >= COND_DROP).float()
            c = F.one_hot(labels.index_select(0, idx), args.classes).float() * keep[:, None]  # (B, classes)
        t = torch.randint(0, p["T"], (args.batch,))
        noise = torch.randn_like(x0)
        a, s = terms.sqrt_ab[t][:, None, None, None], terms.sqrt_1mab[t][:, None, None, None]
        xt = a * x0 + s * noise
        target = noise if p["objective"] == "eps" else a * noise - s * x0  # v = a eps - s x0
        out = model_call(model, as_variant(xt, args.variant), t, c)
        if p["weighting"] == "simple":
            loss = F.mse_loss(out, target)
        else:
            loss = (F.mse_loss(out, target, reduction="none").mean((1, 2, 3)) * terms.min_snr_v[t]).mean()
        opt.zero_grad()
        loss.backward()
        loss.item()  # `ddpm train` logs every step's loss
        if p["clip"]:
            nn.utils.clip_grad_norm_(model.parameters(), p["clip"])
        opt.step()
        if ema is not None:
            d = min(p["ema"], (1 + state["updates"]) / (10 + state["updates"]))
            with torch.no_grad():
                torch._foreach_lerp_(ema, [q.detach() for q in model.parameters()], 1 - d) if hasattr(torch, "_foreach_lerp_") \
                    else [e.lerp_(q, 1 - d) for e, q in zip(ema, model.parameters())]
            state["updates"] += 1

    return time_steps(step, args)


def timesteps(p, k):
    T = p["T"]
    if p["sampler"] == "ddpm":
        return list(range(T - 1, -1, -1))[:k]
    full = [round_half_even(T - i * (T / p["steps"])) - 1 for i in range(p["steps"])]  # trailing spacing
    return full[:k]


def round_half_even(v):
    return round(v)  # Python's round is half to even, as numpy's


@torch.no_grad()
def reverse_process(model, p, terms, n, k, classes, w, gen, variant="notebook"):
    x = torch.randn((n, 1, p["size"], p["size"]), generator=gen)  # (N, 1, S, S)
    c = None
    if classes:
        c = F.one_hot(torch.arange(n) % classes, classes).float()  # (N, classes)
        if w:
            c = torch.cat([c, torch.zeros_like(c)])  # notebook 04: the batch doubled, its second half no class
    steps = timesteps(p, k)
    full = timesteps(p, p["steps"])
    for i, t in enumerate(steps):
        xin = torch.cat([x, x]) if classes and w else x
        out = model_call(model, as_variant(xin, variant), torch.full((xin.shape[0],), t), c)
        if classes and w:
            out = out[:n] * (1 + w) - out[n:] * w
        if p["sampler"] == "ddpm":
            # The notebook's reverse_q (cell 43): the mean from eps, then noise of variance B[t-1].
            a_t = 1 - terms.beta[t]
            mean = (x - out * ((1 - a_t) / math.sqrt(1 - terms.ab[t]))) * (1 / math.sqrt(a_t))
            x = mean if t == 0 else mean + math.sqrt(terms.beta[t - 1]) * torch.randn(x.shape, generator=gen)
        else:
            # DDIM, eta 0 (Song et al. 2021, eq. 12), from the v prediction with x0 clipped (lucidrains'
            # rederive_pred_noise); the last step goes to alphabar_prev = 1.
            ab = terms.ab[t]
            ab_prev = terms.ab[full[full.index(t) + 1]] if full.index(t) + 1 < len(full) else 1.0
            a, s = math.sqrt(ab), math.sqrt(1 - ab)
            x0 = (x * a - out * s).clamp(-1, 1)
            eps = (x - x0 * a) / s
            x = x0 * math.sqrt(ab_prev) + eps * math.sqrt(1 - ab_prev)
    return x


def sample_bench(args, p, gen):
    model = make_model(args.preset, args.classes, args.variant)
    model.eval()
    terms = Terms(p)
    k = args.steps
    reverse_process(model, p, terms, args.batch, min(k, args.warmup), args.classes, args.guidance, gen, args.variant)
    seconds, faults = time_repeats(lambda: reverse_process(model, p, terms, args.batch, k, args.classes, args.guidance, gen, args.variant), args.repeats)
    # a shortened loop is scaled to the full loop's rate
    return [args.batch * k / p["steps"] / s for s in seconds], faults / (args.repeats * k)


def time_steps(step, args):
    """--warmup untimed calls of step(), then --repeats timed repeats of --steps calls: img/s per repeat, minor faults per step."""
    for _ in range(args.warmup):
        step()

    def repeat():
        for _ in range(args.steps):
            step()

    seconds, faults = time_repeats(repeat, args.repeats)
    return [args.batch * args.steps / s for s in seconds], faults / (args.repeats * args.steps)


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


PROFILE = {"rows": 0}


def time_repeats(fn, repeats):
    seconds = []
    f0 = minor_faults()
    prof = torch.autograd.profiler.profile() if PROFILE["rows"] else None
    with prof if prof else open(os.devnull) as _:
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - start)
    if prof:
        # libtorch's profiler: the ops by their own time (children excluded), to stderr.
        sys.stderr.write(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=PROFILE["rows"]) + "\n")
    return seconds, minor_faults() - f0


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


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


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU()]


def stack_bench(args, p, gen):
    # The dli02 down path's convolution shapes at 16x16 -> 8x8, without the U-Net's wiring.
    model = nn.Sequential(*conv_bn_relu(1, 16), *conv_bn_relu(16, 32), *conv_bn_relu(32, 32), nn.MaxPool2d(2),
                          *conv_bn_relu(32, 64), *conv_bn_relu(64, 64))
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    model.train()
    x = torch.rand((args.batch, 1, 16, 16), generator=gen) * 2 - 1

    def step():
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()

    return time_steps(step, args)


def opcall_bench(args, p, gen):
    a, b = torch.ones(1), torch.ones(1)
    add = torch.add
    for _ in range(args.warmup):
        add(a, b)

    def repeat():
        for _ in range(args.steps):
            add(a, b)

    seconds, faults = time_repeats(repeat, args.repeats)
    return [s / args.steps * 1e6 for s in seconds], faults / (args.repeats * args.steps)


def check_bench(args, p, gen):
    """The full default reverse process for a few images from the seeded weights and x_T: bench/compare.ts
    checks that ddpm-ts's matches (same model, same generator draws, same sampler arithmetic)."""
    model = make_model(args.preset, args.classes, args.variant)
    model.eval()
    x = reverse_process(model, p, Terms(p), args.batch, p["steps"], args.classes, args.guidance, gen, args.variant)
    return x.flatten().tolist(), 0.0


BENCHES = {"train": train_bench, "sample": sample_bench, "stack": stack_bench, "opcall": opcall_bench, "check": check_bench}


def blas_info():
    m = re.search(r"\bBLAS_INFO=[^,\s]*", torch.__config__.show())
    return m.group(0) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="dli02")
    ap.add_argument("--what", choices=sorted(BENCHES), default="train")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--batch", type=int, help="images per step (train: the preset's batch; sample 500 at 16x16, 256 at 28x28)")
    ap.add_argument("--steps", type=int, help="train: steps per repeat (10); sample: reverse steps per loop (the sampler's full list)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3, help="untimed training steps or reverse steps first")
    ap.add_argument("--classes", type=int, default=0, help="class-conditional twin with this many classes (0: unconditional)")
    ap.add_argument("--guidance", type=float, default=0.0, help="sample: classifier-free guidance weight w (needs --classes)")
    ap.add_argument("--foreach", type=int, default=1, help="Adam's foreach implementation (1, faster here) or the per-parameter loop (0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", type=int, default=0, metavar="ROWS",
                    help="print the top ROWS ops of libtorch's profiler over the timed repeats to stderr (timings then include its overhead)")
    ap.add_argument("--variant", choices=["notebook", "subpixel-cl", "channels-last"], default="notebook",
                    help="the notebook's model (default); dli02 with ddpm-ts's sub-pixel transposed convolutions and channels-last "
                         "weights (subpixel-cl); dli03 and ddpm with channels-last weights and inputs (channels-last)")
    args = ap.parse_args()
    p = PRESETS[args.preset]
    if args.batch is None:
        args.batch = {"train": p["batch"], "stack": 128, "opcall": 1, "check": 4}.get(args.what, 500 if p["size"] == 16 else 256)
    if args.steps is None:
        args.steps = {"train": 10, "stack": 10, "opcall": 100_000, "sample": p["steps"], "check": p["steps"]}[args.what]
    if args.what == "sample" and not 1 <= args.steps <= p["steps"]:
        ap.error(f"--steps for sample is the number of reverse steps, 1..{p['steps']}; got {args.steps}")
    if args.guidance and not args.classes:
        ap.error("--guidance needs --classes")
    args.foreach = bool(args.foreach)
    PROFILE["rows"] = args.profile
    load_before = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    per_repeat, faults_per_step = BENCHES[args.what](args, p, gen)
    params = sum(q.numel() for q in make_model(args.preset, args.classes, args.variant).parameters())
    if args.what == "check":
        sys.stdout.write(json.dumps({"engine": "pytorch", "preset": args.preset, "params": params, "x0": per_repeat}) + "\n")
        return
    result = {
        "engine": "pytorch", "torch": torch.__version__, "preset": args.preset, "what": args.what,
        "variant": args.variant, "threads": args.threads, "batch": args.batch, "steps": args.steps,
        "repeats": args.repeats, "classes": args.classes, "guidance": args.guidance,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "blas": blas_info(),
        "malloc": {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")},
        "per_repeat": [round(v, 3) for v in per_repeat], "median": round(statistics.median(per_repeat), 3),
        "unit": "us" if args.what == "opcall" else "img/s",
        "params": params, "peak_rss_mb": round(peak_rss_mb(), 1), "minor_faults_per_step": round(faults_per_step, 1),
        "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
