import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test, type TestContext } from 'node:test';
import jpeg from 'jpeg-js';
import { encodePng, type Image8 } from '../src/io/png.js';
import {
  ImageFolderError, centerCropOffsets, imageFolderTensors, loadImageFolder, readImageHeader, resizedSize,
} from '../src/data/image-folder.js';
import { interpolate, liveTensors, tensor, tidy, ArgumentError } from '../src/tensor/index.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'ddpm-imgfolder-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
function put(dir: string, rel: string, bytes: Uint8Array): string {
  const p = join(dir, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, bytes);
  return p;
}
/** An 8-bit image whose pixel (x, y) is f(x, y) (one value per channel). */
function image(width: number, height: number, channels: 1 | 3 | 4, f: (x: number, y: number) => number[]): Image8 {
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(f(x, y).slice(0, channels), (y * width + x) * channels);
  return { width, height, channels, data };
}
const png = (img: Image8): Uint8Array => encodePng(img);
/** jpeg-js writes 3-component (YCbCr) JPEGs from RGBA. */
function jpg(width: number, height: number, rgb: (x: number, y: number) => number[], quality = 100): Uint8Array {
  const rgba = image(width, height, 4, (x, y) => [...rgb(x, y), 255]);
  return jpeg.encode({ width, height, data: rgba.data }, quality).data;
}
const scaled = (v: number): number => (v / 255) * 2 - 1;
const refuses = (fn: () => unknown, re: RegExp): void =>
  assert.throws(fn, (e: unknown) => (e instanceof ImageFolderError && re.test(e.message) ? true : assert.fail(`wrong error: ${String(e)}`)));
const refusesArg = (fn: () => unknown, re: RegExp): void =>
  assert.throws(fn, (e: unknown) => (e instanceof ArgumentError && re.test(e.message) ? true : assert.fail(`wrong error: ${String(e)}`)));
function assertAllClose(what: string, actual: ArrayLike<number>, expected: number, atol: number): void {
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected) <= atol, `${what}[${i}] = ${actual[i]}, expected ${expected} +- ${atol}`);
  }
}

test('grey, RGB and RGBA PNGs and an RGB JPEG as RGB: grey replicated, alpha dropped, sorted, no labels at the top level', (t) => {
  const d = tempDir(t);
  put(d, 'b-grey.png', png(image(4, 4, 1, () => [100])));
  put(d, 'a-rgb.png', png(image(4, 4, 3, () => [10, 20, 30])));
  put(d, 'c/rgba.PNG', png(image(4, 4, 4, () => [200, 150, 50, 7])));
  put(d, 'd.JPEG', jpg(4, 4, () => [40, 120, 200]));
  put(d, 'notes.txt', new TextEncoder().encode('not an image'));
  const f = loadImageFolder(d, { channels: 3 });
  assert.deepEqual(f.files, ['a-rgb.png', 'b-grey.png', 'c/rgba.PNG', 'd.JPEG']);
  assert.deepEqual([f.n, f.channels, f.size, f.images.length], [4, 3, 4, 4 * 3 * 16]);
  assert.equal(f.labels, null);
  assert.equal(f.classNames, null);
  const plane = (i: number, c: number): Float32Array => f.images.subarray((i * 3 + c) * 16, (i * 3 + c + 1) * 16);
  [[10, 20, 30], [100, 100, 100], [200, 150, 50]].forEach((rgb, i) => {
    rgb.forEach((v, c) => assertAllClose(`${f.files[i]} channel ${c}`, plane(i, c), scaled(v), 1e-6));
  });
  // JPEG is lossy, even at quality 100: within 3 levels.
  [40, 120, 200].forEach((v, c) => assertAllClose(`d.JPEG channel ${c}`, plane(3, c), scaled(v), (2 * 3) / 255));
  const x = imageFolderTensors(f);
  assert.deepEqual(x.images.shape, [4, 3, 4, 4]);
  assert.deepEqual(x.images.toArray(), Array.from(f.images));
  assert.equal(x.labels, null);
  x.images.dispose();
  const two = imageFolderTensors(f, 2);
  assert.deepEqual(two.images.shape, [2, 3, 4, 4]);
  two.images.dispose();
  assert.throws(() => imageFolderTensors(f, 0), /limit must be a positive integer, got 0/);
});

