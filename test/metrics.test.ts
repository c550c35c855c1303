// src/eval: FID, KID, precision/recall and the Inception Score against numpy on fixed feature arrays
// (fixtures: tools/golden/make_metric_fixtures.py), then the shipped feature network on the real
// test set: its accuracy, FID of two halves of the test set against FID of pure noise, and the
// reference-statistics cache refusing stale and damaged files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Tensor, Generator, tensor, rand, cat, noGrad, tidy, ArgumentError } from '../src/tensor/index.js';
import { loadTensors } from '../src/io/tensors.js';
import { parseSafetensors, serializeSafetensors } from '../src/io/safetensors.js';
import { toUint8Image } from '../src/viz/grid.js';
import {
  fid, mmd2Unbiased, kidFromSubsets, kid, precisionRecall, inceptionScore, classHistogram, quantize8,
  loadFeatureNet, referenceStats, disposeReference, readReferenceCache, embed,
} from '../src/eval/index.js';
import { fixture } from './helpers.js';

const golden = loadTensors(fixture('metrics_golden.safetensors'));
const expected = JSON.parse(golden.metadata.expected!) as {
  fid: Record<'a_b' | 'b_a' | 'a_c' | 'a_a', number>;
  kid_subsets: { mean: number; std: number };
  kid_all_pairs: number;
  pr: Record<'a_b' | 'a_a300', { precision: number; recall: number }>;
  is: Record<'p250' | 'p253', { mean: number; std: number }>;
};
const g = (k: string): Tensor => {
  const t = golden.tensors.get(k);
  assert.ok(t, `fixture has no tensor ${k}`);
  return t;
};
const a = g('feat/a');
const b = g('feat/b');

/** |actual - numpy| <= atol + rtol |numpy|. */
function close(what: string, actual: number, numpy: number, rtol = 1e-6, atol = 0): void {
  assert.ok(Math.abs(actual - numpy) <= atol + rtol * Math.abs(numpy), `${what}: ${actual} vs numpy ${numpy} (rtol ${rtol}, atol ${atol})`);
}

test('FID equals numpy (eigvals of S1 S2 and the symmetric eigh form) to 1e-6, also for a rank-deficient covariance and swapped sets', () => {
  close('FID(a, b)', fid(a, b), expected.fid.a_b);
  close('FID(b, a)', fid(b, a), expected.fid.b_a);
  close('FID(a, c), c has 20 rows in 32 dims', fid(a, g('feat/c')), expected.fid.a_c);
  close('FID(a, a)', fid(a, a), expected.fid.a_a, 0, 1e-9);
  assert.ok(fid(a, a) >= 0, 'a distance is never negative');
});

test('KID equals clean-fid\'s kernel_distance over the fixture\'s subsets, and the all-pairs unbiased MMD^2, to 1e-6', () => {
  const subsets = Array.from({ length: 5 }, (_, i) => ({ x: g(`kid/${i}/x`).toArray(), y: g(`kid/${i}/y`).toArray() }));
  const r = kidFromSubsets(a, b, subsets);
  close('KID mean', r.mean, expected.kid_subsets.mean);
  close('KID std', r.std, expected.kid_subsets.std);
  assert.equal(r.subsets, 5);
  assert.equal(r.subsetSize, 100);
  close('MMD^2(a[:300], b)', tidy(() => mmd2Unbiased(a.narrow(0, 0, 300), b)), expected.kid_all_pairs);
  // Seeded draws: the same seed gives the same subsets; min(1000, n) rows per subset.
  const k1 = kid(a, b, { generator: new Generator(3), subsets: 4 });
  const k2 = kid(a, b, { generator: new Generator(3), subsets: 4 });
  assert.deepEqual(k1, k2);
  assert.equal(k1.subsetSize, 300);
});

test('precision and recall (k = 5) equal the reference computation exactly', () => {
  const r = precisionRecall(a, b, 5);
  assert.deepEqual({ precision: r.precision, recall: r.recall }, expected.pr.a_b);
  const mixed = tidy(() => cat([a.narrow(0, 0, 150), b.narrow(0, 0, 150)], 0));
  const r2 = precisionRecall(a, mixed, 5);
  close('precision (half the samples are real points)', r2.precision, expected.pr.a_a300.precision, 1e-12);
  close('recall (half the samples are real points)', r2.recall, expected.pr.a_a300.recall, 1e-12);
  const same = precisionRecall(a, a, 5);
  assert.deepEqual([same.precision, same.recall], [1, 1], 'a set covers itself');
});

