// The real side of every metric: the Fashion-MNIST test images, brought to the run's resolution,
// 8-bit, then through the feature network; their features and Gaussian fit cached on disk.
//
// Fairness: a sample of a 16x16 run is an 8-bit 16x16 image (a PNG, or the sampler's output rounded
// as a PNG would round it) that the feature network resizes to 28x28. The real images take the same
// road: antialiased bilinear down to 16x16 (the training transform of the run, src/data/transforms.ts),
// rounded to 8 bits, then the same resize up to 28. At 28x28 both roads are the identity.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { type Tensor, noGrad, tidy, ArgumentError } from '../tensor/index.js';
import { loadFashionMnist, locateFashionMnist, fashionMnistFile, FASHION_MNIST_FILES, FASHION_MNIST_CLASSES } from '../data/fashion-mnist.js';
import { prepareImages } from '../data/transforms.js';
import { parseSafetensors, serializeSafetensors, type RawTensor } from '../io/safetensors.js';
import { fromRaw, toRaw } from '../io/tensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { type FeatureNet, embed } from './feature-net.js';
import { type GaussianStats, gaussianStats } from './fid.js';

/** Bumped whenever what a cache file holds, or how it is computed, changes. */
export const CACHE_FORMAT = '1';

/** `$DDPM_CACHE`, else ~/.cache/ddpm-ts. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env['DDPM_CACHE'];
  return dir !== undefined && dir !== '' ? path.resolve(dir) : path.join(homedir(), '.cache', 'ddpm-ts');
}

/**
 * Rounds images in [-1, 1] to the 256 levels an 8-bit PNG holds, as src/viz/grid.ts's toUint8Image
 * writes them ((x + 1) / 2 * 255 + 0.5, truncated, in float32: torchvision's save_image, ties up) and
 * src/data/image-folder.ts reads them back (byte / 255 * 2 - 1): the same values whether samples come
 * from a run or from PNGs. The one 8-bit quantizer: scored samples, reference and evaluation images,
 * and the data of the likelihood bound all go through it.
 */
export function quantize8(x: Tensor): Tensor {
  return noGrad(() => tidy(() => x.float().clamp(-1, 1).add(1).div(2).mul(255).add(0.5).floor().div(255).mul(2).sub(1)));
}

/** uint8 (N, H, W) grey images -> (N, 1, resolution, resolution) float32 in [-1, 1], 8-bit levels. */
export function realImagesAt(pixels: Uint8Array, shape: { n: number; h: number; w: number }, resolution: number): Tensor {
  const x = prepareImages(pixels, { n: shape.n, c: 1, h: shape.h, w: shape.w }, resolution); // antialiased bilinear, as training
  if (resolution === shape.h && resolution === shape.w) return x;
  const q = quantize8(x);
  x.dispose();
  return q;
}

export interface ReferenceKey {
  dataset: 'fashion-mnist';
  split: 'test';
  resolution: number;
  /** sha256 of the feature network's weights file. */
  featureNet: string;
  /** sha256 of the split's image and label files, as read. */
  data: string;
}

export interface ReferenceStats extends GaussianStats {
  /** (N, D) float64 features of every real image. */
  features: Tensor;
  /** (N, K) float64 class probabilities of every real image. */
  probs: Tensor;
  /** (N,) true labels. */
  labels: Uint8Array;
  key: ReferenceKey;
  /** The cache file (read or written), or null without a cache. */
  cacheFile: string | null;
  fromCache: boolean;
}

export interface ReferenceOptions {
  net: FeatureNet;
  resolution: number;
  /** Fashion-MNIST folder (else $FASHION_MNIST_DIR, then Debian's). */
  dataDir?: string;
  /** Where statistics are cached; null: no cache. Default: defaultCacheDir(). */
  cacheDir?: string | null;
  batchSize?: number;
  /** Use only the first `limit` test images (tests; the cache key records the count). */
  limit?: number;
  /** Progress and cache notes (recomputing a stale file says why). */
  log?: (line: string) => void;
}

function sha256Files(files: string[]): string {
  const h = createHash('sha256');
  for (const f of files) h.update(readFileSync(f));
  return h.digest('hex');
}

export function cacheFileName(k: ReferenceKey, count?: number): string {
  const n = count === undefined ? '' : `-first${count}`;
  return `${k.dataset}-${k.split}${n}-${k.resolution}px-net${k.featureNet.slice(0, 16)}-data${k.data.slice(0, 16)}.safetensors`;
}

/** sha256 over each tensor's name, dtype, shape and bytes, in name order: catches a damaged payload. */
function contentHash(raw: Record<string, RawTensor>): string {
  const h = createHash('sha256');
  for (const name of Object.keys(raw).sort()) {
    const r = raw[name]!;
    h.update(`${name}\0${r.dtype}\0${r.shape.join(',')}\0`);
    h.update(r.data);
  }
  return h.digest('hex');
}

function metadataOf(k: ReferenceKey, count: number): Record<string, string> {
  return {
    kind: 'ddpm-ts reference statistics', format: CACHE_FORMAT, dataset: k.dataset, split: k.split,
    resolution: String(k.resolution), featureNet: k.featureNet, data: k.data, count: String(count),
  };
}