test('colour to grey with Pillow\'s L = R 299/1000 + G 587/1000 + B 114/1000; grey stays grey by default', (t) => {
  const d = tempDir(t);
  const colours = [[200, 100, 50], [255, 0, 0], [0, 255, 0], [0, 0, 255], [12, 34, 56]];
  colours.forEach((rgb, i) => put(d, `c${i}.png`, png(image(4, 4, i % 2 ? 4 : 3, () => [...rgb, 0]))));
  const f = loadImageFolder(d, { channels: 1 });
  assert.equal(f.channels, 1);
  colours.forEach(([r, g, b], i) => {
    const l = Math.round((r! * 299 + g! * 587 + b! * 114) / 1000); // these colours are no rounding ties
    assertAllClose(`c${i}.png`, f.images.subarray(i * 16, (i + 1) * 16), scaled(l), 1e-6);
  });
  const greys = tempDir(t);
  put(greys, 'x.png', png(image(5, 5, 1, (x, y) => [x * 50 + y])));
  const g = loadImageFolder(greys);
  assert.deepEqual([g.channels, g.size], [1, 5]);
  assert.ok(Math.abs(g.images[3 * 5 + 2]! - scaled(2 * 50 + 3)) < 1e-6, `pixel (x=2, y=3) is ${g.images[3 * 5 + 2]}`); // row-major
  const colour = tempDir(t);
  put(colour, 'x.jpg', jpg(8, 8, () => [1, 2, 3]));
  assert.equal(loadImageFolder(colour).channels, 3);
});

test('class folders: sorted first-level subfolders are the classes, deeper files belong to their first-level folder', (t) => {
  const d = tempDir(t);
  const grey = png(image(6, 6, 1, () => [0]));
  put(d, 'zebra/1.png', grey);
  put(d, 'ant/b.png', grey);
  put(d, 'ant/a.jpg', jpg(6, 6, () => [9, 9, 9]));
  put(d, 'mouse/deep/er/x.png', grey);
  mkdirSync(join(d, 'empty'));
  const f = loadImageFolder(d, { channels: 1 });
  assert.deepEqual(f.files, ['ant/a.jpg', 'ant/b.png', 'mouse/deep/er/x.png', 'zebra/1.png']);
  assert.deepEqual(f.classNames, ['ant', 'mouse', 'zebra']);
  assert.deepEqual(Array.from(f.labels!), [0, 0, 1, 2]);
  const { images, labels } = imageFolderTensors(f, 3);
  assert.deepEqual([images.shape, labels!.dtype, labels!.toArray()], [[3, 1, 6, 6], 'int64', [0, 0, 1]]);
  images.dispose();
  labels!.dispose();
  put(d, 'top.png', grey); // one image outside the class folders: no labels
  const g = loadImageFolder(d, { channels: 1 });
  assert.equal(g.labels, null);
  assert.equal(g.classNames, null);
});

test('a symlinked folder is read, a symlink loop is not followed forever', (t) => {
  const d = tempDir(t);
  put(d, 'real/a.png', png(image(4, 4, 1, () => [1])));
  symlinkSync(join(d, 'real'), join(d, 'link'));
  symlinkSync(d, join(d, 'real', 'loop'));
  const f = loadImageFolder(d);
  assert.deepEqual(f.files, ['link/a.png']); // real/ is the same folder, reached once
});

