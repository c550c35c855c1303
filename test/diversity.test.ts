// Intra-class diversity (eval/diversity.ts) against closed forms: the regular simplex, whose
// vertices are all sqrt(2) s apart; i.i.d. Gaussians, where E|x - y| = 2 sigma Gamma((D + 1) / 2) / Gamma(D / 2);
// the per-class grouping and the weighted overall ratio; and, through the shipped feature network,
// real training images scoring about 1 against the test set while one image repeated per class scores 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { type Tensor, Generator, randn, tensor, cat, tidy } from '../src/tensor/index.js';
import { meanPairwiseDistance, diversityByClass, intraClassDiversity } from '../src/eval/diversity.js';
import { loadFeatureNet, embed, realImagesAt } from '../src/eval/index.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';

const hasData = existsSync('/usr/share/datasets/fashion-mnist') || process.env.FASHION_MNIST_DIR !== undefined;

/** Gamma((d + 1) / 2) / Gamma(d / 2) for even d, exactly: Gamma(m + 1/2) = sqrt(pi) prod_{k < m} (k + 1/2), Gamma(m) = (m - 1)!. */
function gammaRatio(d: number): number {
  const m = d / 2;
  let r = Math.sqrt(Math.PI);
  for (let k = 0; k < m; k++) r *= k + 0.5;
  for (let k = 1; k < m; k++) r /= k;
  return r;
}

/** (n, k) one-hot class probabilities. */
function oneHotProbs(labels: number[], k: number): Tensor {
  const p = new Float64Array(labels.length * k);
  labels.forEach((l, i) => { p[i * k + l] = 1; });
  return tensor(p, [labels.length, k]);
}

test('mean pairwise distance: sqrt(2) s between the vertices of a scaled simplex, 2 sigma Gamma((D+1)/2)/Gamma(D/2) for i.i.d. Gaussians', () => {
  tidy(() => {
    const simplex = tensor(Float64Array.from({ length: 100 }, (_, i) => (i % 11 === 0 ? 3 : 0)), [10, 10]); // 3 I: 10 vertices of a regular simplex, edge 3 sqrt(2)
    assert.ok(Math.abs(meanPairwiseDistance(simplex) - 3 * Math.SQRT2) < 1e-12);
    const [n, d, sigma] = [1500, 16, 1.5];
    const x = randn([n, d], { generator: new Generator(7), dtype: 'float64' }).mul(sigma);
    const want = 2 * sigma * gammaRatio(d); // x - y ~ N(0, 2 sigma^2 I): |x - y| = sqrt(2) sigma chi_D
    const got = meanPairwiseDistance(x);
    // The U-statistic's standard error here is about 0.5% of the mean.
    assert.ok(Math.abs(got / want - 1) < 0.02, `got ${got}, closed form ${want}`);
    assert.throws(() => meanPairwiseDistance(x.narrow(0, 0, 1)), /needs at least 2 rows for a pair, got 1/);
    assert.throws(() => meanPairwiseDistance(x.reshape([n * d])), /expected \(n, D\) features, got shape \[24000\]/);
  });
});

