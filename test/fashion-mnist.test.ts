import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  DEFAULT_FASHION_MNIST_DIR, FashionMnistError, loadFashionMnist, locateFashionMnist,
} from '../src/data/fashion-mnist.js';

function idxBytes(type: number, dims: number[], payload: number[]): Uint8Array {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = type;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(payload)]);
}
const images = (n: number): Uint8Array => idxBytes(0x08, [n, 3, 2], Array.from({ length: n * 6 }, (_, i) => i));

/** A folder with a tiny Fashion-MNIST-shaped set (4 train, 2 test, 3x2 images), gzipped or raw. */
function tinyFashion(t: TestContext, gzip: boolean, skip: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'ddpm-fm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files: Record<string, Uint8Array> = {
    'train-images-idx3-ubyte': images(4),
    'train-labels-idx1-ubyte': idxBytes(0x08, [4], [0, 9, 3, 5]),
    't10k-images-idx3-ubyte': images(2),
    't10k-labels-idx1-ubyte': idxBytes(0x08, [2], [1, 8]),
  };
  for (const [name, bytes] of Object.entries(files)) {
    if (skip.includes(name)) continue;
    writeFileSync(join(dir, gzip ? `${name}.gz` : name), gzip ? gzipSync(bytes) : bytes);
  }
  return dir;
}
const emptyDir = (t: TestContext): string => tinyFashion(t, false, ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']);
const refuses = (fn: () => unknown, re: RegExp): void =>
  assert.throws(fn, (e: unknown) => e instanceof FashionMnistError && re.test(e.message) ? true : assert.fail(`${e}`));

test('locator order: dir > $FASHION_MNIST_DIR > default', (t) => {
  const a = tinyFashion(t, true);
  const b = tinyFashion(t, false);
  const c = tinyFashion(t, true);
  const env = { FASHION_MNIST_DIR: b };
  assert.equal(locateFashionMnist({ dir: a, env, defaultDir: c }), a);
  assert.equal(locateFashionMnist({ env, defaultDir: c }), b);
  assert.equal(locateFashionMnist({ env: {}, defaultDir: c }), c);
  assert.equal(locateFashionMnist({ env: { FASHION_MNIST_DIR: '' }, defaultDir: c }), c);
});

test('a given dir is the only place looked: missing files are listed with both ways to get them', (t) => {
  const partial = tinyFashion(t, true, ['train-labels-idx1-ubyte', 't10k-images-idx3-ubyte']);
  const good = tinyFashion(t, true);
  refuses(() => locateFashionMnist({ dir: partial, env: { FASHION_MNIST_DIR: good }, defaultDir: good }), new RegExp(
    `not found in ${partial} .*missing train-labels-idx1-ubyte\\[\\.gz\\], t10k-images-idx3-ubyte\\[\\.gz\\];.*` +
    `ddpm data download fashion-mnist --dir ${partial}.*apt install dataset-fashion-mnist`));
});

test('a set $FASHION_MNIST_DIR that is incomplete is an error, not a silent fallback', (t) => {
  const empty = emptyDir(t);
  refuses(() => locateFashionMnist({ env: { FASHION_MNIST_DIR: empty }, defaultDir: tinyFashion(t, true) }),
    /\$FASHION_MNIST_DIR=.*missing train-images-idx3-ubyte\[\.gz\], train-labels.*t10k-labels-idx1-ubyte\[\.gz\].*unset FASHION_MNIST_DIR/);
});

test('nothing found anywhere: says where it looked and how to get the data', (t) => {
  const empty = emptyDir(t);
  refuses(() => locateFashionMnist({ env: {}, defaultDir: empty }),
    new RegExp(`no --data folder, \\$FASHION_MNIST_DIR unset, and ${empty} has none of the files.*ddpm data download fashion-mnist --dir DIR.*apt install dataset-fashion-mnist`));
});

test('loads a split from raw or .gz files, with the class names', (t) => {
  for (const gzip of [false, true]) {
    const train = loadFashionMnist('train', { dir: tinyFashion(t, gzip) });
    assert.deepEqual([train.count, train.height, train.width, [...train.labels]], [4, 3, 2, [0, 9, 3, 5]]);
    assert.equal(train.classNames[9], 'Ankle boot');
    const testSplit = loadFashionMnist('test', { dir: tinyFashion(t, gzip) });
    assert.deepEqual([...testSplit.labels], [1, 8]);
  }
  const mixed = tinyFashion(t, true, ['t10k-labels-idx1-ubyte']);
  writeFileSync(join(mixed, 't10k-labels-idx1-ubyte'), idxBytes(0x08, [2], [7, 7]));
  assert.deepEqual([...loadFashionMnist('test', { dir: mixed }).labels], [7, 7]);
});

test('a folder named like a file does not count as the file', (t) => {
  const dir = tinyFashion(t, true, ['train-images-idx3-ubyte']);
  mkdirSync(join(dir, 'train-images-idx3-ubyte.gz'));
  refuses(() => locateFashionMnist({ dir }), /missing train-images-idx3-ubyte\[\.gz\];/);
});

test('the Debian copy loads as the official test split', (t) => {
  if (!existsSync(join(DEFAULT_FASHION_MNIST_DIR, 't10k-labels-idx1-ubyte.gz'))) {
    return t.skip(`${DEFAULT_FASHION_MNIST_DIR} absent (apt install dataset-fashion-mnist)`);
  }
  const fm = loadFashionMnist('test', { env: {} });
  assert.deepEqual([fm.dir, fm.count, fm.height, fm.width], [DEFAULT_FASHION_MNIST_DIR, 10000, 28, 28]);
  assert.deepEqual(fm.classNames, ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']);
});