test('a 40x30 image to 16: shorter side to 16 (21x16), center crop at column 2 as torchvision rounds 2.5', (t) => {
  assert.deepEqual(resizedSize(40, 30, 16), { width: 21, height: 16 });
  assert.deepEqual(centerCropOffsets(21, 16, 16), { top: 0, left: 2 }); // Python round(2.5) == 2
  assert.deepEqual(centerCropOffsets(23, 16, 16), { top: 0, left: 4 }); // round(3.5) == 4
  const d = tempDir(t);
  put(d, 'const.png', png(image(40, 30, 1, () => [77])));
  const c = loadImageFolder(d, { imageSize: 16 });
  assert.deepEqual([c.n, c.channels, c.size], [1, 1, 16]);
  assertAllClose('constant 77', c.images, scaled(77), 1e-5);

  // A left-to-right ramp: rows equal, values rising left to right, and the crop starts at column 2.
  const h = tempDir(t);
  const ramp = image(40, 30, 1, (x) => [Math.round((x * 255) / 39)]);
  put(h, 'ramp.png', png(ramp));
  const r = loadImageFolder(h, { imageSize: 16 });
  const at = (x: number, y: number): number => r.images[y * 16 + x]!;
  for (let y = 1; y < 16; y++) for (let x = 0; x < 16; x++) assert.ok(Math.abs(at(x, y) - at(x, 0)) < 1e-6, `row ${y} differs at x=${x}`);
  for (let x = 1; x < 16; x++) assert.ok(at(x, 0) > at(x - 1, 0), `not rising at x=${x}`);
  const ref = tidy(() => {
    const full = interpolate(tensor(ramp.data, [1, 1, 30, 40]).float().div(255), { size: [16, 21], mode: 'bilinear', antialias: true }); // (1, 1, 16, 21)
    return [2, 3].map((left) => full.narrow(3, left, 16).mul(2).sub(1).toArray());
  });
  assert.deepEqual(Array.from(r.images), ref[0]);
  assert.notDeepEqual(Array.from(r.images), ref[1]);

  // A top-to-bottom ramp in a 30x40 (portrait) image: columns equal, values rising downwards.
  const v = tempDir(t);
  put(v, 'ramp.png', png(image(30, 40, 1, (_x, y) => [Math.round((y * 255) / 39)])));
  const q = loadImageFolder(v, { imageSize: 16 });
  const qa = (x: number, y: number): number => q.images[y * 16 + x]!;
  for (let y = 0; y < 16; y++) for (let x = 1; x < 16; x++) assert.ok(Math.abs(qa(x, y) - qa(0, y)) < 1e-6, `column ${x} differs at y=${y}`);
  for (let y = 1; y < 16; y++) assert.ok(qa(0, y) > qa(0, y - 1), `not rising at y=${y}`);
});

test('images of one non-square size without imageSize are center-cropped to their shorter side', (t) => {
  const d = tempDir(t);
  put(d, 'a.png', png(image(7, 5, 1, (x) => [x])));
  const f = loadImageFolder(d);
  assert.equal(f.size, 5);
  // left = round((7 - 5) / 2) = 1, so the first row is x = 1..5
  [1, 2, 3, 4, 5].forEach((x, i) => assert.ok(Math.abs(f.images[i]! - scaled(x)) < 1e-6, `row 0, column ${i}: ${f.images[i]}`));
});

test('loading leaves no tensors behind', (t) => {
  const d = tempDir(t);
  for (let i = 0; i < 5; i++) put(d, `${i}.png`, png(image(40, 30, 3, (x, y) => [x, y, i])));
  loadImageFolder(d, { imageSize: 16 });
  const before = liveTensors();
  loadImageFolder(d, { imageSize: 16, channels: 1 });
  assert.equal(liveTensors(), before);
});

// ------------------------------------------------------------------ refusals

test('refuses a missing folder, a file given as the folder, and a folder without images', (t) => {
  const d = tempDir(t);
  refuses(() => loadImageFolder(join(d, 'nope')), /nope: image folder does not exist; expected a folder of \.png, \.jpg, \.jpeg \(any case\) images/);
  const file = put(d, 'one.png', png(image(4, 4, 1, () => [0])));
  refuses(() => loadImageFolder(file), /one\.png: is not a folder.*found a file.*Hint: pass the folder that holds the image/);
  const empty = join(d, 'empty');
  put(empty, 'readme.txt', new Uint8Array([65]));
  put(empty, 'sub/data.bin', new Uint8Array([1]));
  refuses(() => loadImageFolder(empty), /empty: has no images; expected files ending in \.png, \.jpg, \.jpeg \(any case\).*found none/);
});

test('refuses a zero-byte file, naming it', (t) => {
  const d = tempDir(t);
  put(d, 'ok.png', png(image(4, 4, 1, () => [0])));
  put(d, 'sub/blank.jpg', new Uint8Array(0));
  refuses(() => loadImageFolder(d), /sub\/blank\.jpg: is empty \(0 bytes\); expected a JPEG image/);
});