test('the Inception-Score analogue equals openai/improved-gan\'s formula to 1e-6 (10 splits, also uneven ones)', () => {
  for (const k of ['p250', 'p253'] as const) {
    const r = inceptionScore(g(`is/${k}`));
    close(`IS ${k} mean`, r.mean, expected.is[k].mean);
    close(`IS ${k} std`, r.std, expected.is[k].std);
    assert.equal(r.splits, 10);
  }
  // One-hot predictions spread evenly over 10 classes score the maximum, 10; a single class scores 1.
  const even = tensor(Float64Array.from({ length: 100 * 10 }, (_, i) => (Math.floor(i / 10) % 10 === i % 10 ? 1 : 0)), [100, 10]);
  close('IS of even one-hot predictions', inceptionScore(even).mean, 10, 1e-12);
  const single = tensor(Float64Array.from({ length: 100 * 10 }, (_, i) => (i % 10 === 3 ? 1 : 0)), [100, 10]);
  close('IS of one class', inceptionScore(single).mean, 1, 1e-12);
  assert.deepEqual(classHistogram(even), new Array<number>(10).fill(10));
  assert.deepEqual(classHistogram(single), [0, 0, 0, 100, 0, 0, 0, 0, 0, 0]);
});

test('metrics refuse inputs they cannot score, saying what was wrong', () => {
  assert.throws(() => fid(a.narrow(0, 0, 1), b), /at least 2 feature rows, got 1/);
  assert.throws(() => fid(a, tensor([1, 2, 3, 4], [2, 2], { dtype: 'float64' })), /mu \[2\].*expected \[32\]|expected \[32\]/);
  assert.throws(() => precisionRecall(a, b.narrow(0, 0, 5), 5), ArgumentError);
  assert.throws(() => precisionRecall(a, b.narrow(0, 0, 5), 5), /more than k = 5 generated samples, got 5/);
  assert.throws(() => inceptionScore(g('is/p250').narrow(0, 0, 9)), /splits must be an integer in \[1, 9\]/);
  assert.throws(() => mmd2Unbiased(a.narrow(0, 0, 10), b.narrow(0, 0, 11)), /same number of rows/);
  assert.throws(() => kidFromSubsets(a, b, []), /at least one subset/);
});

test('quantize8 gives the values of an 8-bit PNG written by toUint8Image and read back as image folders read it', () => {
  const x = noGrad(() => tidy(() => rand([3, 1, 8, 8], { generator: new Generator(5) }).mul(2.4).sub(1.2))); // beyond [-1, 1] too
  const q = quantize8(x).dataSync() as Float32Array;
  const bytes = toUint8Image(x.dataSync() as Float32Array, 1, 24, 8).data;
  const back = Float32Array.from(bytes, (v) => Math.fround(Math.fround(Math.fround(v / 255) * 2) - 1));
  assert.deepEqual(Array.from(q), Array.from(back));
});

// ---------------------------------------------------------------------------------------------------
// The shipped network on the real test set.

const hasData = existsSync('/usr/share/datasets/fashion-mnist') || process.env.FASHION_MNIST_DIR !== undefined;
const skip = !hasData && 'Fashion-MNIST not installed';

