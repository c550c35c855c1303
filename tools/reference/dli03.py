#!/usr/bin/env python3
"""PyTorch reference for the `dli03` preset: NVIDIA DLI "03_Optimizations.ipynb"'s U-Net, as written,
with the class conditioning of "04_Classifier_Free_Diffusion_Guidance.ipynb" when c_embed_dim > 0.

GroupNorm + GELU conv blocks, rearrange (space-to-depth) pooling, residual conv blocks, a sinusoidal
embedding of t / T, and the notebooks' flatten-MLP bottleneck. The TypeScript port
(src/models/dli03.ts) has the same module names and construction order, so state dicts line up key
for key and torch.manual_seed(s) gives the weights that manualSeed(s) gives there.

c_embed_dim = 0 is notebook 03's model (no c_embed modules, forward(x, t)); c_embed_dim = n adds
notebook 04's c_embed1/c_embed2 and forward(x, t, c) with c (B, n) float: one-hot rows already
multiplied by the drop mask (notebook 04's `c = c * c_mask`), a zero row meaning "no class".

einops is not a dependency: Rearrange below does "b c (h p1) (w p2) -> b (c p1 p2) h w" with
view/permute, which is what einops does (and equals F.pixel_unshuffle(x, 2)).

Run:
    /usr/bin/python3 tools/reference/dli03.py
prints one JSON line with parameter counts of the default model, unconditional and with 10 classes.
"""
import json
import math
import sys

import torch
import torch.nn as nn

IMG_CH = 1
IMG_SIZE = 16
T = 150
N_CLASSES = 10  # Fashion-MNIST