test('refuses bytes that are not what the extension says, with a rename hint when they are the other format', (t) => {
  const a = tempDir(t);
  put(a, 'photo.png', jpg(4, 4, () => [0, 0, 0]));
  refuses(() => loadImageFolder(a), /photo\.png: is not a PNG file although its name ends in \.png; expected the PNG signature 89 50 4E 47 0D 0A 1A 0A, found FF D8 .*rename the file to \.jpg/);
  const b = tempDir(t);
  put(b, 'pic.JPG', png(image(4, 4, 1, () => [0])));
  refuses(() => loadImageFolder(b), /pic\.JPG: is not a JPEG file.*expected the JPEG start-of-image marker FF D8, found 89 50 4E 47.*rename the file to \.png/);
  const c = tempDir(t);
  put(c, 'text.jpeg', new TextEncoder().encode('hello'));
  refuses(() => loadImageFolder(c), /text\.jpeg: is not a JPEG file.*found 68 65 6C 6C 6F/);
});

test('refuses files that fail to decode, naming the file and the decoder\'s reason', (t) => {
  const a = tempDir(t);
  const good = png(image(16, 16, 3, (x, y) => [x * 16, y * 16, 0]));
  put(a, 'cut.png', good.subarray(0, good.length - 30));
  refuses(() => loadImageFolder(a), /cut\.png: cannot be decoded as PNG \(pngjs: .+\)/);
  const b = tempDir(t);
  const damaged = Buffer.from(good);
  damaged[45] = damaged[45]! ^ 0xff; // inside the IDAT chunk's compressed data: the CRC no longer matches
  put(b, 'crc.png', damaged);
  refuses(() => loadImageFolder(b), /crc\.png: cannot be decoded as PNG \(pngjs: .+\)/);
  const c = tempDir(t);
  const j = jpg(16, 16, (x, y) => [x * 16, y * 16, 0], 90);
  put(c, 'cut.jpg', j.subarray(0, Math.floor(j.length / 2)));
  refuses(() => loadImageFolder(c), /cut\.jpg: cannot be decoded as JPEG \(jpeg-js: .+\)/);
  const e = tempDir(t);
  put(e, 'headless.jpg', new Uint8Array([0xff, 0xd8, 0xff, 0xd9]));
  refuses(() => loadImageFolder(e), /headless\.jpg: JPEG has no frame header \(SOFn marker\)/);
  const f = tempDir(t);
  put(f, 'stub.png', good.subarray(0, 20));
  refuses(() => loadImageFolder(f), /stub\.png: PNG header is missing or truncated/);
});

/** A valid 4x4 PNG whose IHDR says width x height (its CRC then fails: only a header check can pass it). */
function pngClaiming(width: number, height: number): Uint8Array {
  const b = Buffer.from(png(image(4, 4, 1, () => [0])));
  b.writeUInt32BE(width, 16);
  b.writeUInt32BE(height, 20);
  return b;
}

test('refuses absurd dimensions from the header before decoding', (t) => {
  const a = tempDir(t);
  put(a, 'huge.png', pngClaiming(100000, 100000));
  refuses(() => loadImageFolder(a), /huge\.png: header gives a size of 100000x100000 \(width x height\); expected sides of at most 8192 pixels/);
  const b = tempDir(t);
  put(b, 'flat.png', pngClaiming(4, 0));
  refuses(() => loadImageFolder(b), /flat\.png: header gives a size of 4x0.*expected both sides at least 1 pixel/);
  const c = tempDir(t);
  put(c, 'big.png', png(image(40, 30, 1, () => [0])));
  refuses(() => loadImageFolder(c, { maxSide: 32 }), /big\.png: header gives a size of 40x30.*at most 32 pixels/);
  assert.equal(loadImageFolder(c, { maxSide: 40 }).n, 1);
  const e = tempDir(t);
  const j = Buffer.from(jpg(8, 8, () => [1, 2, 3]));
  const sof = j.indexOf(Buffer.from([0xff, 0xc0]));
  j.writeUInt16BE(0, sof + 5); // frame height 0 (a DNL-defined height, which we do not accept)
  put(e, 'zero.jpg', j);
  refuses(() => loadImageFolder(e), /zero\.jpg: header gives a size of 8x0/);
  const g = tempDir(t);
  const k = Buffer.from(jpg(8, 8, () => [1, 2, 3]));
  k.writeUInt16BE(9000, k.indexOf(Buffer.from([0xff, 0xc0])) + 7); // width
  put(g, 'wide.jpg', k);
  refuses(() => loadImageFolder(g), /wide\.jpg: header gives a size of 9000x8 \(width x height\); expected sides of at most 8192/);
  assert.deepEqual(readImageHeader(jpg(12, 5, () => [0, 0, 0]), 'x.jpg'), { format: 'jpeg', width: 12, height: 5, grey: false });
});

