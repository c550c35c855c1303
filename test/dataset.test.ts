// Opening a run's dataset (src/data/dataset.ts): the config's description to tensors, for an image
// folder (classes checked against the run) and Fashion-MNIST (split, limit, size), and the refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePng } from '../src/io/png.js';
import { openDataset, datasetSpec, type DatasetSpec } from '../src/data/dataset.js';
import { presetDefaults } from '../src/train/config.js';

function folderOfClasses(classes: string[], perClass: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'ddpm-dataset-'));
  classes.forEach((c, k) => {
    mkdirSync(join(dir, c));
    for (let i = 0; i < perClass; i++) {
      const v = 40 * k + 10 * i; // a distinct grey per image
      writeFileSync(join(dir, c, `${i}.png`), encodePng({ width: 4, height: 4, channels: 1, data: new Uint8Array(16).fill(v) }));
    }
  });
  return dir;
}

test('datasetSpec reads what a run config says about its data', () => {
  const c = presetDefaults('dli02');
  assert.deepEqual(datasetSpec(c), { kind: 'fashion-mnist', dir: '', channels: 1, imageSize: 16, limit: null, numClasses: 0 });
  const f = { ...c, model: { ...c.model, numClasses: 2 }, train: { ...c.train, dataset: 'folder' as const, data: '/x', limit: 5 } };
  assert.deepEqual(datasetSpec(f), { kind: 'folder', dir: '/x', channels: 1, imageSize: 16, limit: 5, numClasses: 2 });
});

test('an image folder opens as [-1, 1] tensors with class labels, limited, for either split; a class count the run does not expect is refused', () => {
  const dir = folderOfClasses(['a', 'b'], 3);
  try {
    const spec: DatasetSpec = { kind: 'folder', dir, channels: 1, imageSize: 4, limit: 4, numClasses: 2 };
    for (const split of ['train', 'test'] as const) {
      const d = openDataset(spec, split);
      assert.deepEqual(d.images.shape, [4, 1, 4, 4]);
      assert.deepEqual(d.labels?.toArray(), [0, 0, 0, 1]);
      assert.deepEqual(d.classNames, ['a', 'b']);
      assert.equal(d.dataDir, dir);
      const first = d.images.toArray().slice(0, 16);
      assert.ok(first.every((v) => Math.abs(v - (0 / 255) * 2 + 1) < 1e-6), 'the first image is byte 0, i.e. -1');
      d.images.dispose();
      d.labels?.dispose();
    }
    assert.throws(() => openDataset({ ...spec, numClasses: 3 }, 'train'), /has 2 classes \(subfolders with images\), but the run was configured for 3/);
    // --data overrides the config's folder.
    assert.throws(() => openDataset(spec, 'train', { dir: join(dir, 'missing') }), /missing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Fashion-MNIST is grey: a colour model is refused with the fix', () => {
  assert.throws(() => openDataset({ kind: 'fashion-mnist', dir: '', channels: 3, imageSize: 16, limit: null, numClasses: 0 }, 'train'),
    /Fashion-MNIST is grey, but the model has 3 image channels; use --channels 1, or --data with a folder of colour images/);
});

const hasData = existsSync('/usr/share/datasets/fashion-mnist') || process.env.FASHION_MNIST_DIR !== undefined;
test('Fashion-MNIST opens the asked split, limited and resized', { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
  const spec: DatasetSpec = { kind: 'fashion-mnist', dir: '', channels: 1, imageSize: 16, limit: 5, numClasses: 0 };
  const train = openDataset(spec, 'train');
  const testSplit = openDataset(spec, 'test');
  assert.deepEqual(train.images.shape, [5, 1, 16, 16]);
  // The first labels of each split (the dataset's files: train starts 9, 0, 0, 3, 0; test 9, 2, 1, 1, 6).
  assert.deepEqual(train.labels?.toArray(), [9, 0, 0, 3, 0]);
  assert.deepEqual(testSplit.labels?.toArray(), [9, 2, 1, 1, 6]);
  const v = train.images.toArray();
  assert.ok(Math.min(...v) >= -1 && Math.max(...v) <= 1);
  for (const d of [train, testSplit]) { d.images.dispose(); d.labels?.dispose(); }
});
