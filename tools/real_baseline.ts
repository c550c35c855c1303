// Writes N Fashion-MNIST *training* images as 8-bit grey PNGs, prepared exactly as a run sees them
// (antialiased resize to --size, then 8-bit), so that `ddpm eval --samples DIR` scores real images
// the way it scores a model's samples. The result is the floor of each metric at that sample count:
// FID of 1,000 samples is biased upwards even for perfect samples, so a model's FID means little
// without it.
//
//   node dist/tools/real_baseline.js --out /tmp/real-16 [--n 1000] [--size 16] [--offset 0] [--data DIR]
//   ddpm eval --samples /tmp/real-16
import { parseArgs } from 'node:util';
import { mkdirSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { prepareImages } from '../src/data/transforms.js';
import { toUint8Image } from '../src/viz/grid.js';
import { writePng } from '../src/io/png.js';

const { values: a } = parseArgs({
  options: {
    out: { type: 'string' }, n: { type: 'string', default: '1000' }, size: { type: 'string', default: '16' },
    offset: { type: 'string', default: '0' }, data: { type: 'string' },
  },
});
const int = (name: string, v: string, min: number): number => {
  const x = Number(v);
  if (!Number.isInteger(x) || x < min) throw new Error(`real_baseline: --${name} must be an integer >= ${min}, got "${v}"`);
  return x;
};
if (a.out === undefined) throw new Error('real_baseline: --out DIR is required (a new or empty folder for the PNGs)');
if (existsSync(a.out) && readdirSync(a.out).length > 0) throw new Error(`real_baseline: --out ${a.out} is not empty; give a new folder so no images are mixed`);
const n = int('n', a.n, 1);
const size = int('size', a.size, 1);
const offset = int('offset', a.offset, 0);
const ds = loadFashionMnist('train', a.data !== undefined ? { dir: a.data } : {});
if (offset + n > ds.count) throw new Error(`real_baseline: --offset ${offset} + --n ${n} exceeds the ${ds.count} training images`);
const px = ds.height * ds.width;
const x = prepareImages(ds.images.subarray(offset * px, (offset + n) * px), { n, c: 1, h: ds.height, w: ds.width }, size); // (n, 1, size, size) in [-1, 1]
const values = x.float().dataSync() as Float32Array;
x.dispose();
mkdirSync(a.out, { recursive: true });
for (let i = 0; i < n; i++) {
  writePng(path.join(a.out, `${String(i).padStart(5, '0')}.png`), toUint8Image(values.subarray(i * size * size, (i + 1) * size * size), 1, size, size));
}
process.stderr.write(`wrote ${n} training images ${offset}..${offset + n - 1} at ${size}x${size} to ${a.out}\n`);