/** The cached statistics if the file holds exactly what `key` asks for, intact; else the reason it does not. */
export function readReferenceCache(file: string, key: ReferenceKey, labels: Uint8Array): Omit<ReferenceStats, 'cacheFile' | 'fromCache'> | string {
  if (!existsSync(file)) return 'no cache file yet';
  let parsed;
  try {
    parsed = parseSafetensors(readFileSync(file), file);
  } catch (e) {
    return `unreadable (${(e as Error).message})`;
  }
  const want = metadataOf(key, labels.length);
  for (const [k, v] of Object.entries(want)) {
    if (parsed.metadata[k] !== v) return `stale: ${k} is ${JSON.stringify(parsed.metadata[k] ?? null)}, expected ${JSON.stringify(v)}`;
  }
  const raw = Object.fromEntries(parsed.tensors);
  if (contentHash(raw) !== parsed.metadata.contentSha256) return 'corrupt: its tensors do not match the checksum written with them';
  const n = labels.length;
  const expect: Record<string, [string, (d: number[]) => boolean]> = {
    features: ['F32', (s) => s.length === 2 && s[0] === n],
    probs: ['F64', (s) => s.length === 2 && s[0] === n && s[1] === FASHION_MNIST_CLASSES.length],
    mu: ['F64', (s) => s.length === 1],
    sigma: ['F64', (s) => s.length === 2],
  };
  if (Object.keys(raw).sort().join() !== Object.keys(expect).sort().join()) return `corrupt: holds tensors ${Object.keys(raw).join(', ')}, expected ${Object.keys(expect).join(', ')}`;
  for (const [name, [dtype, shapeOk]] of Object.entries(expect)) {
    const r = raw[name]!;
    if (r.dtype !== dtype || !shapeOk(r.shape)) return `corrupt: ${name} is ${r.dtype} [${r.shape.join(', ')}]`;
  }
  const d = raw.features!.shape[1]!;
  if (raw.mu!.shape[0] !== d || raw.sigma!.shape.join() !== `${d},${d}`) return `corrupt: mu/sigma do not have the features' width ${d}`;
  const t = Object.fromEntries(Object.entries(raw).map(([k, r]) => [k, fromRaw(r, k, file)])) as Record<'features' | 'probs' | 'mu' | 'sigma', Tensor>;
  const finite = noGrad(() => tidy(() => Object.values(t).every((x) => Boolean(x.isfinite().all().item()))));
  if (!finite) {
    for (const x of Object.values(t)) x.dispose();
    return 'corrupt: holds NaN or infinite values';
  }
  const features = noGrad(() => tidy(() => t.features.double()));
  t.features.dispose();
  return { features, probs: t.probs, mu: t.mu, sigma: t.sigma, count: n, labels, key };
}

/**
 * Features and Gaussian fit of the Fashion-MNIST test split at `resolution`, from the cache when an
 * intact file for exactly this data, resolution and feature network is there; else computed (about
 * 5 s for the 10,000 images here) and written to the cache atomically.
 */
export function referenceStats(o: ReferenceOptions): ReferenceStats {
  if (!Number.isInteger(o.resolution) || o.resolution < 2) throw new ArgumentError(`referenceStats: resolution must be an integer >= 2, got ${o.resolution}`);
  const log = o.log ?? ((): void => {});
  const dir = locateFashionMnist(o.dataDir !== undefined ? { dir: o.dataDir } : {});
  const names = FASHION_MNIST_FILES.test;
  const files = [names.images, names.labels].map((b) => fashionMnistFile(dir, b) ?? path.join(dir, b));
  const key: ReferenceKey = { dataset: 'fashion-mnist', split: 'test', resolution: o.resolution, featureNet: o.net.sha256, data: sha256Files(files) };
  const all = loadFashionMnist('test', { dir });
  if (o.limit !== undefined && (!Number.isInteger(o.limit) || o.limit < 2)) throw new ArgumentError(`referenceStats: limit must be an integer >= 2, got ${o.limit}`);
  const limited = o.limit !== undefined && o.limit < all.count;
  const data = limited
    ? { ...all, count: o.limit!, images: all.images.subarray(0, o.limit! * all.height * all.width), labels: all.labels.subarray(0, o.limit!) }
    : all;
  const cacheDir = o.cacheDir === undefined ? defaultCacheDir() : o.cacheDir;
  const file = cacheDir === null ? null : path.join(cacheDir, cacheFileName(key, limited ? data.count : undefined));

  if (file !== null) {
    const cached = readReferenceCache(file, key, data.labels);
    if (typeof cached !== 'string') return { ...cached, cacheFile: file, fromCache: true };
    if (cached !== 'no cache file yet') log(`reference statistics ${file}: ${cached}; recomputing`);
  }
  const images = realImagesAt(data.images, { n: data.count, h: data.height, w: data.width }, o.resolution);
  let emb;
  try {
    emb = embed(o.net.net, images, o.batchSize);
  } finally {
    images.dispose();
  }
  const stats = gaussianStats(emb.features);
  if (file !== null) {
    const f32 = noGrad(() => emb.features.float()); // lossless: the network's outputs are float32
    const raw = { features: toRaw(f32, 'features'), probs: toRaw(emb.probs, 'probs'), mu: toRaw(stats.mu, 'mu'), sigma: toRaw(stats.sigma, 'sigma') };
    f32.dispose();
    try {
      mkdirSync(cacheDir!, { recursive: true });
      writeFileAtomic(file, serializeSafetensors(raw, { ...metadataOf(key, data.count), contentSha256: contentHash(raw) }, file));
    } catch (e) {
      log(`could not cache the reference statistics in ${file} (${(e as Error).message}); going on without`);
    }
  }
  return { ...stats, features: emb.features, probs: emb.probs, labels: data.labels, key, cacheFile: file, fromCache: false };
}

export function disposeReference(r: ReferenceStats): void {
  for (const t of [r.features, r.probs, r.mu, r.sigma]) t.dispose();
}
