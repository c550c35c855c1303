#!/usr/bin/env python3
"""PyTorch reference for the `dli02` preset: NVIDIA DLI "02_Diffusion_Models.ipynb", as written.

The model (U-Net with channels (16, 32, 64), flatten-MLP bottleneck, t/T embeddings added to the
inputs of the two up blocks), the notebook's schedule (T=150, linear betas 1e-4..0.02, float32 as
the notebook computes them), q(x0, t), get_loss and reverse_q, copied from seed 001's cells so the
TypeScript port, its golden tests (tools/reference/dli02_golden.py) and its benchmarks
(bench/pytorch_bench.py) all compare against one definition. Changing anything here changes the
golden file: keep it the notebook's code.

Import from another script:
    sys.path.insert(0, '<repo>/tools/reference'); import dli02
or, from the repo root, `from tools.reference import dli02`.

Run:
    /usr/bin/python3 tools/reference/dli02.py
prints one JSON line: {"params": <trainable parameter count>, "buffers": ..., "output_shape": ...}.
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

IMG_CH = 1
IMG_SIZE = 16
T = 150  # notebook cell 5

# Notebook cells 5 and 15, and the reverse-process terms of cell 43; float32 like the notebook.
B = torch.linspace(0.0001, 0.02, T)
a = 1.0 - B
a_bar = torch.cumprod(a, dim=0)
sqrt_a_bar = torch.sqrt(a_bar)  # mean coefficient of q(x_t | x_0)
sqrt_one_minus_a_bar = torch.sqrt(1 - a_bar)  # std of q(x_t | x_0)
sqrt_a_inv = torch.sqrt(1 / a)  # 1 / sqrt(alpha_t)
pred_noise_coeff = (1 - a) / torch.sqrt(1 - a_bar)  # (1 - alpha_t) / sqrt(1 - alpha_bar_t)


class DownBlock(nn.Module):
    def __init__(self, in_chs, out_chs):
        kernel_size = 3
        stride = 1
        padding = 1
        super().__init__()
        layers = [
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding),
            nn.BatchNorm2d(out_chs),
            nn.ReLU(),
            nn.Conv2d(out_chs, out_chs, kernel_size, stride, padding),
            nn.BatchNorm2d(out_chs),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UpBlock(nn.Module):
    def __init__(self, in_chs, out_chs):
        kernel_size = 3
        stride = 1
        strides = 2  # upsampling
        padding = 1
        super().__init__()
        layers = [
            # kernel 3, stride 2, padding 1, output_padding 1: doubles H and W
            nn.ConvTranspose2d(2 * in_chs, out_chs, kernel_size, strides, padding, padding),
            nn.BatchNorm2d(out_chs),
            nn.ReLU(),
            nn.Conv2d(out_chs, out_chs, kernel_size, stride, padding),
            nn.BatchNorm2d(out_chs),
            nn.ReLU(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x, skip):
        x = torch.cat((x, skip), 1)
        return self.model(x)


class EmbedBlock(nn.Module):
    def __init__(self, input_dim, emb_dim):
        super().__init__()
        self.input_dim = input_dim
        layers = [
            nn.Linear(input_dim, emb_dim),
            nn.ReLU(),
            nn.Linear(emb_dim, emb_dim),
            nn.Unflatten(1, (emb_dim, 1, 1)),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, input):
        input = input.view(-1, self.input_dim)
        return self.model(input)


class UNet(nn.Module):
    def __init__(self, img_chs=IMG_CH, img_size=IMG_SIZE, T=T):
        super().__init__()
        self.T = T
        down_chs = (16, 32, 64)
        up_chs = down_chs[::-1]  # reverse of the down channels
        latent_image_size = img_size // 4  # 2 ** (len(down_chs) - 1)
        t_dim = 1

        # Initial convolution
        self.down0 = nn.Sequential(
            nn.Conv2d(img_chs, down_chs[0], 3, padding=1),
            nn.BatchNorm2d(down_chs[0]),
            nn.ReLU(),
        )

        # Downsample
        self.down1 = DownBlock(down_chs[0], down_chs[1])
        self.down2 = DownBlock(down_chs[1], down_chs[2])
        self.to_vec = nn.Sequential(nn.Flatten(), nn.ReLU())

        # Embeddings
        self.dense_emb = nn.Sequential(
            nn.Linear(down_chs[2] * latent_image_size ** 2, down_chs[1]),
            nn.ReLU(),
            nn.Linear(down_chs[1], down_chs[1]),
            nn.ReLU(),
            nn.Linear(down_chs[1], down_chs[2] * latent_image_size ** 2),
            nn.ReLU(),
        )
        self.temb_1 = EmbedBlock(t_dim, up_chs[0])  # New
        self.temb_2 = EmbedBlock(t_dim, up_chs[1])  # New

        # Upsample
        self.up0 = nn.Sequential(
            nn.Unflatten(1, (up_chs[0], latent_image_size, latent_image_size)),
            nn.Conv2d(up_chs[0], up_chs[0], 3, padding=1),
            nn.BatchNorm2d(up_chs[0]),
            nn.ReLU(),
        )
        self.up1 = UpBlock(up_chs[0], up_chs[1])
        self.up2 = UpBlock(up_chs[1], up_chs[2])

        # Match output channels
        self.out = nn.Sequential(
            nn.Conv2d(up_chs[-1], up_chs[-1], 3, 1, 1),
            nn.BatchNorm2d(up_chs[-1]),
            nn.ReLU(),
            nn.Conv2d(up_chs[-1], img_chs, 3, 1, 1),
        )

    def forward(self, x, t):
        down0 = self.down0(x)  # (B, 16, 16, 16)
        down1 = self.down1(down0)  # (B, 32, 8, 8)
        down2 = self.down2(down1)  # (B, 64, 4, 4)
        latent_vec = self.to_vec(down2)  # (B, 1024)

        t = t.float() / self.T  # Convert from [0, T] to [0, 1]
        latent_vec = self.dense_emb(latent_vec)  # (B, 1024)
        temb_1 = self.temb_1(t)  # (B, 64, 1, 1)
        temb_2 = self.temb_2(t)  # (B, 32, 1, 1)

        up0 = self.up0(latent_vec)  # (B, 64, 4, 4)
        up1 = self.up1(up0 + temb_1, down2)  # (B, 32, 8, 8)
        up2 = self.up2(up1 + temb_2, down1)  # (B, 16, 16, 16)
        return self.out(up2)  # (B, 1, 16, 16)


def q(x_0, t):
    """Notebook cell 17: x_t = sqrt(a_bar_t) x_0 + sqrt(1 - a_bar_t) eps; returns (x_t, eps)."""
    noise = torch.randn_like(x_0)
    sqrt_a_bar_t = sqrt_a_bar[t, None, None, None]
    sqrt_one_minus_a_bar_t = sqrt_one_minus_a_bar[t, None, None, None]
    x_t = sqrt_a_bar_t * x_0 + sqrt_one_minus_a_bar_t * noise
    return x_t, noise


def get_loss(model, x_0, t):
    """Notebook cell 38: MSE between the added noise and the predicted noise."""
    x_noisy, noise = q(x_0, t)
    noise_pred = model(x_noisy, t)
    return F.mse_loss(noise, noise_pred)


@torch.no_grad()
def reverse_q(x_t, t, e_t):
    """Notebook cell 43. Note the noise scale is sqrt(B[t-1]), as the notebook writes it."""
    t = torch.squeeze(t[0].int())  # All t values should be the same
    pred_noise_coeff_t = pred_noise_coeff[t]
    sqrt_a_inv_t = sqrt_a_inv[t]
    u_t = sqrt_a_inv_t * (x_t - pred_noise_coeff_t * e_t)
    if t == 0:
        return u_t  # Reverse diffusion complete!
    else:
        B_t = B[t - 1]
        new_noise = torch.randn_like(x_t)
        return u_t + torch.sqrt(B_t) * new_noise


@torch.no_grad()
def sample(model, n, generator=None):
    """Notebook cell 45's loop for a batch of n: x_T ~ N(0, I), then reverse_q from t=T-1 to 0."""
    x_t = torch.randn((n, IMG_CH, IMG_SIZE, IMG_SIZE), generator=generator)
    for i in range(0, T)[::-1]:
        t = torch.full((n,), i)
        e_t = model(x_t, t)
        x_t = reverse_q(x_t, t, e_t)
    return x_t


def count_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def main():
    torch.manual_seed(0)
    model = UNet()
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, IMG_CH, IMG_SIZE, IMG_SIZE), torch.tensor([0, T - 1]))
    info = {
        "params": count_params(model),
        "buffers": sum(b.numel() for b in model.buffers()),
        "state_dict_entries": len(model.state_dict()),
        "output_shape": list(out.shape),
        "torch": torch.__version__,
    }
    json.dump(info, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
