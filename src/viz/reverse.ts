// Pictures of the reverse process (seeds/001 "reverse diffusion", seeds/000 Q1 and Q7): x_t beside
// the predicted x_0 at every step, as a PNG of evenly spaced steps and as GIF frames; a classifier-free
// guidance sweep (class by w); one x_T taken through several samplers and step counts.
import { type Tensor, Generator, randn, tidy, keep, ArgumentError } from '../tensor/index.js';
import { sample, type SamplerOptions, type SamplerName, SAMPLERS, defaultSteps } from '../samplers/index.js';
import type { Image8 } from '../io/png.js';
import { makeGrid, type GridOptions } from './grid.js';
import { evenlySpaced } from './forward.js';

export type ReverseSampling = Omit<SamplerOptions, 'onStep' | 'xT' | 'batchSize' | 'generator'>;

/** What one run of a sampler went through: per step, its input x_t and the x0_hat predicted from it. */
export interface ReverseRecord {
  shape: [number, number, number, number];
  /** The timestep of each step (descending). */
  t: number[];
  /** x_t fed to each step (N*C*H*W values; x_T first). */
  x: Float32Array[];
  /** x0_hat predicted at each step (after the sampler's clipping). */
  x0: Float32Array[];
  /** The sampler's output. */
  final: Float32Array;
}

const data = (x: Tensor): Float32Array => Float32Array.from(x.float().dataSync() as Float32Array);

/** Runs one sampler from x_T ~ N(0, I) (drawn from `seed`), recording x_t and x0_hat at every step. */
export function recordReverse(o: ReverseSampling, seed: number): ReverseRecord {
  const gen = new Generator(seed);
  const xT = keep(randn(o.shape, { generator: gen })); // (N, C, H, W)
  const rec: ReverseRecord = { shape: o.shape, t: [], x: [], x0: [], final: new Float32Array(0) };
  let input = data(xT);
  try {
    const out = sample({
      ...o, xT, generator: gen,
      onStep: (st) => {
        rec.t.push(st.t);
        rec.x.push(input);
        rec.x0.push(data(st.x0));
        input = data(st.x);
      },
    });
    rec.final = data(out);
    out.dispose();
  } finally {
    xT.dispose();
  }
  return rec;
}

/** Images side by side, top-aligned, `gap` pixels of `gapValue` between them (grey or the same channels). */
export function hconcat(images: Image8[], gap: number, gapValue = 255): Image8 {
  if (images.length === 0) throw new ArgumentError('hconcat: no images');
  const c = images[0]!.channels;
  if (images.some((im) => im.channels !== c)) throw new ArgumentError('hconcat: images must have the same number of channels');
  const height = Math.max(...images.map((im) => im.height));
  const width = images.reduce((w, im) => w + im.width, 0) + gap * (images.length - 1);
  const out = new Uint8Array(width * height * c).fill(gapValue);
  let x0 = 0;
  for (const im of images) {
    for (let y = 0; y < im.height; y++) out.set(im.data.subarray(y * im.width * c, (y + 1) * im.width * c), (y * width + x0) * c);
    x0 += im.width + gap;
  }
  return { width, height, channels: c, data: out };
}

/** Copies image k of each batch in `batches` into one array, in order: a grid's tiles. */
function tiles(parts: { batch: Float32Array; index: number }[], size: number): Float32Array {
  const out = new Float32Array(parts.length * size);
  parts.forEach((p, i) => out.set(p.batch.subarray(p.index * size, (p.index + 1) * size), i * size));
  return out;
}

/** The step indices a picture of `rows` rows shows: evenly spaced, first (noisiest) and last included. */
export function reverseRows(steps: number, rows: number): number[] {
  if (!Number.isInteger(rows) || rows < 1) throw new ArgumentError(`reverse: the number of rows must be a positive integer, got ${rows}`);
  return [...new Set(evenlySpaced(steps, Math.min(rows, steps)))];
}

/**
 * One row per chosen step: the N images' x_t on the left, their x0_hat on the right, a white gap
 * between; top row the noisiest step, bottom row the last.
 */
export function reversePicture(rec: ReverseRecord, stepIndices: number[], o: Omit<GridOptions, 'nrow'> = {}): Image8 {
  const [n, c, h, w] = rec.shape;
  const size = c * h * w;
  const pick = (src: Float32Array[]): Float32Array => tiles(stepIndices.flatMap((k) => Array.from({ length: n }, (_, i) => ({ batch: src[k]!, index: i }))), size);
  const scale = o.scale ?? 1;
  const left = makeGrid(pick(rec.x), n * stepIndices.length, c, h, w, { ...o, nrow: n });
  const right = makeGrid(pick(rec.x0), n * stepIndices.length, c, h, w, { ...o, nrow: n });
  return hconcat([left, right], 4 * scale);
}

