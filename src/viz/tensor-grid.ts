// Sample tensors to picture grids: the one bridge from the engine to the byte-level grid code.
import type { Tensor } from '../tensor/index.js';
import { makeGrid, makeTrajectoryGrid, type GridOptions } from './grid.js';
import type { Image8 } from '../io/png.js';

/** (N, C, H, W) values in [-1, 1] to a grid image (nrow per row, nearest-upscaled by `scale`). */
export function tensorGrid(x: Tensor, opts: GridOptions = {}): Image8 {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return makeGrid(x.float().dataSync() as Float32Array, n, c, h, w, opts);
}

/** Snapshots of a batch at several steps: one row per image, one column per snapshot. */
export function tensorTrajectoryGrid(snapshots: Tensor[], opts: Omit<GridOptions, 'nrow'> = {}): Image8 {
  const [n, c, h, w] = snapshots[0]!.shape as [number, number, number, number];
  return makeTrajectoryGrid(snapshots.map((s) => s.float().dataSync() as Float32Array), n, c, h, w, opts);
}