test('per class and overall: same spread ~1, half the spread ~0.5, one point repeated per class 0; classes with fewer than 2 images have no figure', () => {
  tidy(() => {
    const k = 3;
    const g = new Generator(11);
    // Class c: a Gaussian cluster of spread sigma around 10 c e_0 (D = 8).
    const cluster = (c: number, m: number, sigma: number): Tensor => randn([m, 8], { generator: g, dtype: 'float64' }).mul(sigma).add(tensor(new Float64Array(8).fill(0).map((_, i) => (i === 0 ? 10 * c : 0)), [1, 8]));
    const realLabels = [...Array(400).fill(0), ...Array(400).fill(1), ...Array(400).fill(2)] as number[];
    const real = { features: cat([cluster(0, 400, 1), cluster(1, 400, 1), cluster(2, 400, 1)], 0), probs: oneHotProbs(realLabels, k) };
    // Samples: class 0 with the data's spread, class 1 with half of it, class 2 a single image.
    const genLabels = [...Array(300).fill(0), ...Array(100).fill(1), 2] as number[];
    const gen = { features: cat([cluster(0, 300, 1), cluster(1, 100, 0.5), cluster(2, 1, 1)], 0), probs: oneHotProbs(genLabels, k) };
    const d = intraClassDiversity(gen, real);
    assert.deepEqual(d.perClass.map((c) => [c.count, c.realCount]), [[300, 400], [100, 400], [1, 400]]);
    assert.ok(Math.abs(d.perClass[0]!.ratio! - 1) < 0.05, `same spread: ${d.perClass[0]!.ratio}`);
    assert.ok(Math.abs(d.perClass[1]!.ratio! - 0.5) < 0.05, `half the spread: ${d.perClass[1]!.ratio}`);
    assert.equal(d.perClass[2]!.generated, null);
    assert.equal(d.perClass[2]!.ratio, null);
    // Overall: weighted by the samples' counts (300, 100), the class without a figure left out.
    const [c0, c1] = [d.perClass[0]!, d.perClass[1]!];
    assert.ok(Math.abs(d.ratio! - (300 * c0.generated! + 100 * c1.generated!) / (300 * c0.real! + 100 * c1.real!)) < 1e-12);
    // Collapse: one point repeated in every class.
    const one = cat([0, 1, 2].map((c) => cluster(c, 1, 1).expand([50, 8])), 0);
    const collapsed = intraClassDiversity({ features: one, probs: oneHotProbs([0, 1, 2].flatMap((c) => Array(50).fill(c) as number[]), k) }, real);
    assert.ok(collapsed.ratio! < 1e-6, `collapsed: ${collapsed.ratio}`);
    assert.ok(collapsed.perClass.every((c) => c.ratio! < 1e-6));
    assert.deepEqual(diversityByClass(real.features.narrow(0, 0, 3), real.probs.narrow(0, 0, 3)).map((c) => c.count), [3, 0, 0]);
    assert.throws(() => intraClassDiversity(gen, { features: real.features, probs: real.probs.narrow(1, 0, 2) }), /samples have 3 classes and real images 2/);
  });
});

test('through the feature network: 1,000 training images score about 1 against 1,000 test images, one image repeated per class scores 0', { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
  const { net } = loadFeatureNet();
  try {
    const px = 28 * 28;
    const embedded = (pixels: Uint8Array): { features: Tensor; probs: Tensor } => {
      const x = realImagesAt(pixels, { n: pixels.length / px, h: 28, w: 28 }, 28); // (N, 1, 28, 28)
      try {
        return embed(net, x);
      } finally {
        x.dispose();
      }
    };
    const train = loadFashionMnist('train');
    const testSet = loadFashionMnist('test');
    // One training image of each class, each repeated 100 times.
    const pixels = new Uint8Array(1000 * px);
    for (let c = 0; c < 10; c++) {
      const i = train.labels.indexOf(c);
      for (let r = 0; r < 100; r++) pixels.set(train.images.subarray(i * px, (i + 1) * px), (c * 100 + r) * px);
    }
    const sets = [embedded(testSet.images.subarray(0, 1000 * px)), embedded(train.images.subarray(0, 1000 * px)), embedded(pixels)];
    try {
      const [real, other, same] = sets as [{ features: Tensor; probs: Tensor }, { features: Tensor; probs: Tensor }, { features: Tensor; probs: Tensor }];
      const fresh = intraClassDiversity(other, real);
      const collapsed = intraClassDiversity(same, real);
      assert.ok(fresh.ratio! > 0.9 && fresh.ratio! < 1.1, `training images against test images: ${fresh.ratio}`);
      assert.ok(collapsed.ratio! < 1e-3, `one image per class: ${collapsed.ratio}`);
      assert.equal(collapsed.perClass.reduce((s, c) => s + c.count, 0), 1000);
    } finally {
      for (const e of sets) { e.features.dispose(); e.probs.dispose(); }
    }
  } finally {
    net.dispose();
  }
});
