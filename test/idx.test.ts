import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import { IdxError, loadImagesAndLabels, parseIdx, readIdxFile } from '../src/data/idx.js';

const DEBIAN_DIR = '/usr/share/datasets/fashion-mnist';

/** IDX bytes: 00 00, type, ndims, dims as u32 big-endian, then the payload as given. */
function idxBytes(type: number, dims: number[], payload: Uint8Array | number[]): Uint8Array {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = type;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(payload)]);
}
const u8Images = (n: number, h: number, w: number): Uint8Array =>
  idxBytes(0x08, [n, h, w], Array.from({ length: n * h * w }, (_, i) => i % 256));
const u8Labels = (labels: number[]): Uint8Array => idxBytes(0x08, [labels.length], labels);

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'ddpm-idx-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
function put(dir: string, name: string, bytes: Uint8Array, gzip = false): string {
  const p = join(dir, name);
  writeFileSync(p, gzip ? gzipSync(bytes) : bytes);
  return p;
}

const refuses = (fn: () => unknown, re: RegExp): void =>
  assert.throws(fn, (e: unknown) => e instanceof IdxError && re.test(e.message) ? true : assert.fail(`${e}`));

test('refuses labels given as images', (t) => {
  const d = tempDir(t);
  const labels = put(d, 'labels', u8Labels([1, 2]));
  refuses(() => loadImagesAndLabels(labels, labels), /labels.*is a 1-D u8 IDX file of shape \[2\]; images need 3 dims \(N, H, W\).*looks like a labels file/);
});

test('refuses images given as labels', (t) => {
  const d = tempDir(t);
  const images = put(d, 'images', u8Images(2, 2, 2));
  refuses(() => loadImagesAndLabels(images, images), /is a 3-D u8 IDX file.*labels need 1 dim/);
});

test('refuses an unknown type byte', (t) => {
  const p = put(tempDir(t), 'x', idxBytes(0x07, [1], [0]));
  refuses(() => readIdxFile(p), /x: unknown type byte 0x07; expected one of 0x08 \(u8\)/);
});

test('refuses 0 dimensions and 4 dimensions', (t) => {
  const d = tempDir(t);
  const zero = put(d, 'zero', idxBytes(0x08, [], []));
  refuses(() => readIdxFile(zero), /zero: 0 dimensions; expected 1 to 3/);
  const four = put(d, 'four', idxBytes(0x08, [1, 1, 1, 1], [7]));
  refuses(() => readIdxFile(four), /four: 4 dimensions; expected 1 to 3 .*found 4/);
});

test('refuses a payload one byte short or one byte long', (t) => {
  const d = tempDir(t);
  const short = put(d, 'short', idxBytes(0x08, [2, 2, 2], [1, 2, 3, 4, 5, 6, 7]));
  refuses(() => readIdxFile(short), /short: payload is one byte short for shape \[2, 2, 2\] of u8; expected 8 payload bytes, found 7/);
  const long = put(d, 'long', idxBytes(0x08, [3], [1, 2, 3, 4]));
  refuses(() => readIdxFile(long), /long: payload is one byte too many/);
  refuses(() => parseIdx(idxBytes(0x0b, [2], [0, 1, 0, 2, 0, 3, 9]), 'i16s'), /i16s: payload is 3 bytes too many/);
});

test('a lying header is compared, not allocated', () => {
  const huge = idxBytes(0x0e, [0xffffffff, 0xffffffff, 0xffffffff], [1, 2, 3]);
  refuses(() => parseIdx(huge, 'liar'), /liar: payload is \d+ bytes short .*found 3/);
});

test('refuses a bad magic (and hints when the bytes are gzip)', (t) => {
  const bad = Buffer.from(idxBytes(0x08, [1], [0]));
  bad[1] = 0x01;
  refuses(() => readIdxFile(put(tempDir(t), 'magic', bad)), /magic: bad magic.*expected 00 00, found 0x00 0x01/);
  refuses(() => parseIdx(gzipSync(u8Labels([1])), 'g'), /bad magic.*gzip bytes/);
  refuses(() => parseIdx(new Uint8Array([0, 0, 8]), 'tiny'), /tiny: not an IDX file.*expected at least 4 bytes, found 3/);
});

