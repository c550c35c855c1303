// Interpolation in DDIM's latent space (Song, Meng & Ermon 2021, section 5.3): two x_T drawn from two
// seeds, the great circle between them (slerp.ts), and DDIM with eta 0 from every point on it. With
// eta 0 the sampler is an ODE solver, a deterministic map x_T -> x_0, so neighbouring latents give
// neighbouring images and the path is a morph; with any noise in the steps (eta > 0, ddpm, pc) each
// frame would be a fresh random draw and the path would mean nothing.
import { type Tensor, Generator, randn, tensor, tidy, ArgumentError } from '../tensor/index.js';
import type { SamplerName } from './options.js';
import { type SamplerOptions } from './sample.js';
import { sample } from './libtorch.js';
import { frameAlphas, slerpWeights, slerp } from './slerp.js';

export interface LatentInterpolationOptions extends Omit<SamplerOptions, 'shape' | 'sampler' | 'eta' | 'generator' | 'xT' | 'labels'> {
  /** (C, H, W) of one image. */
  imageShape: [number, number, number];
  /** The seeds of the two ends: each x_T is the first image's noise of a plain sampling with that seed. */
  seeds: [number, number];
  /** Images along the path, both ends included (>= 2). */
  frames: number;
  /** Only ddim is accepted; present so a caller's choice is refused in words, not ignored. */
  sampler?: SamplerName;
  /** Only 0 is accepted (as sampler). */
  eta?: number;
  /** Class-conditional models: the class of every frame. */
  label?: number;
}

export interface Interpolation {
  /** (frames, C, H, W): x_0 of every point on the path, alpha = i / (frames - 1). */
  images: Tensor;
  alphas: number[];
  /** (frames * C * H * W) the x_T of every frame, the points on the great circle. */
  latents: Float32Array;
  /** The angle between the two x_T, radians (close to pi / 2 for independent Gaussian latents). */
  theta: number;
}

/** Refuses what makes the path meaningless: a sampler with noise in its steps. */
export function checkInterpolationSampler(sampler: SamplerName | undefined, eta: number | undefined, where = 'interpolate'): void {
  if (sampler !== undefined && sampler !== 'ddim') {
    throw new ArgumentError(`${where}: interpolation needs the ddim sampler with eta 0, got ${sampler}; only a deterministic map from x_T to x_0 turns nearby latents into nearby images (${sampler} adds fresh noise at every step)`);
  }
  if (eta !== undefined && eta !== 0) {
    throw new ArgumentError(`${where}: interpolation needs eta 0, got eta ${eta}; with eta > 0 DDIM adds fresh noise at every step, so the frames would not follow the path between the two latents`);
  }
}

/**
 * x_T (1, C, H, W) as a plain sampling with `seed` draws its first image: the first C*H*W normals
 * of libtorch's generator seeded with it (sample() draws a batch's x_T first, in one randn).
 */
export function latentFromSeed(seed: number, [c, h, w]: [number, number, number]): Tensor {
  return randn([1, c, h, w], { generator: new Generator(seed) });
}

/** DDIM (eta 0) from every point of the slerp between the latents of two seeds. */
export function interpolateLatents(o: LatentInterpolationOptions): Interpolation {
  checkInterpolationSampler(o.sampler, o.eta);
  const [seedA, seedB] = o.seeds;
  if (seedA === seedB) throw new ArgumentError(`interpolate: both seeds are ${seedA}; the path from a latent to itself is one image, give two different seeds`);
  const alphas = frameAlphas(o.frames);
  const [c, h, w] = o.imageShape;
  const [a, b] = [seedA, seedB].map((s) => tidy(() => Float32Array.from(latentFromSeed(s, o.imageShape).dataSync() as Float32Array)));
  const { theta } = slerpWeights(a!, b!, alphas);
  const latents = slerp(a!, b!, alphas);
  const xT = tensor(latents, [o.frames, c, h, w]); // (F, C, H, W)
  const { imageShape: _s, seeds: _z, frames: _f, label, sampler: _m, eta: _e, ...rest } = o;
  try {
    const images = sample({
      ...rest, sampler: 'ddim', eta: 0, shape: [o.frames, c, h, w], xT,
      ...(label !== undefined ? { labels: new Array<number>(o.frames).fill(label) } : {}),
    });
    return { images, alphas, latents, theta };
  } finally {
    xT.dispose();
  }
}