class Rearrange(nn.Module):
    """einops.layers.torch.Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2)."""

    def __init__(self, p1=2, p2=2):
        super().__init__()
        self.p1, self.p2 = p1, p2

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.view(b, c, h // self.p1, self.p1, w // self.p2, self.p2)
        return x.permute(0, 1, 3, 5, 2, 4).reshape(b, c * self.p1 * self.p2, h // self.p1, w // self.p2)


class GELUConvBlock(nn.Module):
    def __init__(self, in_ch, out_ch, group_size):
        super().__init__()
        layers = [
            nn.Conv2d(in_ch, out_ch, 3, 1, 1),
            nn.GroupNorm(group_size, out_ch),
            nn.GELU(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class RearrangePoolBlock(nn.Module):
    def __init__(self, in_chs, group_size):
        super().__init__()
        self.rearrange = Rearrange(p1=2, p2=2)
        self.conv = GELUConvBlock(4 * in_chs, in_chs, group_size)

    def forward(self, x):
        x = self.rearrange(x)
        return self.conv(x)


class DownBlock(nn.Module):
    def __init__(self, in_chs, out_chs, group_size):
        super(DownBlock, self).__init__()
        layers = [
            GELUConvBlock(in_chs, out_chs, group_size),
            GELUConvBlock(out_chs, out_chs, group_size),
            RearrangePoolBlock(out_chs, group_size),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UpBlock(nn.Module):
    def __init__(self, in_chs, out_chs, group_size):
        super(UpBlock, self).__init__()
        layers = [
            nn.ConvTranspose2d(2 * in_chs, out_chs, 2, 2),
            GELUConvBlock(out_chs, out_chs, group_size),
            GELUConvBlock(out_chs, out_chs, group_size),
            GELUConvBlock(out_chs, out_chs, group_size),
            GELUConvBlock(out_chs, out_chs, group_size),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x, skip):
        x = torch.cat((x, skip), 1)
        x = self.model(x)
        return x


class SinusoidalPositionEmbedBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, time):
        device = time.device
        half_dim = self.dim // 2
        embeddings = math.log(10000) / (half_dim - 1)
        embeddings = torch.exp(torch.arange(half_dim, device=device) * -embeddings)
        embeddings = time[:, None] * embeddings[None, :]
        embeddings = torch.cat((embeddings.sin(), embeddings.cos()), dim=-1)
        return embeddings


class EmbedBlock(nn.Module):
    def __init__(self, input_dim, emb_dim):
        super(EmbedBlock, self).__init__()
        self.input_dim = input_dim
        layers = [
            nn.Linear(input_dim, emb_dim),
            nn.GELU(),
            nn.Linear(emb_dim, emb_dim),
            nn.Unflatten(1, (emb_dim, 1, 1)),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, input):
        input = input.view(-1, self.input_dim)
        return self.model(input)


class ResidualConvBlock(nn.Module):
    def __init__(self, in_chs, out_chs, group_size):
        super().__init__()
        self.conv1 = GELUConvBlock(in_chs, out_chs, group_size)
        self.conv2 = GELUConvBlock(out_chs, out_chs, group_size)

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = self.conv2(x1)
        out = x1 + x2
        return out


class UNet(nn.Module):
    def __init__(self, T=T, img_ch=IMG_CH, img_size=IMG_SIZE, down_chs=(64, 64, 128), t_embed_dim=8, c_embed_dim=0,
                 small_group_size=8, big_group_size=32):
        super().__init__()
        self.T = T
        self.c_embed_dim = c_embed_dim
        up_chs = down_chs[::-1]  # Reverse of the down channels
        latent_image_size = img_size // 4  # 2 ** (len(down_chs) - 1)

        # Inital convolution
        self.down0 = ResidualConvBlock(img_ch, down_chs[0], small_group_size)

        # Downsample
        self.down1 = DownBlock(down_chs[0], down_chs[1], big_group_size)
        self.down2 = DownBlock(down_chs[1], down_chs[2], big_group_size)
        self.to_vec = nn.Sequential(nn.Flatten(), nn.GELU())

        # Embeddings
        self.dense_emb = nn.Sequential(
            nn.Linear(down_chs[2] * latent_image_size ** 2, down_chs[1]),
            nn.ReLU(),
            nn.Linear(down_chs[1], down_chs[1]),
            nn.ReLU(),
            nn.Linear(down_chs[1], down_chs[2] * latent_image_size ** 2),
            nn.ReLU(),
        )
        self.sinusoidaltime = SinusoidalPositionEmbedBlock(t_embed_dim)
        self.temb_1 = EmbedBlock(t_embed_dim, up_chs[0])
        self.temb_2 = EmbedBlock(t_embed_dim, up_chs[1])
        if c_embed_dim:  # notebook 04
            self.c_embed1 = EmbedBlock(c_embed_dim, up_chs[0])
            self.c_embed2 = EmbedBlock(c_embed_dim, up_chs[1])

        # Upsample
        self.up0 = nn.Sequential(
            nn.Unflatten(1, (up_chs[0], latent_image_size, latent_image_size)),
            GELUConvBlock(up_chs[0], up_chs[0], big_group_size),
        )
        self.up1 = UpBlock(up_chs[0], up_chs[1], big_group_size)
        self.up2 = UpBlock(up_chs[1], up_chs[2], big_group_size)

        # Match output channels and one last concatenation
        self.out = nn.Sequential(
            nn.Conv2d(2 * up_chs[-1], up_chs[-1], 3, 1, 1),
            nn.GroupNorm(small_group_size, up_chs[-1]),
            nn.ReLU(),
            nn.Conv2d(up_chs[-1], img_ch, 3, 1, 1),
        )

    def forward(self, x, t, c=None):
        down0 = self.down0(x)
        down1 = self.down1(down0)
        down2 = self.down2(down1)
        latent_vec = self.to_vec(down2)

        latent_vec = self.dense_emb(latent_vec)
        t = t.float() / self.T  # Convert from [0, T] to [0, 1]
        t = self.sinusoidaltime(t)
        temb_1 = self.temb_1(t)
        temb_2 = self.temb_2(t)

        up0 = self.up0(latent_vec)
        if self.c_embed_dim:
            if c is None:
                c = torch.zeros(x.shape[0], self.c_embed_dim)  # every row "no class"
            c_emb1 = self.c_embed1(c)
            c_emb2 = self.c_embed2(c)
            up1 = self.up1(c_emb1 * up0 + temb_1, down2)
            up2 = self.up2(c_emb2 * up1 + temb_2, down1)
        else:
            assert c is None, "an unconditional UNet (c_embed_dim=0) takes no c"
            up1 = self.up1(up0 + temb_1, down2)
            up2 = self.up2(up1 + temb_2, down1)
        return self.out(torch.cat((up2, down0), 1))


def count_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def main():
    info = {}
    for n in (0, N_CLASSES):
        torch.manual_seed(0)
        model = UNet(c_embed_dim=n)
        with torch.no_grad():
            out = model(torch.zeros(2, IMG_CH, IMG_SIZE, IMG_SIZE), torch.tensor([0, T - 1]))
        info[f"params_classes_{n}"] = count_params(model)
        info[f"state_dict_entries_classes_{n}"] = len(model.state_dict())
        info["output_shape"] = list(out.shape)
    info["torch"] = torch.__version__
    json.dump(info, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
