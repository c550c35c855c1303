#!/usr/bin/env python3
"""Writes test/fixtures/dli02_golden.safetensors: PyTorch's answers for the `dli02` U-Net.

The TypeScript golden tests load this file, copy the weights into their own dli02 model and must
reproduce PyTorch's outputs, BatchNorm running-stat updates and gradients; they also check the
float64 schedule terms. The model is tools/reference/dli02.py (the seed 001 notebook's code).

Contents (state_dict names, e.g. `down1.model.0.weight`):
  <name>              every parameter and buffer before anything ran (F32; num_batches_tracked I64)
  x, t                input (4, 1, 16, 16) F32 from torch.Generator().manual_seed(1234) randn;
                      t = [0, 37, 74, 149] I64
  out_eval            model.eval() output under no_grad (run first; eval changes nothing)
  act_eval.<module>   eval-mode outputs of down0, down1, down2, to_vec, dense_emb, temb_1, temb_2,
                      up0, up1, up2, out: for locating a mismatch
  out_train           model.train() output (BatchNorm uses batch statistics), run after out_eval
  loss                out_train.pow(2).mean(), shape []
  after_train.<name>  every buffer after that one train forward (momentum 0.1; running_var takes
                      the unbiased batch variance; num_batches_tracked 0 -> 1)
  grad.<name>         d loss / d parameter for every parameter
  schedule.<term>     F64, from numpy linspace(1e-4, 0.02, 150) in float64 (formulas in the
                      header's __metadata__ and below)
Weights: torch.manual_seed(0), default PyTorch init; then, so eval mode is not the identity
BatchNorm, every BatchNorm's weight = 1 + 0.1 randn, bias = 0.1 randn, running_mean = 0.1 randn,
running_var = 0.5 + rand, drawn in model.modules() order from torch.Generator().manual_seed(1).
Computed with torch.set_num_threads(1) so reruns on one machine give the same bytes.

The file is written with struct + json (no safetensors package): 8-byte little-endian header
length, a JSON header (dtype, shape, data_offsets; __metadata__ of strings) padded with spaces to a
multiple of 8, then the tensors back to back. A reader check at the end reloads and verifies it.

Run (from the repo root):
    /usr/bin/python3 tools/reference/dli02_golden.py [--out test/fixtures/dli02_golden.safetensors]
    /usr/bin/python3 tools/reference/dli02_golden.py --check-only   # verify an existing file
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dli02  # noqa: E402

REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "test", "fixtures", "dli02_golden.safetensors")
T_VALUES = [0, 37, 74, 149]
ACT_MODULES = ["down0", "down1", "down2", "to_vec", "dense_emb", "temb_1", "temb_2", "up0", "up1", "up2", "out"]

DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i8"): "I64"}
NP_OF = {v: k for k, v in DTYPES.items()}

SCHEDULE_FORMULAS = {
    "beta": "linspace(1e-4, 0.02, 150)",
    "alpha": "1 - beta",
    "alpha_bar": "cumprod(alpha)",
    "alpha_bar_prev": "concat([1], alpha_bar[:-1])",
    "sqrt_alpha_bar": "sqrt(alpha_bar)",
    "sqrt_one_minus_alpha_bar": "sqrt(1 - alpha_bar)",
    "sqrt_recip_alpha": "1 / sqrt(alpha)  (the notebook's sqrt_a_inv)",
    "pred_noise_coeff": "(1 - alpha) / sqrt(1 - alpha_bar)  (the notebook's reverse_q)",
    "notebook_sigma": "0 at t=0, else sqrt(beta[t-1])  (the noise std the notebook's reverse_q adds)",
    "posterior_variance": "beta * (1 - alpha_bar_prev) / (1 - alpha_bar)",
    "posterior_log_variance_clipped": "log(concat([posterior_variance[1]], posterior_variance[1:]))",
    "posterior_mean_coef1": "beta * sqrt(alpha_bar_prev) / (1 - alpha_bar)",
    "posterior_mean_coef2": "(1 - alpha_bar_prev) * sqrt(alpha) / (1 - alpha_bar)",
}


def schedule_f64(T=dli02.T):
    beta = np.linspace(1e-4, 0.02, T, dtype=np.float64)
    alpha = 1.0 - beta
    alpha_bar = np.cumprod(alpha)
    alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
    posterior_variance = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
    s = {
        "beta": beta,
        "alpha": alpha,
        "alpha_bar": alpha_bar,
        "alpha_bar_prev": alpha_bar_prev,
        "sqrt_alpha_bar": np.sqrt(alpha_bar),
        "sqrt_one_minus_alpha_bar": np.sqrt(1.0 - alpha_bar),
        "sqrt_recip_alpha": 1.0 / np.sqrt(alpha),
        "pred_noise_coeff": (1.0 - alpha) / np.sqrt(1.0 - alpha_bar),
        "notebook_sigma": np.concatenate([[0.0], np.sqrt(beta[:-1])]),
        "posterior_variance": posterior_variance,
        # posterior_variance[0] is 0; clip the log as Ho et al.'s code does
        "posterior_log_variance_clipped": np.log(np.concatenate([[posterior_variance[1]], posterior_variance[1:]])),
        "posterior_mean_coef1": beta * np.sqrt(alpha_bar_prev) / (1.0 - alpha_bar),
        "posterior_mean_coef2": (1.0 - alpha_bar_prev) * np.sqrt(alpha) / (1.0 - alpha_bar),
    }
    assert set(s) == set(SCHEDULE_FORMULAS)
    return s


def build_model():
    torch.manual_seed(0)
    model = dli02.UNet()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model


def to_np(t):
    a = t.detach().cpu().contiguous().numpy()
    if a.dtype == np.float32:
        return a.astype("<f4", copy=False)
    if a.dtype == np.float64:
        return a.astype("<f8", copy=False)
    if a.dtype == np.int64:
        return a.astype("<i8", copy=False)
    raise TypeError(f"dli02_golden: tensor dtype {a.dtype} has no safetensors mapping here; expected float32, float64 or int64")


def compute():
    torch.set_num_threads(1)
    model = build_model()
    tensors = {}
    for name, v in model.state_dict().items():
        tensors[name] = to_np(v.clone())
    x = torch.randn((4, dli02.IMG_CH, dli02.IMG_SIZE, dli02.IMG_SIZE), generator=torch.Generator().manual_seed(1234))
    t = torch.tensor(T_VALUES, dtype=torch.int64)
    tensors["x"] = to_np(x)
    tensors["t"] = to_np(t)

    acts = {}
    hooks = [getattr(model, n).register_forward_hook(lambda mod, inp, out, n=n: acts.__setitem__(n, out.detach().clone()))
             for n in ACT_MODULES]
    model.eval()
    with torch.no_grad():
        out_eval = model(x, t)
    for h in hooks:
        h.remove()
    tensors["out_eval"] = to_np(out_eval)
    for n in ACT_MODULES:
        tensors[f"act_eval.{n}"] = to_np(acts[n])

    model.train()
    model.zero_grad(set_to_none=True)
    out_train = model(x, t)
    loss = out_train.pow(2).mean()
    loss.backward()
    tensors["out_train"] = to_np(out_train)
    tensors["loss"] = to_np(loss)
    for name, b in model.named_buffers():
        tensors[f"after_train.{name}"] = to_np(b)
    for name, p in model.named_parameters():
        if p.grad is None:
            raise RuntimeError(f"dli02_golden: parameter {name} got no gradient from loss = out_train.pow(2).mean(); expected every parameter to be used")
        tensors[f"grad.{name}"] = to_np(p.grad)

    for k, v in schedule_f64().items():
        tensors[f"schedule.{k}"] = v.astype("<f8")

    metadata = {
        "source": "tools/reference/dli02_golden.py (model: tools/reference/dli02.py, seed 001 notebook)",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": "1",
        "init": "torch.manual_seed(0) default init; BatchNorm weight=1+0.1*randn, bias=0.1*randn, "
                "running_mean=0.1*randn, running_var=0.5+rand from Generator seed 1 in modules() order",
        "x": "torch.randn((4,1,16,16), generator=torch.Generator().manual_seed(1234))",
        "t": json.dumps(T_VALUES),
        "order": "state saved, eval forward (no_grad), then one train forward + backward",
        "loss": "out_train.pow(2).mean()",
        "batchnorm": "eps=1e-5, momentum=0.1, running_var updated with unbiased batch variance",
        "T": str(dli02.T),
        "schedule": json.dumps(SCHEDULE_FORMULAS),
    }
    return tensors, metadata


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        a = tensors[name]
        if a.dtype not in DTYPES:
            raise TypeError(f"write_safetensors: tensor {name} has dtype {a.dtype}; expected one of {sorted(DTYPES.values())}")
        data = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - (8 + len(hjson)) % 8) % 8)  # data section starts 8-byte aligned
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"read_safetensors: {path} is {len(raw)} bytes; expected at least the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"read_safetensors: {path} header length {n} runs past the end of the file ({len(raw)} bytes)")
    if (8 + n) % 8:
        raise ValueError(f"read_safetensors: {path} data section starts at byte {8 + n}; expected a multiple of 8")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"read_safetensors: {path} __metadata__ must map strings to strings")
    data = raw[8 + n:]
    spans = sorted((h["data_offsets"][0], h["data_offsets"][1], k) for k, h in header.items())
    pos = 0
    for start, end, k in spans:
        if start != pos:
            raise ValueError(f"read_safetensors: {path} tensor {k} starts at {start}; expected {pos} (data must be contiguous, no gaps or overlaps)")
        pos = end
    if pos != len(data):
        raise ValueError(f"read_safetensors: {path} tensors cover {pos} data bytes; the data section has {len(data)}")
    out = {}
    for k, h in header.items():
        dt = NP_OF[h["dtype"]]
        start, end = h["data_offsets"]
        expect = int(np.prod(h["shape"], dtype=np.int64)) * dt.itemsize
        if end - start != expect:
            raise ValueError(f"read_safetensors: {path} tensor {k} has {end - start} bytes; shape {h['shape']} {h['dtype']} needs {expect}")
        out[k] = np.frombuffer(data[start:end], dtype=dt).reshape(h["shape"])
    return out, metadata


def check(path, expected=None):
    """Reload the file, compare with what was written, and recompute the outputs from its weights."""
    got, metadata = read_safetensors(path)
    if expected is not None:
        if set(got) != set(expected):
            raise AssertionError(f"check: {path} names differ: missing {sorted(set(expected) - set(got))}, extra {sorted(set(got) - set(expected))}")
        for k, v in expected.items():
            if got[k].dtype != v.dtype or got[k].shape != v.shape or not np.array_equal(got[k], v):
                raise AssertionError(f"check: {path} tensor {k} does not round-trip")
    torch.set_num_threads(1)
    model = dli02.UNet()
    sd = model.state_dict()
    model.load_state_dict({k: torch.from_numpy(got[k].copy()) for k in sd})
    grads = [k for k in got if k.startswith("grad.")]
    if sorted(grads) != sorted(f"grad.{n}" for n, _ in model.named_parameters()):
        raise AssertionError(f"check: {path} grad.* names do not match the model's parameters")
    x = torch.from_numpy(got["x"].copy())
    t = torch.from_numpy(got["t"].copy())
    model.eval()
    with torch.no_grad():
        out_eval = model(x, t).numpy()
    model.train()
    out_train = model(x, t)
    loss = out_train.pow(2).mean()
    loss.backward()
    worst = {}
    worst["out_eval"] = float(np.abs(out_eval - got["out_eval"]).max())
    worst["out_train"] = float(np.abs(out_train.detach().numpy() - got["out_train"]).max())
    worst["grad"] = max(float(np.abs(p.grad.numpy() - got[f"grad.{n}"]).max()) for n, p in model.named_parameters())
    worst["after_train"] = max(float(np.abs(b.numpy() - got[f"after_train.{n}"]).max()) for n, b in model.named_buffers())
    for k, w in worst.items():
        if not w <= 1e-5:
            raise AssertionError(f"check: recomputing {k} from the weights in {path} differs by {w}; expected <= 1e-5")
    s = schedule_f64()
    for k, v in s.items():
        if not np.array_equal(got[f"schedule.{k}"], v):
            raise AssertionError(f"check: {path} schedule.{k} does not match the float64 formula")
    # The notebook's float32 terms match the float64 ones except where 1 - alpha_bar cancels at
    # small t (about 1e-4 relative for sqrt(1 - alpha_bar) and pred_noise_coeff at t = 0, 1).
    f32_rel = {}
    for nb, k in [(dli02.B, "beta"), (dli02.a, "alpha"), (dli02.a_bar, "alpha_bar"), (dli02.sqrt_a_bar, "sqrt_alpha_bar"),
                  (dli02.sqrt_one_minus_a_bar, "sqrt_one_minus_alpha_bar"), (dli02.sqrt_a_inv, "sqrt_recip_alpha"),
                  (dli02.pred_noise_coeff, "pred_noise_coeff")]:
        f32_rel[k] = float((np.abs(nb.numpy().astype(np.float64) - s[k]) / np.abs(s[k])).max())
        if not f32_rel[k] <= 1e-3:
            raise AssertionError(f"check: notebook float32 {k} differs from the float64 schedule by {f32_rel[k]} relative; expected <= 1e-3")
    return {"tensors": len(got), "bytes": os.path.getsize(path), "max_abs_diff": worst,
            "notebook_f32_schedule_max_rel_diff": f32_rel, "metadata_keys": sorted(metadata)}


def main():
    p = argparse.ArgumentParser(description="Write and verify the dli02 golden safetensors file.")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--check-only", action="store_true", help="verify an existing file instead of writing it")
    args = p.parse_args()
    if args.check_only:
        report = check(args.out)
    else:
        tensors, metadata = compute()
        write_safetensors(args.out, tensors, metadata)
        report = check(args.out, tensors)
    report["path"] = os.path.relpath(args.out, REPO)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
