// The notebook's transforms (seeds/001, `load_transformed_fashionMNIST`): Resize((16, 16)) with
// antialiased bilinear filtering, ToTensor (to [0, 1]), RandomHorizontalFlip, then t * 2 - 1.
import {
  type Tensor, type Generator, type BatchShare, drawShare, tensor, interpolate, cat, rand, where, tidy, noGrad, ArgumentError,
} from '../tensor/index.js';

/**
 * uint8 images (N, H, W) or (N, C, H, W) -> float32 (N, C, size, size) scaled to [-1, 1].
 * Resizing happens once, up front, in chunks so memory stays bounded.
 */
export function prepareImages(pixels: Uint8Array, shape: { n: number; c: number; h: number; w: number }, size: number): Tensor {
  const { n, c, h, w } = shape;
  if (pixels.length !== n * c * h * w) {
    throw new ArgumentError(`prepareImages: ${pixels.length} bytes do not hold ${n} images of ${c}x${h}x${w}`);
  }
  if (!Number.isInteger(size) || size < 1) throw new ArgumentError(`prepareImages: image size must be a positive integer, got ${size}`);
  const chunk = 4096;
  const parts: Tensor[] = [];
  noGrad(() => {
    for (let start = 0; start < n; start += chunk) {
      const m = Math.min(chunk, n - start);
      parts.push(tidy(() => {
        const u8 = tensor(pixels.subarray(start * c * h * w, (start + m) * c * h * w), [m, c, h, w]); // (m, C, H, W) uint8
        let x = u8.float().div(255); // ToTensor: [0, 1]
        if (h !== size || w !== size) x = interpolate(x, { size: [size, size], mode: 'bilinear', antialias: true });
        return x.mul(2).sub(1); // [-1, 1]
      }));
    }
  });
  if (parts.length === 1) return parts[0]!;
  const all = cat(parts, 0);
  for (const p of parts) p.dispose();
  return all;
}

/** Flips each image left-right with probability p, drawing from the generator. */
export function randomHorizontalFlip(x: Tensor, generator: Generator, p = 0.5, share?: BatchShare): Tensor {
  return tidy(() => {
    const b = x.shape[0]!;
    const mask = drawShare(share, b, (n) => rand([n], { generator })).lt(p).reshape([b, 1, 1, 1]); // (B, 1, 1, 1) bool
    return where(mask, x.flip([3]), x);
  });
}

