#!/usr/bin/env python3
"""PyTorch reference for the `ddpm` preset: a Ho et al. 2020 style U-Net written in the manner of
lucidrains' denoising-diffusion-pytorch `Unet`, sized for 28x28 Fashion-MNIST on a CPU.

What it keeps from lucidrains: module names (init_conv, time_mlp, downs.i.j, mid_block1, mid_attn,
mid_block2, ups.i.j, final_res_block, final_conv), the 7x7 init conv whose output is concatenated
before the final ResnetBlock, ResnetBlock = Block(conv3x3 -> GroupNorm -> x (scale + 1) + shift ->
SiLU) -> Block -> + res_conv (1x1 when channels change), the time MLP (sinusoidal of t itself ->
Linear -> GELU -> Linear, time_dim = 4 dim), pixel-unshuffle + 1x1 conv downsampling, nearest 2x +
conv3x3 upsampling, a skip for every ResnetBlock.
What differs: plain Conv2d (no weight standardisation), attention only at the lowest resolution and
in the middle (lucidrains adds linear attention elsewhere: here an Identity keeps the indices), the
attention pre-norm is GroupNorm(groups) without memory key/values, a configurable number of
ResnetBlocks per level, and class conditioning as c (B, num_classes) float (one-hot rows times the
drop mask; a zero row is the null label, as the course's notebook 04) -> classes_mlp (Linear ->
GELU -> Linear) added to the time embedding.

The TypeScript port is src/models/ddpm-unet.ts: same names and construction order, so
torch.manual_seed(s) gives the weights manualSeed(s) gives there.

Run:
    /usr/bin/python3 tools/reference/ddpm_unet.py
prints one JSON line with the default model's parameter counts (unconditional and 10 classes).
"""
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULTS = dict(dim=32, dim_mults=(1, 2, 2), channels=1, num_classes=0, resnet_blocks=2, groups=8,
                attn_heads=4, attn_dim_head=32)
IMG_SIZE = 28


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim, theta=10000):
        super().__init__()
        self.dim = dim
        self.theta = theta

    def forward(self, x):
        half_dim = self.dim // 2
        emb = math.log(self.theta) / (half_dim - 1)
        emb = torch.exp(torch.arange(half_dim, device=x.device) * -emb)
        emb = x[:, None] * emb[None, :]
        return torch.cat((emb.sin(), emb.cos()), dim=-1)


class PixelUnshuffleRearrange(nn.Module):
    """einops Rearrange('b c (h p1) (w p2) -> b (c p1 p2) h w', p1=2, p2=2)."""

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.view(b, c, h // 2, 2, w // 2, 2)
        return x.permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)


def Downsample(dim, dim_out):
    return nn.Sequential(PixelUnshuffleRearrange(), nn.Conv2d(dim * 4, dim_out, 1))


def Upsample(dim, dim_out):
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(dim, dim_out, 3, padding=1))