test('refuses counts that disagree, naming both files and counts', (t) => {
  const d = tempDir(t);
  const images = put(d, 'imgs', u8Images(3, 2, 2));
  const labels = put(d, 'labs', u8Labels([1, 2]));
  refuses(() => loadImagesAndLabels(images, labels), /labs: label count 2 does not match image count 3 in .*imgs/);
});

test('refuses a label of 10, naming index and value', (t) => {
  const d = tempDir(t);
  const images = put(d, 'imgs', u8Images(3, 2, 2));
  const labels = put(d, 'labs', u8Labels([9, 0, 10]));
  refuses(() => loadImagesAndLabels(images, labels), /labs: label at index 2 is 10.*expected 0 <= label < 10, found 10/);
  assert.equal(loadImagesAndLabels(images, labels, { numClasses: 11 }).count, 3);
});

test('refuses a truncated gzip and a .gz that is not gzip', (t) => {
  const d = tempDir(t);
  const gz = gzipSync(u8Images(4, 8, 8));
  const cut = put(d, 'cut.gz', gz.subarray(0, gz.length - 20));
  refuses(() => readIdxFile(cut), /cut\.gz: truncated gzip file/);
  const fake = put(d, 'fake.gz', u8Labels([1]));
  refuses(() => readIdxFile(fake), /fake\.gz: not a gzip file.*expected gzip magic 1f 8b, found 0x00 0x00/);
});

test('accepts good files, gz and raw, whatever the name', (t) => {
  const d = tempDir(t);
  const raw = loadImagesAndLabels(put(d, 'i', u8Images(2, 3, 4)), put(d, 'l', u8Labels([0, 9])));
  assert.deepEqual([raw.count, raw.height, raw.width], [2, 3, 4]);
  assert.deepEqual([...raw.labels], [0, 9]);
  assert.equal(raw.images[23], 23);
  const gz = loadImagesAndLabels(put(d, 'i.gz', u8Images(2, 3, 4), true), put(d, 'l.bin', u8Labels([0, 9]), true));
  assert.deepEqual(gz, raw);
  assert.equal(gz.images.byteOffset, 0); // an own, aligned copy: safe to hand to the addon
});

test('converts big-endian payloads to host order', () => {
  const i16 = parseIdx(idxBytes(0x0b, [2], [0x01, 0x02, 0xff, 0xfe]), 's');
  assert.deepEqual([i16.dtype, [...i16.data]], ['i16', [0x0102, -2]]);
  const f32 = parseIdx(idxBytes(0x0d, [1, 1], [0x3f, 0xc0, 0, 0]), 's');
  assert.deepEqual([f32.dtype, f32.shape, [...f32.data]], ['f32', [1, 1], [1.5]]);
  const f64 = parseIdx(idxBytes(0x0e, [1], [0xc0, 0x04, 0, 0, 0, 0, 0, 0]), 's');
  assert.deepEqual([...f64.data], [-2.5]);
  const i32 = parseIdx(idxBytes(0x0c, [1], [0x80, 0, 0, 1]), 's');
  assert.deepEqual([...i32.data], [-2147483647]);
  const i8 = parseIdx(idxBytes(0x09, [2], [0x7f, 0x80]), 's');
  assert.deepEqual([...i8.data], [127, -128]);
});

test('reads the real Debian train labels: 60000 labels, all 10 classes', (t) => {
  const path = join(DEBIAN_DIR, 'train-labels-idx1-ubyte.gz');
  if (!existsSync(path)) return t.skip(`${path} absent (apt install dataset-fashion-mnist)`);
  assert.equal(readFileSync(path)[0], 0x1f);
  const labels = readIdxFile(path);
  assert.deepEqual([labels.dtype, labels.shape], ['u8', [60000]]);
  const perClass = new Array<number>(10).fill(0);
  for (const l of labels.data) perClass[l]! += 1;
  assert.deepEqual(perClass, new Array(10).fill(6000)); // Fashion-MNIST is balanced: 6000 per class
});
