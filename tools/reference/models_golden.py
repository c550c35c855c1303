#!/usr/bin/env python3
"""Writes test/fixtures/dli03_golden.safetensors and test/fixtures/ddpm_unet_golden.safetensors:
PyTorch's answers for the `dli03` and `ddpm` U-Nets (and the class-conditional `dli02`), which
test/models.test.ts must reproduce.

Models: tools/reference/dli03.py (notebooks 03 and 04), tools/reference/ddpm_unet.py, and for
dli02 with classes the notebook 02 model of tools/reference/dli02.py plus notebook 04's c_embed1 /
c_embed2 (Dli02Cond below). Full-size weights would not fit the ~2 MB budget of a fixture, so each
file holds two kinds of check:

  small.*     a narrow model with class conditioning (config in __metadata__ "small_config", with
              the TypeScript option names): torch.manual_seed(0) default init, then every GroupNorm's
              weight = 1 + 0.1 randn, bias = 0.1 randn from torch.Generator().manual_seed(1) in
              modules() order (so the affine terms are not the identity).
                small.<name>       every state-dict tensor of the conditional model
                x, t, c            inputs: x = randn (Generator seed 1234), t fixed, c = one-hot labels
                                   times the drop mask (row 2 dropped: a zero row, "no class")
                small.out_cond     output with c
                small.out_null     output with c omitted (all rows "no class")
                small.out_uncond   output of the unconditional model (numClasses 0) holding the same
                                   weights without c_embed* / classes_mlp
                small.loss         small.out_cond.pow(2).mean(); small.grad.<name> its gradients
  default.*   the preset at its defaults straight from torch.manual_seed(0) (the TypeScript side gets
              the same weights from manualSeed(0)): default.out_cond (10 classes, c as above for the
              first two rows) and default.out_uncond for default.x, default.t. __metadata__ also
              holds the default models' parameter counts and state-dict names ("params", "names").
  dli02_cond.* (in the dli03 file) dli02 with 10 classes from torch.manual_seed(0): out_eval and,
              after it, out_train (BatchNorm batch statistics) for dli02_cond.x, .t, .c.

Computed with torch.set_num_threads(1) so reruns on one machine give the same bytes. The file
format is dli02_golden.py's (struct + json, no safetensors package); a check at the end reloads each
file and recomputes the small model's outputs from the stored weights.

Run (from the repo root):
    /usr/bin/python3 tools/reference/models_golden.py            # writes both files
    /usr/bin/python3 tools/reference/models_golden.py --check-only
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ddpm_unet  # noqa: E402
import dli02  # noqa: E402
import dli03  # noqa: E402
from dli02_golden import read_safetensors, to_np, write_safetensors  # noqa: E402

REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(REPO, "test", "fixtures")
N_CLASSES = 10
LABELS = [3, 7, 0, 9]
KEEP = [1.0, 1.0, 0.0, 1.0]  # row 2 dropped: notebook 04's c * c_mask gives a zero row


class Dli02Cond(nn.Module):
    """The notebook 02 model (dli02.UNet's __init__, line for line) with notebook 04's class
    conditioning: c_embed1/c_embed2 (dli02's Linear-ReLU-Linear EmbedBlock, input c_embed_dim)
    built right after temb_2, and up = up(c_emb * up_prev + temb, skip)."""

    def __init__(self, c_embed_dim=N_CLASSES, img_chs=dli02.IMG_CH, img_size=dli02.IMG_SIZE, T=dli02.T):
        super().__init__()
        self.T = T
        self.c_embed_dim = c_embed_dim
        down_chs = (16, 32, 64)
        up_chs = down_chs[::-1]
        latent_image_size = img_size // 4
        t_dim = 1
        self.down0 = nn.Sequential(nn.Conv2d(img_chs, down_chs[0], 3, padding=1), nn.BatchNorm2d(down_chs[0]), nn.ReLU())
        self.down1 = dli02.DownBlock(down_chs[0], down_chs[1])
        self.down2 = dli02.DownBlock(down_chs[1], down_chs[2])
        self.to_vec = nn.Sequential(nn.Flatten(), nn.ReLU())
        self.dense_emb = nn.Sequential(
            nn.Linear(down_chs[2] * latent_image_size ** 2, down_chs[1]), nn.ReLU(),
            nn.Linear(down_chs[1], down_chs[1]), nn.ReLU(),
            nn.Linear(down_chs[1], down_chs[2] * latent_image_size ** 2), nn.ReLU(),
        )
        self.temb_1 = dli02.EmbedBlock(t_dim, up_chs[0])
        self.temb_2 = dli02.EmbedBlock(t_dim, up_chs[1])
        self.c_embed1 = dli02.EmbedBlock(c_embed_dim, up_chs[0])
        self.c_embed2 = dli02.EmbedBlock(c_embed_dim, up_chs[1])
        self.up0 = nn.Sequential(
            nn.Unflatten(1, (up_chs[0], latent_image_size, latent_image_size)),
            nn.Conv2d(up_chs[0], up_chs[0], 3, padding=1), nn.BatchNorm2d(up_chs[0]), nn.ReLU(),
        )
        self.up1 = dli02.UpBlock(up_chs[0], up_chs[1])
        self.up2 = dli02.UpBlock(up_chs[1], up_chs[2])
        self.out = nn.Sequential(
            nn.Conv2d(up_chs[-1], up_chs[-1], 3, 1, 1), nn.BatchNorm2d(up_chs[-1]), nn.ReLU(),
            nn.Conv2d(up_chs[-1], img_chs, 3, 1, 1),
        )

    def forward(self, x, t, c=None):
        if c is None:
            c = torch.zeros(x.shape[0], self.c_embed_dim)
        down0 = self.down0(x)
        down1 = self.down1(down0)
        down2 = self.down2(down1)
        latent_vec = self.to_vec(down2)
        t = t.float() / self.T
        latent_vec = self.dense_emb(latent_vec)
        temb_1 = self.temb_1(t)
        temb_2 = self.temb_2(t)
        c_emb1 = self.c_embed1(c)
        c_emb2 = self.c_embed2(c)
        up0 = self.up0(latent_vec)
        up1 = self.up1(c_emb1 * up0 + temb_1, down2)
        up2 = self.up2(c_emb2 * up1 + temb_2, down1)
        return self.out(up2)


def class_input(n=len(LABELS)):
    c = F.one_hot(torch.tensor(LABELS[:n]), N_CLASSES).float()
    return c * torch.tensor(KEEP[:n])[:, None]  # (n, N_CLASSES)


def perturb_group_norms(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.GroupNorm):
                n = m.num_channels
                m.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))


def count_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def sd_names(model):
    return list(model.state_dict().keys())


# ------------------------------------------------------------------ the two presets
class Spec:
    """How to build one preset's twin and its inputs."""

    def __init__(self, name, build, small_kwargs, small_ts, default_ts, img_size, t_values):
        self.name = name
        self.build = build  # build(num_classes, **kwargs) -> model
        self.small_kwargs = small_kwargs
        self.small_ts = small_ts
        self.default_ts = default_ts
        self.img_size = img_size
        self.t_values = t_values


DLI03 = Spec(
    "dli03",
    lambda n, **kw: dli03.UNet(c_embed_dim=n, **kw),
    dict(down_chs=(16, 16, 32), small_group_size=4, big_group_size=8),
    {"imageChannels": 1, "imageSize": 16, "downChannels": [16, 16, 32], "T": 150, "tEmbedDim": 8,
     "numClasses": N_CLASSES, "smallGroupSize": 4, "bigGroupSize": 8},
    {"imageChannels": 1, "imageSize": 16, "T": 150},
    16, [0, 37, 74, 149],
)
DDPM = Spec(
    "ddpm",
    lambda n, **kw: ddpm_unet.Unet(**{**ddpm_unet.DEFAULTS, **kw, "num_classes": n}),
    dict(dim=8, groups=4, attn_heads=2, attn_dim_head=8),
    {"imageChannels": 1, "imageSize": 28, "T": 1000, "numClasses": N_CLASSES, "dim": 8, "dimMults": [1, 2, 2],
     "resnetBlocks": 2, "groups": 4, "attnHeads": 2, "attnDimHead": 8},
    {"imageChannels": 1, "imageSize": 28, "T": 1000},
    28, [0, 10, 500, 999],
)


def compute(spec):
    torch.set_num_threads(1)
    tensors = {}
    x = torch.randn((4, 1, spec.img_size, spec.img_size), generator=torch.Generator().manual_seed(1234))
    t = torch.tensor(spec.t_values, dtype=torch.int64)
    c = class_input()
    tensors["x"], tensors["t"], tensors["c"] = to_np(x), to_np(t), to_np(c)

    torch.manual_seed(0)
    model = spec.build(N_CLASSES, **spec.small_kwargs)
    perturb_group_norms(model)
    for k, v in model.state_dict().items():
        tensors[f"small.{k}"] = to_np(v.clone())
    with torch.no_grad():
        tensors["small.out_null"] = to_np(model(x, t))
    model.zero_grad(set_to_none=True)
    out = model(x, t, c)
    loss = out.pow(2).mean()
    loss.backward()
    tensors["small.out_cond"] = to_np(out)
    tensors["small.loss"] = to_np(loss)
    for k, p in model.named_parameters():
        if p.grad is None:
            raise RuntimeError(f"models_golden: {spec.name} parameter {k} got no gradient; expected every parameter to be used")
        tensors[f"small.grad.{k}"] = to_np(p.grad)
    uncond = spec.build(0, **spec.small_kwargs)
    uncond.load_state_dict({k: v for k, v in model.state_dict().items() if k in uncond.state_dict()})
    with torch.no_grad():
        tensors["small.out_uncond"] = to_np(uncond(x, t))

    params, names = {}, {}
    xd, td, cd = x[:2], t[2:], class_input(2)
    tensors["default.x"], tensors["default.t"], tensors["default.c"] = to_np(xd), to_np(td), to_np(cd)
    for n, key in [(0, "uncond"), (N_CLASSES, "cond")]:
        torch.manual_seed(0)
        m = spec.build(n)
        params[key] = count_params(m)
        names[key] = sd_names(m)
        with torch.no_grad():
            tensors[f"default.out_{key}"] = to_np(m(xd, td, cd) if n else m(xd, td))

    metadata = {
        "source": f"tools/reference/models_golden.py ({spec.name})",
        "torch": torch.__version__,
        "threads": "1",
        "small_config": json.dumps(spec.small_ts),
        "default_config": json.dumps(spec.default_ts),
        "params": json.dumps(params),
        "names": json.dumps(names),
        "labels": json.dumps(LABELS),
        "keep": json.dumps(KEEP),
    }

    if spec.name == "dli03":
        torch.manual_seed(0)
        m = Dli02Cond()
        metadata["dli02_cond_params"] = str(count_params(m))
        metadata["dli02_cond_names"] = json.dumps(sd_names(m))
        xq = torch.randn((4, 1, 16, 16), generator=torch.Generator().manual_seed(99))
        tq = torch.tensor([0, 37, 74, 149])
        tensors["dli02_cond.x"], tensors["dli02_cond.t"], tensors["dli02_cond.c"] = to_np(xq), to_np(tq), to_np(c)
        m.eval()
        with torch.no_grad():
            tensors["dli02_cond.out_eval"] = to_np(m(xq, tq, c))
        m.train()
        with torch.no_grad():
            tensors["dli02_cond.out_train"] = to_np(m(xq, tq, c))
    return tensors, metadata


def path_of(spec):
    return os.path.join(FIXTURES, "dli03_golden.safetensors" if spec.name == "dli03" else "ddpm_unet_golden.safetensors")


def check(spec, expected=None):
    path = path_of(spec)
    got, metadata = read_safetensors(path)
    if expected is not None:
        if set(got) != set(expected):
            raise AssertionError(f"check: {path} names differ: missing {sorted(set(expected) - set(got))}, extra {sorted(set(got) - set(expected))}")
        for k, v in expected.items():
            if got[k].dtype != v.dtype or got[k].shape != v.shape or not np.array_equal(got[k], v):
                raise AssertionError(f"check: {path} tensor {k} does not round-trip")
    torch.set_num_threads(1)
    model = spec.build(N_CLASSES, **spec.small_kwargs)
    model.load_state_dict({k: torch.from_numpy(got[f"small.{k}"].copy()) for k in model.state_dict()})
    x, t, c = (torch.from_numpy(got[k].copy()) for k in ("x", "t", "c"))
    with torch.no_grad():
        worst = {
            "out_cond": float(np.abs(model(x, t, c).numpy() - got["small.out_cond"]).max()),
            "out_null": float(np.abs(model(x, t).numpy() - got["small.out_null"]).max()),
            # a zero row of c is the same as no c for that row
            "zero_row_vs_no_c": float(np.abs(got["small.out_cond"][2] - got["small.out_null"][2]).max()),
            "rearrange_vs_pixel_unshuffle": float((dli03.Rearrange()(x) - F.pixel_unshuffle(x, 2)).abs().max()),
        }
    for k, w in worst.items():
        if not w <= 1e-6:
            raise AssertionError(f"check: {spec.name} {k} differs by {w}; expected <= 1e-6")
    if np.abs(got["small.out_cond"][0] - got["small.out_null"][0]).max() < 1e-4:
        raise AssertionError(f"check: {spec.name} class input changes nothing in row 0; expected the one-hot row to matter")
    return {"path": os.path.relpath(path, REPO), "tensors": len(got), "bytes": os.path.getsize(path),
            "max_abs_diff": worst, "params": json.loads(metadata["params"]),
            **({"dli02_cond_params": int(metadata["dli02_cond_params"])} if "dli02_cond_params" in metadata else {})}


def main():
    p = argparse.ArgumentParser(description="Write and verify the dli03 and ddpm golden safetensors files.")
    p.add_argument("--check-only", action="store_true", help="verify the existing files instead of writing them")
    args = p.parse_args()
    for spec in (DLI03, DDPM):
        if args.check_only:
            report = check(spec)
        else:
            tensors, metadata = compute(spec)
            write_safetensors(path_of(spec), tensors, metadata)
            report = check(spec, tensors)
        print(json.dumps(report))


if __name__ == "__main__":
    main()