/** One GIF frame per step: x_t | x0_hat of the N images, each block one row. */
export function reverseFrames(rec: ReverseRecord, o: Omit<GridOptions, 'nrow'> = {}): Image8[] {
  const [n, c, h, w] = rec.shape;
  const scale = o.scale ?? 1;
  return rec.t.map((_, k) => hconcat([makeGrid(rec.x[k]!, n, c, h, w, { ...o, nrow: n }), makeGrid(rec.x0[k]!, n, c, h, w, { ...o, nrow: n })], 4 * scale));
}

// ----------------------------------------------------------------------------------- guidance

export type GridSampling = Omit<SamplerOptions, 'onStep' | 'xT' | 'generator' | 'shape' | 'labels' | 'guidance'>;

/**
 * A classifier-free guidance sweep: row i is class classes[i], column j guidance weight weights[j];
 * every column of a row starts from the same x_T and draws the same sampler noise, so only w differs.
 * Returns the images row by row, (rows * columns) * C * H * W values.
 */
export function guidanceSweep(o: GridSampling & { shape: [number, number, number]; classes: number[]; weights: number[]; seed: number }): Float32Array {
  if (!o.numClasses) throw new ArgumentError('guidance sweep: the model is unconditional; classifier-free guidance needs a class-conditional run');
  if (o.classes.length === 0 || o.weights.length === 0) throw new ArgumentError('guidance sweep: needs at least one class and one weight');
  const [c, h, w] = o.shape;
  const k = o.classes.length;
  const xT = keep(randn([k, c, h, w], { generator: new Generator(o.seed) })); // (K, C, H, W)
  try {
    const columns = o.weights.map((g) => tidy(() => data(sample({
      ...o, shape: [k, c, h, w], xT, labels: o.classes, guidance: g, generator: new Generator(o.seed + 1),
    }))));
    const size = c * h * w;
    return tiles(o.classes.flatMap((_, i) => columns.map((col) => ({ batch: col, index: i }))), size);
  } finally {
    xT.dispose();
  }
}

// ----------------------------------------------------------------------------------- samplers

export interface SamplerSetting { sampler: SamplerName; steps: number }

/** The comparison's rows: the full DDPM chain, DDIM 50 and 20, DPM-Solver++(2M) 20 and 10 (each capped at T). */
export function defaultSamplerSettings(T: number): SamplerSetting[] {
  return [
    { sampler: 'ddpm', steps: T },
    { sampler: 'ddim', steps: Math.min(50, T) },
    { sampler: 'ddim', steps: Math.min(20, T) },
    { sampler: 'dpmpp2m', steps: Math.min(20, T) },
    { sampler: 'dpmpp2m', steps: Math.min(10, T) },
  ];
}

/** "ddpm:150,ddim:50,dpmpp2m" -> settings (steps default as `ddpm sample` does); refuses unknown samplers and bad steps. */
export function parseSamplerSettings(text: string, T: number): SamplerSetting[] {
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new ArgumentError(`--settings "${text}" has an empty item; give sampler[:steps] items separated by commas, e.g. ddpm:${T},ddim:50`);
  return items.map((item) => {
    const m = /^([a-z0-9]+)(?::(\d+))?$/.exec(item);
    if (!m || !(SAMPLERS as readonly string[]).includes(m[1]!)) throw new ArgumentError(`--settings item "${item}" is not sampler[:steps] with a sampler among ${SAMPLERS.join(', ')} (e.g. ddim:50)`);
    const sampler = m[1] as SamplerName;
    const steps = m[2] !== undefined ? Number(m[2]) : defaultSteps(sampler, T);
    if (!(steps >= 1 && steps <= T)) throw new ArgumentError(`--settings item "${item}": steps must lie in 1..${T} (the run's T), got ${steps}`);
    return { sampler, steps };
  });
}

/** One row per setting, all from the same x_T (N images) and sampler-noise seed; images row by row. */
export function samplerComparison(o: Omit<GridSampling, 'sampler' | 'steps'> & { shape: [number, number, number, number]; settings: SamplerSetting[]; seed: number; labels?: number[]; optionsFor?: (s: SamplerSetting) => Partial<SamplerOptions> }): Float32Array {
  const [n, c, h, w] = o.shape;
  const xT = keep(randn([n, c, h, w], { generator: new Generator(o.seed) })); // (N, C, H, W)
  try {
    const rows = o.settings.map((s) => tidy(() => data(sample({
      ...o, ...(o.optionsFor?.(s) ?? {}), sampler: s.sampler, steps: s.steps, shape: [n, c, h, w], xT, generator: new Generator(o.seed + 1),
      ...(o.labels ? { labels: o.labels } : {}),
    }))));
    const size = n * c * h * w;
    const out = new Float32Array(rows.length * size);
    rows.forEach((r, i) => out.set(r, i * size));
    return out;
  } finally {
    xT.dispose();
  }
}
