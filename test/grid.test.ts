import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeGrid, makeTrajectoryGrid, toUint8Image, trajectorySteps } from '../src/viz/grid.js';

test('-1 -> 0, 0 -> 128, 1 -> 255 as torchvision save_image does; out of range clamps', () => {
  const img = toUint8Image(new Float32Array([-1, 0, 1, -3, 7, 0.5]), 1, 1, 6);
  assert.deepEqual([...img.data], [0, 128, 255, 0, 255, 191]); // 0.75*255+0.5 = 191.75 -> 191
  assert.deepEqual([...toUint8Image(new Float32Array([0, 0.5, 1]), 1, 1, 3, [0, 1]).data], [0, 128, 255]);
});

test('toUint8Image interleaves CHW into HWC', () => {
  // c=3, h=1, w=2: R plane, G plane, B plane
  const img = toUint8Image(new Float32Array([-1, 1, 0, 0, 1, -1]), 3, 1, 2);
  assert.deepEqual([img.width, img.height, img.channels], [2, 1, 3]);
  assert.deepEqual([...img.data], [0, 128, 255, 255, 128, 0]);
});

test('non-finite values are refused with the index named', () => {
  const x = new Float32Array(2 * 4 * 4);
  x[21] = NaN;
  assert.throws(() => toUint8Image(x, 1, 4, 8), /NaN at index 21 .*not finite/);
  const batch = new Float32Array(3 * 16);
  batch[35] = Infinity; // image 2, y 0, x 3
  assert.throws(() => makeGrid(batch, 3, 1, 4, 4), /Infinity at index 35 \(image 2, channel 0, y 0, x 3\)/);
});

test('grid size for n=10, nrow=4, padding=2, 16x16 follows make_grid', () => {
  const g = makeGrid(new Float32Array(10 * 16 * 16), 10, 1, 16, 16, { nrow: 4, padding: 2 });
  // make_grid: xmaps = min(nrow, n) = 4, ymaps = ceil(10/4) = 3, size = (h+pad)*maps + pad
  assert.equal(g.width, (16 + 2) * 4 + 2);
  assert.equal(g.height, (16 + 2) * 3 + 2);
  assert.equal(g.channels, 1);
  const rgb = makeGrid(new Float32Array(10 * 3 * 16 * 16), 10, 3, 16, 16, { nrow: 4 });
  assert.deepEqual([rgb.width, rgb.height, rgb.channels], [74, 56, 3]);
});

test('pixels land where make_grid puts them; padding and empty cells take padValue', () => {
  const n = 5, h = 3, w = 2;
  const batch = new Float32Array(n * h * w);
  for (let k = 0; k < n; k++) batch.fill(k / 4, k * h * w, (k + 1) * h * w); // image k has value k/4
  const g = makeGrid(batch, n, 1, h, w, { nrow: 2, padding: 1, range: [0, 1], padValue: 0.5 });
  assert.deepEqual([g.width, g.height], [(w + 1) * 2 + 1, (h + 1) * 3 + 1]);
  const at = (x: number, y: number) => g.data[y * g.width + x];
  // image k at column k%2, row floor(k/2): top-left = (pad + col*(w+pad), pad + row*(h+pad))
  assert.equal(at(1, 1), 0);
  assert.equal(at(4, 1), 64); // k=1: 0.25*255+0.5 = 64.25
  assert.equal(at(4 + 1, 5 + 2), 191); // k=3 bottom-right pixel
  assert.equal(at(1, 9), 255); // k=4
  assert.equal(at(0, 0), 128); // padding
  assert.equal(at(4, 9), 128); // empty slot after the last image
});

test('default padding is black like make_grid with pad_value 0 on [0,1] images', () => {
  const g = makeGrid(new Float32Array(2 * 4).fill(1), 2, 1, 2, 2);
  assert.equal(g.data[0], 0);
  assert.equal(g.data[2 * g.width + 2], 255);
  assert.equal(g.width, 2 * 4 + 2);
  const one = makeGrid(new Float32Array(4), 1, 1, 2, 2); // make_grid returns a lone image unpadded
  assert.deepEqual([one.width, one.height], [2, 2]);
});

test('scale=4 is nearest-neighbour upscaling of the whole grid', () => {
  const batch = Float32Array.from({ length: 3 * 2 * 2 }, (_, i) => (i % 5) / 2 - 1);
  const base = makeGrid(batch, 3, 1, 2, 2, { nrow: 2 });
  const big = makeGrid(batch, 3, 1, 2, 2, { nrow: 2, scale: 4 });
  assert.deepEqual([big.width, big.height], [base.width * 4, base.height * 4]);
  for (let y = 0; y < big.height; y++) {
    for (let x = 0; x < big.width; x++) {
      assert.equal(big.data[y * big.width + x], base.data[Math.floor(y / 4) * base.width + Math.floor(x / 4)]);
    }
  }
  assert.throws(() => makeGrid(batch, 3, 1, 2, 2, { scale: 1.5 }), /scale must be an integer >= 1, got 1.5/);
});

test('trajectory grid: one row per image, one column per snapshot', () => {
  const n = 2, T = 3; // snapshot j of image i has value (10*i + j) / 100
  const snaps = Array.from({ length: T }, (_, j) =>
    Float32Array.from({ length: n * 4 }, (_, p) => (10 * Math.floor(p / 4) + j) / 100),
  );
  const g = makeTrajectoryGrid(snaps, n, 1, 2, 2, { range: [0, 1], padding: 1 });
  assert.deepEqual([g.width, g.height], [3 * 3 + 1, 2 * 3 + 1]);
  const at = (col: number, row: number) => g.data[(1 + row * 3) * g.width + 1 + col * 3];
  for (let i = 0; i < n; i++) for (let j = 0; j < T; j++) {
    assert.equal(at(j, i), Math.trunc(Math.fround(Math.fround((10 * i + j) / 100) * 255) + 0.5));
  }
});

test('trajectorySteps snapshots every T/ncols steps down to 0', () => {
  assert.deepEqual(trajectorySteps(1000, 10), [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
  assert.deepEqual(trajectorySteps(10, 4), [6, 4, 2, 0]);
  assert.deepEqual(trajectorySteps(3, 8), [2, 1, 0]);
});
