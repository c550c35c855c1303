import type { Image8 } from '../io/png.js';

export interface GridOptions {
  /** Images per row (torchvision make_grid's nrow), default 8. */
  nrow?: number;
  /** Pixels between and around images before scaling, default 2 as in make_grid. */
  padding?: number;
  /** Padding value in data units (like make_grid's pad_value); default range[0], i.e. black. */
  padValue?: number;
  /** Data range mapped to 0..255, default [-1, 1] (DDPM's image scaling, Ho et al. 2020 sec. 3.3). */
  range?: [number, number];
  /** Integer nearest-neighbour upscaling of the finished grid, so 16x16 samples are visible. */
  scale?: number;
}

function check(cond: boolean, msg: string): void {
  if (!cond) throw new Error(msg);
}

function checkShape(where: string, len: number, n: number, c: number, h: number, w: number): void {
  for (const [k, v] of Object.entries({ n, c, h, w })) {
    check(Number.isInteger(v) && v >= 1, `${where}: ${k} must be a positive integer, got ${v}`);
  }
  check(c === 1 || c === 3 || c === 4, `${where}: c must be 1, 3 or 4 channels, got ${c}`);
  check(
    len === n * c * h * w,
    `${where}: array has ${len} values, expected n*c*h*w = ${n}*${c}*${h}*${w} = ${n * c * h * w}`,
  );
}

/**
 * One value to a byte the way torchvision does it (make_grid normalize with value_range, then
 * save_image's mul(255).add_(0.5).clamp_(0, 255).to(uint8)), in float32 so bytes match torch's.
 */
function toByte(v: number, lo: number, span: number): number {
  const f = Math.fround;
  const u = f(f(Math.min(Math.max(v, lo), lo + span) - lo) / span);
  return Math.trunc(Math.min(Math.max(f(f(u * 255) + 0.5), 0), 255));
}

function rangeOf(range: [number, number], where: string): { lo: number; span: number } {
  const [lo, hi] = range;
  check(
    Number.isFinite(lo) && Number.isFinite(hi) && hi > lo,
    `${where}: range must be finite [lo, hi] with hi > lo, got [${lo}, ${hi}]`,
  );
  return { lo, span: Math.fround(hi - lo) };
}

/** CHW floats to an interleaved 8-bit image; non-finite values throw rather than save as black. */
export function toUint8Image(
  x: Float32Array,
  c: number,
  h: number,
  w: number,
  range: [number, number] = [-1, 1],
): Image8 {
  checkShape('toUint8Image', x.length, 1, c, h, w);
  return toBytes(x, 0, c, h, w, rangeOf(range, 'toUint8Image'), 'toUint8Image', '');
}

function toBytes(
  x: Float32Array,
  offset: number,
  c: number,
  h: number,
  w: number,
  r: { lo: number; span: number },
  where: string,
  imageLabel: string,
): Image8 {
  const data = new Uint8Array(h * w * c);
  for (let ch = 0; ch < c; ch++) {
    for (let p = 0; p < h * w; p++) {
      const i = offset + ch * h * w + p;
      const v = x[i];
      if (!Number.isFinite(v)) {
        throw new Error(
          `${where}: value ${v} at index ${i} (${imageLabel}channel ${ch}, y ${Math.floor(p / w)}, ` +
            `x ${p % w}) is not finite; hint: the sampler diverged, check the schedule and the model`,
        );
      }
      data[p * c + ch] = toByte(v, r.lo, r.span);
    }
  }
  return { width: w, height: h, channels: c as 1 | 3 | 4, data };
}

/**
 * Tiles an (n, c, h, w) batch like torchvision.utils.make_grid: nrow images per row, padding between
 * and around, a lone image returned unpadded. Grey stays one channel (make_grid repeats it to three;
 * the pixels are the same and the PNG is a third of the size).
 */