class Block(nn.Module):
    def __init__(self, dim, dim_out, groups):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, dim_out)
        self.act = nn.SiLU()

    def forward(self, x, scale_shift=None):
        x = self.proj(x)
        x = self.norm(x)
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.act(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim, dim_out, time_emb_dim, groups):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2))
        self.block1 = Block(dim, dim_out, groups)
        self.block2 = Block(dim_out, dim_out, groups)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, time_emb):
        time_emb = self.mlp(time_emb)[:, :, None, None]  # 'b c -> b c 1 1'
        scale_shift = time_emb.chunk(2, dim=1)
        h = self.block1(x, scale_shift=scale_shift)
        h = self.block2(h)
        return h + self.res_conv(x)


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head, groups):
        super().__init__()
        self.heads = heads
        self.dim_head = dim_head
        hidden_dim = dim_head * heads
        self.norm = nn.GroupNorm(groups, dim)
        self.to_qkv = nn.Conv2d(dim, hidden_dim * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden_dim, dim, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        x = self.norm(x)
        qkv = self.to_qkv(x).chunk(3, dim=1)
        # 'b (h c) x y -> b h (x y) c'
        q, k, v = (t.reshape(b, self.heads, self.dim_head, h * w).transpose(-2, -1) for t in qkv)
        # torch 1.13 has no F.scaled_dot_product_attention; the same composition as the TypeScript one
        sim = q.matmul(k.transpose(-2, -1)) * (1 / math.sqrt(self.dim_head))
        out = F.softmax(sim, dim=-1).matmul(v)  # (b, heads, hw, dim_head)
        out = out.transpose(-2, -1).reshape(b, self.heads * self.dim_head, h, w)  # 'b h (x y) d -> b (h d) x y'
        return self.to_out(out)


class Unet(nn.Module):
    def __init__(self, dim=32, dim_mults=(1, 2, 2), channels=1, num_classes=0, resnet_blocks=2, groups=8,
                 attn_heads=4, attn_dim_head=32):
        super().__init__()
        self.num_classes = num_classes
        self.init_conv = nn.Conv2d(channels, dim, 7, padding=3)
        dims = [dim, *map(lambda m: dim * m, dim_mults)]
        in_out = list(zip(dims[:-1], dims[1:]))
        time_dim = dim * 4
        self.time_mlp = nn.Sequential(SinusoidalPosEmb(dim), nn.Linear(dim, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim))
        if num_classes:
            self.classes_mlp = nn.Sequential(nn.Linear(num_classes, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim))

        def attn(d):
            return Attention(d, attn_heads, attn_dim_head, groups)

        def resnet(a, b):
            return ResnetBlock(a, b, time_dim, groups)

        last = len(in_out) - 1
        self.downs = nn.ModuleList([])
        for ind, (dim_in, dim_out) in enumerate(in_out):
            is_last = ind == last
            self.downs.append(nn.ModuleList([
                *[resnet(dim_in, dim_in) for _ in range(resnet_blocks)],
                attn(dim_in) if is_last else nn.Identity(),
                Downsample(dim_in, dim_out) if not is_last else nn.Conv2d(dim_in, dim_out, 3, padding=1),
            ]))
        mid_dim = dims[-1]
        self.mid_block1 = resnet(mid_dim, mid_dim)
        self.mid_attn = attn(mid_dim)
        self.mid_block2 = resnet(mid_dim, mid_dim)
        self.ups = nn.ModuleList([])
        for ind, (dim_in, dim_out) in enumerate(reversed(in_out)):
            is_last = ind == last
            self.ups.append(nn.ModuleList([
                *[resnet(dim_out + dim_in, dim_out) for _ in range(resnet_blocks)],
                attn(dim_out) if ind == 0 else nn.Identity(),
                Upsample(dim_out, dim_in) if not is_last else nn.Conv2d(dim_out, dim_in, 3, padding=1),
            ]))
        self.final_res_block = resnet(dim * 2, dim)
        self.final_conv = nn.Conv2d(dim, channels, 1)

    def forward(self, x, time, c=None):
        x = self.init_conv(x)
        r = x.clone()
        t = self.time_mlp(time.float())
        if self.num_classes:
            if c is None:
                c = torch.zeros(x.shape[0], self.num_classes)  # every row the null label
            t = t + self.classes_mlp(c)
        else:
            assert c is None, "an unconditional Unet (num_classes=0) takes no c"
        h = []
        for *blocks, attn, downsample in self.downs:
            for i, block in enumerate(blocks):
                x = block(x, t)
                if i == len(blocks) - 1 and not isinstance(attn, nn.Identity):
                    x = attn(x) + x
                h.append(x)
            x = downsample(x)
        x = self.mid_block1(x, t)
        x = self.mid_attn(x) + x
        x = self.mid_block2(x, t)
        for *blocks, attn, upsample in self.ups:
            for block in blocks:
                x = torch.cat((x, h.pop()), dim=1)
                x = block(x, t)
            if not isinstance(attn, nn.Identity):
                x = attn(x) + x
            x = upsample(x)
        x = torch.cat((x, r), dim=1)
        x = self.final_res_block(x, t)
        return self.final_conv(x)


def count_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def main():
    info = {}
    for n in (0, 10):
        torch.manual_seed(0)
        model = Unet(**{**DEFAULTS, "num_classes": n})
        with torch.no_grad():
            out = model(torch.zeros(2, 1, IMG_SIZE, IMG_SIZE), torch.tensor([0, 999]))
        info[f"params_classes_{n}"] = count_params(model)
        info[f"state_dict_entries_classes_{n}"] = len(model.state_dict())
        info["output_shape"] = list(out.shape)
    info["torch"] = torch.__version__
    json.dump(info, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