test('the shipped feature network classifies the Fashion-MNIST test set at >= 92%; FID of two halves is small, FID against noise large', { skip }, () => {
  const net = loadFeatureNet();
  try {
    const t0 = performance.now();
    const ref = referenceStats({ net, resolution: 28, cacheDir: null });
    const seconds = (performance.now() - t0) / 1000;
    try {
      assert.equal(ref.count, 10000);
      const pred = noGrad(() => tidy(() => ref.probs.argmax(1).toArray()));
      const acc = pred.filter((p, i) => p === ref.labels[i]).length / ref.count;
      assert.ok(acc >= 0.92, `test accuracy ${acc} is below 0.92`);
      assert.equal(acc.toFixed(4), net.metadata.testAccuracy, 'the accuracy recorded in the weights file');
      const halves = tidy(() => fid(ref.features.narrow(0, 0, 5000), ref.features.narrow(0, 5000, 5000)));
      const noise = noGrad(() => tidy(() => rand([1000, 1, 28, 28], { generator: new Generator(0) }).mul(2).sub(1)));
      const emb = embed(net.net, noise);
      const noiseFid = tidy(() => fid(ref.features, emb.features));
      for (const t of [noise, emb.features, emb.probs]) t.dispose();
      process.stderr.write(`# test accuracy ${acc}; FID halves ${halves.toFixed(4)}, FID noise ${noiseFid.toFixed(1)}; 10,000 images in ${seconds.toFixed(1)} s\n`);
      // On the network's own scale (128 features of mean square about 1, not Inception's 2048): with
      // the shipped weights the two halves score 0.23 and uniform noise 94.
      assert.ok(halves < 1, `FID between two halves of the test set is ${halves}; expected < 1`);
      assert.ok(noiseFid > 100 * halves && noiseFid > 50, `FID of noise against the test set is ${noiseFid}; expected > 50 and far above the halves' ${halves}`);
    } finally {
      disposeReference(ref);
    }
  } finally {
    net.net.dispose();
  }
});

test('reference statistics are cached, read back identical, and recomputed when the file is stale, damaged or cut short', { skip }, () => {
  const net = loadFeatureNet();
  const dir = mkdtempSync(path.join(tmpdir(), 'ddpm-cache-'));
  const logs: string[] = [];
  const stats = (): ReturnType<typeof referenceStats> => referenceStats({ net, resolution: 16, cacheDir: dir, limit: 300, log: (l) => logs.push(l) });
  try {
    const first = stats();
    assert.equal(first.fromCache, false);
    assert.ok(first.cacheFile && existsSync(first.cacheFile), 'the cache file is written');
    const file = first.cacheFile;
    const mu = first.mu.toArray();
    const sigma = first.sigma.toArray();
    disposeReference(first);

    const again = stats();
    assert.equal(again.fromCache, true);
    assert.deepEqual(again.mu.toArray(), mu);
    assert.deepEqual(again.sigma.toArray(), sigma);
    disposeReference(again);

    // A flipped byte in the payload: the checksum catches it.
    const bytes = readFileSync(file);
    const damaged = Buffer.from(bytes);
    damaged[damaged.length - 100]! ^= 0x40;
    writeFileSync(file, damaged);
    const key = { dataset: 'fashion-mnist', split: 'test', resolution: 16, featureNet: net.sha256, data: first.key.data } as const;
    const labels = first.labels;
    assert.match(String(readReferenceCache(file, key, labels)), /^corrupt: its tensors do not match the checksum/);
    const fixed = stats();
    assert.equal(fixed.fromCache, false);
    assert.deepEqual(fixed.mu.toArray(), mu);
    disposeReference(fixed);
    assert.match(logs.join('\n'), /corrupt.*recomputing/);

    // Written for another feature network (same name, other metadata): stale.
    const parsed = parseSafetensors(readFileSync(file), file);
    writeFileSync(file, serializeSafetensors(Object.fromEntries(parsed.tensors), { ...parsed.metadata, featureNet: 'f'.repeat(64) }));
    assert.match(String(readReferenceCache(file, key, labels)), /^stale: featureNet is "f{64}"/);
    assert.match(String(readReferenceCache(file, { ...key, resolution: 28 }, labels)), /^stale: resolution is "16", expected "28"/);
    disposeReference(stats());
    assert.match(logs.join('\n'), /stale: featureNet.*recomputing/);

    // Cut short.
    writeFileSync(file, bytes.subarray(0, 1000));
    assert.match(String(readReferenceCache(file, key, labels)), /^unreadable/);
    const last = stats();
    assert.equal(last.fromCache, false);
    disposeReference(last);
    const reread = stats();
    assert.equal(reread.fromCache, true, 'the rewritten file is used again');
    disposeReference(reread);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    net.net.dispose();
  }
});