export function makeGrid(
  batch: Float32Array,
  n: number,
  c: number,
  h: number,
  w: number,
  opts: GridOptions = {},
): Image8 {
  checkShape('makeGrid', batch.length, n, c, h, w);
  const range = opts.range ?? [-1, 1];
  const r = rangeOf(range, 'makeGrid');
  const nrow = opts.nrow ?? 8;
  const padding = n === 1 ? 0 : (opts.padding ?? 2);
  const scale = opts.scale ?? 1;
  check(Number.isInteger(nrow) && nrow >= 1, `makeGrid: nrow must be a positive integer, got ${nrow}`);
  check(Number.isInteger(padding) && padding >= 0, `makeGrid: padding must be an integer >= 0, got ${padding}`);
  check(Number.isInteger(scale) && scale >= 1, `makeGrid: scale must be an integer >= 1, got ${scale}`);
  const padValue = opts.padValue ?? range[0];
  check(Number.isFinite(padValue), `makeGrid: padValue must be finite, got ${padValue}`);

  const xmaps = Math.min(nrow, n);
  const ymaps = Math.ceil(n / xmaps);
  const cellW = w + padding;
  const cellH = h + padding;
  const gw = cellW * xmaps + padding;
  const gh = cellH * ymaps + padding;
  const data = new Uint8Array(gw * gh * c).fill(toByte(padValue, r.lo, r.span));
  for (let k = 0; k < n; k++) {
    const img = toBytes(batch, k * c * h * w, c, h, w, r, 'makeGrid', `image ${k}, `);
    const x0 = (k % xmaps) * cellW + padding;
    const y0 = Math.floor(k / xmaps) * cellH + padding;
    for (let y = 0; y < h; y++) {
      data.set(img.data.subarray(y * w * c, (y + 1) * w * c), ((y0 + y) * gw + x0) * c);
    }
  }
  return upscale({ width: gw, height: gh, channels: c as 1 | 3 | 4, data }, scale);
}

/** Nearest-neighbour integer upscaling: every pixel becomes a scale x scale block. */
export function upscale(img: Image8, scale: number): Image8 {
  if (scale === 1) return img;
  const { width, height, channels: c, data } = img;
  const W = width * scale;
  const out = new Uint8Array(W * height * scale * c);
  const row = new Uint8Array(W * c);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const px = data.subarray((y * width + x) * c, (y * width + x + 1) * c);
      for (let s = 0; s < scale; s++) row.set(px, (x * scale + s) * c);
    }
    for (let s = 0; s < scale; s++) out.set(row, (y * scale + s) * W * c);
  }
  return { width: W, height: height * scale, channels: c, data: out };
}

/**
 * Timesteps at which to snapshot x_t during reverse sampling t = T-1..0, every floor(T/ncols) steps
 * as the course notebook's sample_images does; descending, ends at 0, at most ncols of them.
 */
export function trajectorySteps(T: number, ncols: number): number[] {
  check(Number.isInteger(T) && T >= 1, `trajectorySteps: T must be a positive integer, got ${T}`);
  check(Number.isInteger(ncols) && ncols >= 1, `trajectorySteps: ncols must be a positive integer, got ${ncols}`);
  const stride = Math.max(1, Math.floor(T / ncols));
  const steps: number[] = [];
  for (let t = T - 1; t >= 0; t--) if (t % stride === 0) steps.push(t);
  return steps.slice(-ncols);
}

/**
 * Trajectory grid: snapshots[j] is the whole (n, c, h, w) batch at the j-th recorded step; row i
 * shows image i across the steps, left (noise) to right (sample).
 */
export function makeTrajectoryGrid(
  snapshots: Float32Array[],
  n: number,
  c: number,
  h: number,
  w: number,
  opts: Omit<GridOptions, 'nrow'> = {},
): Image8 {
  check(snapshots.length >= 1, 'makeTrajectoryGrid: snapshots is empty, expected at least one batch');
  const size = c * h * w;
  snapshots.forEach((s, j) =>
    check(
      s.length === n * size,
      `makeTrajectoryGrid: snapshot ${j} has ${s.length} values, expected n*c*h*w = ${n * size}`,
    ),
  );
  const cols = snapshots.length;
  const tiled = new Float32Array(n * cols * size);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < cols; j++) {
      tiled.set(snapshots[j].subarray(i * size, (i + 1) * size), (i * cols + j) * size);
    }
  }
  return makeGrid(tiled, n * cols, c, h, w, { ...opts, nrow: cols });
}
