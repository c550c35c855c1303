// A stride-2 transposed convolution (kernel 3, padding 1, output padding 1), the dli02 U-Net's
// upsampler, computed as a 2x2 convolution to 4x the channels followed by a pixel shuffle
// ("sub-pixel convolution", Shi et al. 2016). Same values, but it runs on the fast convolution
// path: libtorch's CPU transposed convolution is an im2col + GEMM slow path (DESIGN.md: about a third
// of PyTorch's time on this model). Gradients flow to the original (Cin, Cout, 3, 3) weight.
//
// Derivation: output o = 2i - 1 + k for input i and tap k. For output row 2m + a (a in {0, 1}) and
// input row m + dy (dy in {0, 1}), the tap is k = a + 1 - 2 dy when 0 <= k <= 2 and none otherwise.
import { type Tensor, conv2d, pad, pixelShuffle, stack, zeros, tidy, ArgumentError } from '../tensor/index.js';

const TAP = (a: number, d: number): number => a + 1 - 2 * d;

/** (Cin, Cout, 3, 3) transposed-conv weight -> (4 Cout, Cin, 2, 2) sub-pixel conv weight (differentiable). */
export function subpixelWeight(w: Tensor): Tensor {
  const [cin, cout, kh, kw] = w.shape as [number, number, number, number];
  if (kh !== 3 || kw !== 3) throw new ArgumentError(`subpixelWeight: expected a 3x3 transposed-conv weight, got [${w.shape.join(', ')}]`);
  return tidy(() => {
    const zero = zeros([cout, cin], { dtype: w.dtype, device: w.device });
    const taps: Tensor[] = []; // ordered (a, b, dy, dx)
    for (const a of [0, 1]) for (const b of [0, 1]) for (const dy of [0, 1]) for (const dx of [0, 1]) {
      const ky = TAP(a, dy);
      const kx = TAP(b, dx);
      taps.push(ky < 0 || kx < 0 ? zero : w.select(2, ky).select(2, kx).transpose(0, 1)); // (Cout, Cin)
    }
    // (2, 2, 2, 2, Cout, Cin) -> (Cout, a, b, Cin, dy, dx): pixelShuffle reads channel c*4 + a*2 + b.
    return stack(taps, 0).reshape([2, 2, 2, 2, cout, cin]).permute([4, 0, 1, 5, 2, 3]).reshape([4 * cout, cin, 2, 2]);
  });
}

/** Each output channel's bias repeated for its 4 sub-pixels. */
export function subpixelBias(b: Tensor): Tensor {
  const c = b.shape[0]!;
  return tidy(() => b.unsqueeze(1).expand([c, 4]).reshape([4 * c]));
}

/** Same result as convTranspose2d(x, w, b, {stride: 2, padding: 1, outputPadding: 1}) for 3x3 w. */
export function convTranspose2dSubpixel(x: Tensor, weight: Tensor, bias: Tensor | null, precomputed?: { weight: Tensor; bias: Tensor | null }): Tensor {
  return tidy(() => {
    const k = precomputed?.weight ?? subpixelWeight(weight);
    const kb = precomputed ? precomputed.bias : bias ? subpixelBias(bias) : null;
    const padded = pad(x, [0, 1, 0, 1]); // (B, Cin, H+1, W+1): the taps at m+1 read zeros past the edge
    return pixelShuffle(conv2d(padded, k, kb), 2); // (B, 4 Cout, H, W) -> (B, Cout, 2H, 2W)
  });
}
