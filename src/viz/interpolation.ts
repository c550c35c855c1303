// The pictures of an interpolation (samplers/interpolate.ts): the frames side by side as one strip,
// and the frames as an animation that walks from seed A to seed B and back, so it loops without a jump.
import type { Image8 } from '../io/png.js';
import { makeGrid } from './grid.js';

/** (F, C, H, W) values in [-1, 1] as one row, seed A on the left. */
export function interpolationStrip(data: Float32Array, [f, c, h, w]: [number, number, number, number], scale: number): Image8 {
  return makeGrid(data, f, c, h, w, { nrow: f, scale });
}

/** GIF frames A, ..., B, ..., A (the ends once each): 2F - 2 images. */
export function interpolationFrames(data: Float32Array, [f, c, h, w]: [number, number, number, number], scale: number): Image8[] {
  const size = c * h * w;
  const one = Array.from({ length: f }, (_, i) => makeGrid(data.subarray(i * size, (i + 1) * size), 1, c, h, w, { nrow: 1, scale }));
  return [...one, ...one.slice(1, -1).reverse()];
}