test('JPEG headers: grey is a one-component frame, found past APPn segments and fill bytes, progressive too', () => {
  // SOI, APP0 (2 payload bytes), fill byte, SOF2 (progressive): precision 8, height 0x0102, width 0x0304, 1 component.
  const grey = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0xaa, 0xbb, 0xff, 0xff, 0xc2, 0x00, 0x0b, 8, 0x01, 0x02, 0x03, 0x04, 1, 1, 0x11, 0]);
  assert.deepEqual(readImageHeader(grey, 'g.jpg'), { format: 'jpeg', width: 0x0304, height: 0x0102, grey: true });
  const colour = Uint8Array.from(grey);
  colour[18] = 3;
  assert.equal(readImageHeader(colour, 'c.jpg').grey, false);
  // DHT (C4) sits in the SOF range of marker codes but is not a frame header.
  assert.equal(readImageHeader(new Uint8Array([0xff, 0xd8, 0xff, 0xc4, 0x00, 0x03, 0x00, 0xff, ...grey.subarray(10)]), 'd.jpg').width, 0x0304);
  refuses(() => readImageHeader(new Uint8Array([0xff, 0xd8, 0x12, 0x34]), 'broken.jpg'), /broken\.jpg: JPEG structure is broken at byte 2; expected a marker \(FF xx\), found 12 34/);
  assert.deepEqual(readImageHeader(png(image(9, 7, 4, () => [0, 0, 0, 0])), 'a.png'), { format: 'png', width: 9, height: 7, grey: false });
  assert.equal(readImageHeader(png(image(9, 7, 1, () => [0])), 'a.png').grey, true);
});

test('refuses a mix of grey and colour images when channels are not given, naming one of each', (t) => {
  const d = tempDir(t);
  put(d, 'a/grey.png', png(image(4, 4, 1, () => [0])));
  put(d, 'b/colour.jpg', jpg(4, 4, () => [0, 0, 0]));
  refuses(() => loadImageFolder(d), /mixes grey and colour images \(grey: a\/grey\.png; colour: b\/colour\.jpg\); expected all grey or all colour.*--channels 1.*--channels 3/);
  assert.equal(loadImageFolder(d, { channels: 3 }).channels, 3);
});

test('refuses images of different sizes when imageSize is not given, naming two files and their sizes', (t) => {
  const d = tempDir(t);
  put(d, 'a.png', png(image(8, 8, 1, () => [0])));
  put(d, 'b.png', png(image(8, 8, 1, () => [0])));
  put(d, 'c.png', png(image(10, 6, 1, () => [0])));
  refuses(() => loadImageFolder(d), /holds images of different sizes \(a\.png is 8x8, c\.png is 10x6, width x height\).*--image-size N/);
  assert.equal(loadImageFolder(d, { imageSize: 6 }).size, 6);
  const tiny = tempDir(t);
  put(tiny, 't.png', png(image(3, 3, 1, () => [0])));
  refuses(() => loadImageFolder(tiny), /images are 3x3 pixels; expected a side of at least 4.*--image-size/);
});

test('refuses bad options: imageSize below 4 or fractional, channels other than 1 or 3', (t) => {
  const d = tempDir(t);
  put(d, 'a.png', png(image(8, 8, 1, () => [0])));
  refusesArg(() => loadImageFolder(d, { imageSize: 3 }), /image size must be an integer >= 4, got 3/);
  refusesArg(() => loadImageFolder(d, { imageSize: 4.5 }), /image size must be an integer >= 4, got 4\.5/);
  refusesArg(() => loadImageFolder(d, { channels: 2 as 1 }), /channels must be 1 \(grey\) or 3 \(RGB\), got 2/);
  refusesArg(() => loadImageFolder(d, { maxSide: 0 }), /maxSide must be a positive integer, got 0/);
  assert.equal(loadImageFolder(d, { imageSize: 4 }).size, 4);
});

test('nothing is written: the folder is byte-for-byte the same after loading', (t) => {
  const d = tempDir(t);
  const bytes = png(image(8, 8, 3, (x, y) => [x, y, 0]));
  const p = put(d, 'a.png', bytes);
  loadImageFolder(d, { imageSize: 4, channels: 1 });
  assert.deepEqual(readFileSync(p), Buffer.from(bytes));
});
