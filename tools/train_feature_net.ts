// Trains the Fashion-MNIST feature network of `ddpm eval` (src/models/fmnist-classifier.ts) with this
// project's own library and writes assets/fmnist-features.safetensors. Seeded: the same seed, thread
// count and libtorch give the same weights.
//
//   nice -n 19 node dist/tools/train_feature_net.js [--epochs 10] [--seed 0] [--out FILE] [--threads 1] [--limit N]
//
// Adam (lr 1e-3, cosine decay to 0), batch 128, the 60,000 training images with random horizontal
// flips (as the diffusion presets train) and, for a quarter of the images, a round trip through
// 16x16 (antialiased down, bilinear up): dli02/dli03 samples are 16x16 and are scored after the same
// round trip, so the features should still separate the classes there. Finally the feature layer is
// rescaled (exactly, by a power of two) to a mean square of about 1 per dimension: see normalizeFeatureScale.
import { parseArgs } from 'node:util';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Tensor, Generator, manualSeed, tensor, tidy, noGrad, rand, where, interpolate, crossEntropy,
  configureRuntime, libtorchVersion,
} from '../src/tensor/index.js';
import { Adam } from '../src/nn/index.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { prepareImages } from '../src/data/transforms.js';
import { BatchLoader } from '../src/data/loader.js';
import { serializeTensors } from '../src/io/tensors.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { FmnistClassifier, FMNIST_CLASSIFIER_DEFAULTS } from '../src/models/fmnist-classifier.js';
import { embed } from '../src/eval/feature-net.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values: a } = parseArgs({
  options: {
    epochs: { type: 'string', default: '10' },
    seed: { type: 'string', default: '0' },
    lr: { type: 'string', default: '1e-3' },
    'batch-size': { type: 'string', default: '128' },
    threads: { type: 'string', default: '1' },
    data: { type: 'string' },
    limit: { type: 'string' },
    out: { type: 'string', default: path.join(ROOT, 'assets', 'fmnist-features.safetensors') },
  },
});
const int = (name: string, v: string | undefined, min: number): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got "${v}"`);
  return n;
};
const epochs = int('epochs', a.epochs, 1);
const seed = int('seed', a.seed, 0);
const batchSize = int('batch-size', a['batch-size'], 1);
const threads = int('threads', a.threads, 1);
const limit = a.limit === undefined ? null : int('limit', a.limit, batchSize);
const lr = Number(a.lr);
if (!(lr > 0)) throw new Error(`--lr must be a positive number, got "${a.lr}"`);

configureRuntime({ threads, blasThreads: 1 }); // the `ddpm` command's settings: one OpenBLAS thread trains fastest here
const dataOpts = a.data !== undefined ? { dir: a.data } : {};

function load(split: 'train' | 'test', first: number | null = null): { x: Tensor; y: Tensor; labels: Uint8Array } {
  const all = loadFashionMnist(split, dataOpts);
  const n = first === null ? all.count : Math.min(first, all.count);
  const d = { ...all, count: n, images: all.images.subarray(0, n * all.height * all.width), labels: all.labels.subarray(0, n) };
  const x = prepareImages(d.images, { n: d.count, c: 1, h: d.height, w: d.width }, 28); // (N, 1, 28, 28) in [-1, 1]
  const y = tensor(BigInt64Array.from(d.labels, (l) => BigInt(l)), [d.count]); // (N,) int64
  return { x, y, labels: d.labels };
}

/** With probability p per image: down to 16x16 (antialiased) and back up to 28, as 16x16 samples are scored. */
function roundTrip16(x: Tensor, gen: Generator, p = 0.25): Tensor {
  return tidy(() => {
    const b = x.shape[0]!;
    const small = interpolate(interpolate(x, { size: [16, 16], mode: 'bilinear', antialias: true }), { size: [28, 28], mode: 'bilinear', antialias: true });
    const mask = rand([b], { generator: gen }).lt(p).reshape([b, 1, 1, 1]); // (B, 1, 1, 1) bool
    return where(mask, small, x);
  });
}

function accuracy(net: FmnistClassifier, x: Tensor, labels: Uint8Array): number {
  const { features, probs } = embed(net, x);
  const pred = noGrad(() => tidy(() => probs.argmax(1).toArray()));
  features.dispose();
  probs.dispose();
  let right = 0;
  pred.forEach((p, i) => { if (p === labels[i]) right++; });
  return right / labels.length;
}

/**
 * Rescales the feature layer so its outputs have a mean square of about 1 per dimension on the
 * training images, returning the divisor. KID's kernel (x.y / d + 1)^3 (Binkowski et al. 2018) is
 * meant for O(1) features such as Inception's pool3 averages; these ReLU features come out of
 * training with a mean square near 15, where x.y / d is about 4 and the cubic kernel's estimates
 * swing wildly. The divisor is a power of two and ReLU is positively homogeneous, so dividing the
 * feature layer's weight and bias by it and multiplying the head's weight by it is exact in float32:
 * the logits, and so the accuracy, do not change by a single bit.
 */
function normalizeFeatureScale(m: FmnistClassifier, x: Tensor): number {
  const { features, probs } = embed(m, x);
  const meanSquare = noGrad(() => tidy(() => features.square().mean().item()));
  features.dispose();
  probs.dispose();
  const scale = 2 ** Math.round(Math.log2(Math.sqrt(meanSquare)));
  noGrad(() => {
    m.feature.weight.mul_(1 / scale);
    m.feature.bias!.mul_(1 / scale);
    m.head.weight.mul_(scale);
  });
  process.stderr.write(`feature mean square ${meanSquare.toFixed(3)} on the training images; feature layer divided by ${scale}\n`);
  return scale;
}

const t0 = performance.now();
manualSeed(seed); // initialisation and dropout draw from the default generator
const net = new FmnistClassifier(FMNIST_CLASSIFIER_DEFAULTS);
const train = load('train', limit); // --limit: a quick check of reproducibility, not for the shipped weights
const test = load('test');
const loader = new BatchLoader(train.x, train.y, { batchSize, seed, flip: true, dropLast: true });
const augGen = new Generator(seed + 1);
const opt = new Adam(net.namedParameters(), { lr });
const total = epochs * loader.batchesPerEpoch;
let step = 0;
net.train();
for (let epoch = 0; epoch < epochs; epoch++) {
  let sum = 0;
  let count = 0;
  const te = performance.now();
  for (let batch = loader.next(); batch !== null; batch = loader.next()) {
    opt.lr = lr * 0.5 * (1 + Math.cos(Math.PI * step / total)); // cosine decay (Loshchilov & Hutter 2017), no restarts
    const loss = tidy(() => {
      opt.zeroGrad();
      const l = crossEntropy(net.forward(roundTrip16(batch.x, augGen)), batch.y!);
      l.backward();
      opt.step();
      return l.item();
    });
    batch.x.dispose();
    batch.y!.dispose();
    sum += loss;
    count++;
    step++;
  }
  process.stderr.write(`epoch ${epoch + 1}/${epochs}: loss ${(sum / count).toFixed(4)} (${((performance.now() - te) / 1000).toFixed(0)} s)\n`);
}
const trainSeconds = (performance.now() - t0) / 1000;
net.eval();
const featureScale = normalizeFeatureScale(net, train.x);
const acc = accuracy(net, test.x, test.labels);
const x16 = noGrad(() => tidy(() => interpolate(test.x, { size: [16, 16], mode: 'bilinear', antialias: true })));
const acc16 = accuracy(net, x16, test.labels);
process.stderr.write(`test accuracy ${(100 * acc).toFixed(2)}% at 28x28, ${(100 * acc16).toFixed(2)}% at 16x16 (resized to 28); trained in ${trainSeconds.toFixed(0)} s\n`);

mkdirSync(path.dirname(a.out!), { recursive: true });
writeFileAtomic(a.out!, serializeTensors(net.stateDict(), {
  format: 'pt',
  producer: 'ddpm-ts tools/train_feature_net.ts',
  config: JSON.stringify(net.config),
  seed: String(seed),
  epochs: String(epochs),
  trainImages: String(train.labels.length),
  batchSize: String(batchSize),
  lr: String(lr),
  threads: String(threads),
  libtorch: libtorchVersion(),
  testAccuracy: acc.toFixed(4),
  testAccuracy16: acc16.toFixed(4),
  featureScale: String(featureScale),
  // No timings: the same seed and threads then write the same bytes, and so the same sha256 (the cache key).
}));
process.stderr.write(`wrote ${a.out}\n`);
