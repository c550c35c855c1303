// A folder of PNG/JPEG images as a training set, in torchvision's ImageFolder convention (classes
// are the first-level subfolders) and with the transforms of torchvision's tensor path:
// Resize(size) (shorter side, antialiased bilinear), CenterCrop(size), ToTensor, t * 2 - 1.
// Headers are read and checked (signature, dimensions, grey or colour) for every file before any
// pixel is decoded, so one bad file is reported before minutes of decoding, and a lying header
// never becomes an allocation.
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import jpeg from 'jpeg-js';
import { decodePng, type Image8 } from '../io/png.js';
import { type Tensor, tensor, interpolate, tidy, noGrad, ArgumentError } from '../tensor/index.js';

export const IMAGE_EXTENSIONS: readonly string[] = Object.freeze(['.png', '.jpg', '.jpeg']);
const IMAGE_RE = /\.(png|jpe?g)$/i;
/** Default bound on a side read from a header: 8192^2 RGBA is 256 MiB once decoded. */
export const DEFAULT_MAX_SIDE = 8192;

export interface ImageFolderOptions {
  /** 1: grey (colour converted with Pillow's 'L' luma); 3: RGB (grey replicated). Default: what the images are. */
  channels?: 1 | 3;
  /** Shorter side resized to this, then center-cropped square. Default: the images' own (common) size. */
  imageSize?: number;
  /** Largest width or height accepted from a file's header (default 8192). */
  maxSide?: number;
}

export interface ImageFolder {
  /** (N, C, S, S) float32 in [-1, 1], images in the order of `files`. */
  images: Float32Array;
  n: number;
  channels: 1 | 3;
  size: number;
  /** Paths relative to `dir`, '/'-separated, sorted. */
  files: string[];
  /** Class index per image when every image sits in a first-level subfolder, else null. */
  labels: Int32Array | null;
  /** The sorted first-level subfolder names (label i is classNames[i]), else null. */
  classNames: string[] | null;
  /** The folder, absolute. */
  dir: string;
}

/** A bad folder or image file; `path` is the folder or file it is about. */
export class ImageFolderError extends Error {
  override name = 'ImageFolderError';
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
  }
}

interface Problem { expected?: string; found?: string; hint?: string }

function fail(path: string, what: string, p: Problem = {}): never {
  let msg = what;
  if (p.expected !== undefined) msg += `; expected ${p.expected}`;
  if (p.found !== undefined) msg += `, found ${p.found}`;
  if (p.hint !== undefined) msg += `. Hint: ${p.hint}`;
  throw new ImageFolderError(path, msg);
}

const EXTENSIONS_WORD = `${IMAGE_EXTENSIONS.join(', ')} (any case)`;

/** Image files under dir, recursively (symlinks followed, each real folder once), as sorted '/'-paths. */
export function listImageFiles(dir: string): string[] {
  const root = resolve(dir);
  let st;
  try {
    st = statSync(root);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail(root, code === 'ENOENT' ? 'image folder does not exist' : `cannot read the image folder (${(e as Error).message})`, {
      expected: `a folder of ${EXTENSIONS_WORD} images`, ...(code === 'ENOENT' ? { hint: 'check the path given as the data folder' } : {}),
    });
  }
  if (!st.isDirectory()) {
    fail(root, 'is not a folder', {
      expected: `a folder of ${EXTENSIONS_WORD} images`, found: 'a file',
      hint: IMAGE_RE.test(root) ? 'pass the folder that holds the image, not the image itself' : 'pass the folder that holds the images',
    });
  }
  const out: string[] = [];
  const seen = new Set<string>();
  const walk = (abs: string, rel: string): void => {
    let real: string;
    let entries;
    try {
      real = realpathSync(abs);
      entries = readdirSync(abs, { withFileTypes: true });
    } catch (e) {
      fail(abs, `cannot list the folder (${(e as Error).message})`, { hint: 'check its permissions' });
    }
    if (seen.has(real)) return; // a symlink loop or a second link to a folder already read
    seen.add(real);
    // Sorted, so which of two links to one folder is listed does not depend on the filesystem.
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const ent of entries) {
      const childAbs = join(abs, ent.name);
      const childRel = rel === '' ? ent.name : `${rel}/${ent.name}`;
      let isDir = ent.isDirectory();
      let isFile = ent.isFile();
      if (ent.isSymbolicLink()) {
        try {
          const s = statSync(childAbs);
          isDir = s.isDirectory();
          isFile = s.isFile();
        } catch {
          continue; // a dangling link names no image
        }
      }
      if (isDir) walk(childAbs, childRel);
      else if (isFile && IMAGE_RE.test(ent.name)) out.push(childRel);
    }
  };
  walk(root, '');
  // Code-unit order, the same for every locale, so a folder always lists (and labels) the same way.
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export interface ImageHeader {
  format: 'png' | 'jpeg';
  width: number;
  height: number;
  /** From the header alone: PNG colour types 0 and 4, or a one-component JPEG frame. */
  grey: boolean;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const hexBytes = (b: Uint8Array, n: number): string =>
  b.length === 0 ? 'no bytes' : Array.from(b.subarray(0, n), (x) => x.toString(16).padStart(2, '0').toUpperCase()).join(' ');
const isPng = (b: Uint8Array): boolean => PNG_SIGNATURE.every((x, i) => b[i] === x);
const isJpeg = (b: Uint8Array): boolean => b[0] === 0xff && b[1] === 0xd8;

/**
 * Format, size and grey-or-colour from a file's first bytes, checked against the name's extension;
 * no pixel is decoded. PNG: the IHDR chunk (PNG spec 11.2.2). JPEG: the first SOFn frame header
 * (ITU T.81 B.2.2), found by walking the marker segments.
 */
export function readImageHeader(bytes: Uint8Array, file: string): ImageHeader {
  const wantPng = /\.png$/i.test(file);
  if (bytes.length === 0) {
    fail(file, 'is empty (0 bytes)', { expected: `a ${wantPng ? 'PNG' : 'JPEG'} image`, hint: 'the file was not written completely; export it again or remove it' });
  }
  if (wantPng) {
    if (!isPng(bytes)) {
      fail(file, 'is not a PNG file although its name ends in .png', {
        expected: `the PNG signature ${hexBytes(Uint8Array.from(PNG_SIGNATURE), 8)}`, found: hexBytes(bytes, 8),
        ...(isJpeg(bytes) ? { hint: 'these are JPEG bytes (FF D8); rename the file to .jpg' } : {}),
      });
    }
    if (bytes.length < 33 || String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR') {
      fail(file, 'PNG header is missing or truncated', { expected: 'an IHDR chunk right after the signature', hint: 'the file is cut short or damaged; export it again' });
    }
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const colorType = bytes[25]!;
    return { format: 'png', width: v.getUint32(16, false), height: v.getUint32(20, false), grey: colorType === 0 || colorType === 4 };
  }
  if (!isJpeg(bytes)) {
    fail(file, 'is not a JPEG file although its name ends in .jpg or .jpeg', {
      expected: 'the JPEG start-of-image marker FF D8', found: hexBytes(bytes, 8),
      ...(isPng(bytes) ? { hint: 'these are PNG bytes; rename the file to .png' } : {}),
    });
  }
  let i = 2;
  while (i + 1 < bytes.length) {
    if (bytes[i] !== 0xff) {
      fail(file, `JPEG structure is broken at byte ${i}`, { expected: 'a marker (FF xx)', found: hexBytes(bytes.subarray(i), 2), hint: 'the file is damaged; export it again' });
    }
    let m = bytes[i + 1]!;
    while (m === 0xff && i + 2 < bytes.length) m = bytes[++i + 1]!; // fill bytes before a marker
    i += 2;
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) continue; // markers without a length
    if (m === 0xd9 || m === 0xda || i + 2 > bytes.length) break; // EOI or scan data before any frame
    const len = (bytes[i]! << 8) | bytes[i + 1]!;
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): precision, height, width, components.
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      if (i + 8 > bytes.length) break;
      const height = (bytes[i + 3]! << 8) | bytes[i + 4]!;
      const width = (bytes[i + 5]! << 8) | bytes[i + 6]!;
      return { format: 'jpeg', width, height, grey: bytes[i + 7] === 1 };
    }
    if (len < 2) fail(file, `JPEG marker segment FF ${m.toString(16).toUpperCase()} at byte ${i - 2} has length ${len}`, { expected: 'a length of at least 2', hint: 'the file is damaged' });
    i += len;
  }
  fail(file, 'JPEG has no frame header (SOFn marker) before its image data or end', {
    expected: 'a baseline or progressive JPEG', hint: 'the file is cut short or damaged; export it again',
  });
}

/** Decodes to 8-bit interleaved pixels, naming the file and the decoder's reason on failure. */
function decodeImage(bytes: Uint8Array, file: string, h: ImageHeader, maxSide: number): Image8 {
  let img: Image8;
  if (h.format === 'png') {
    try {
      img = decodePng(bytes, file);
    } catch (e) {
      const reason = ((e as Error).cause as Error | undefined)?.message ?? (e as Error).message;
      fail(file, `cannot be decoded as PNG (pngjs: ${reason})`, { hint: 'the file is damaged or cut short; export it again' });
    }
  } else {
    try {
      const mp = Math.ceil((maxSide * maxSide) / 1e6);
      // jpeg-js's own bounds (100 MP, 512 MB) would refuse sizes maxSide lets through.
      const d = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxResolutionInMP: mp, maxMemoryUsageInMB: Math.max(512, 16 * mp) });
      img = { width: d.width, height: d.height, channels: 3, data: d.data };
    } catch (e) {
      fail(file, `cannot be decoded as JPEG (jpeg-js: ${(e as Error).message})`, { hint: 'the file is damaged, cut short, or uses an unsupported JPEG mode (lossless, arithmetic, CMYK); re-save it as baseline JPEG or PNG' });
    }
  }
  if (img.width !== h.width || img.height !== h.height) {
    fail(file, 'decoded size differs from its header', { expected: `${h.width}x${h.height}`, found: `${img.width}x${img.height}` });
  }
  return img;
}

/**
 * Interleaved pixels -> planar (C, H, W) bytes with C = channels. Grey sources (by their header)
 * take the first sample of each pixel; alpha is dropped, as PIL's convert('RGB'). Colour to grey
 * is Pillow's 'L': L = R 299/1000 + G 587/1000 + B 114/1000 (ITU-R 601-2), computed as Pillow
 * does in 16.16 fixed point with rounding (Convert.c, L24), so pixels match Pillow's exactly.
 */
export function toPlanar(img: Image8, grey: boolean, channels: 1 | 3): Uint8Array {
  const { width, height, data } = img;
  const k = img.channels;
  const hw = width * height;
  const out = new Uint8Array(channels * hw);
  if (grey || k === 1) {
    for (let p = 0; p < hw; p++) out[p] = data[p * k]!;
    if (channels === 3) { out.copyWithin(hw, 0, hw); out.copyWithin(2 * hw, 0, hw); }
  } else if (channels === 1) {
    for (let p = 0; p < hw; p++) {
      const q = p * k;
      out[p] = (data[q]! * 19595 + data[q + 1]! * 38470 + data[q + 2]! * 7471 + 0x8000) >>> 16;
    }
  } else {
    for (let p = 0; p < hw; p++) {
      const q = p * k;
      out[p] = data[q]!;
      out[hw + p] = data[q + 1]!;
      out[2 * hw + p] = data[q + 2]!;
    }
  }
  return out;
}

// Python's round(): halves to even. torchvision's center_crop uses int(round((H - h) / 2)).
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision Resize(size) (an int): the shorter side becomes size, the longer int(size * long / short). */
export function resizedSize(width: number, height: number, size: number): { width: number; height: number } {
  if (width <= height) return { width: size, height: Math.trunc((size * height) / width) };
  return { width: Math.trunc((size * width) / height), height: size };
}

/** torchvision CenterCrop offsets into a (height, width) image for a size x size crop. */
export function centerCropOffsets(width: number, height: number, size: number): { top: number; left: number } {
  return { top: roundHalfEven((height - size) / 2), left: roundHalfEven((width - size) / 2) };
}

interface Entry { rel: string; abs: string; header: ImageHeader }

function checkOptions(dir: string, o: ImageFolderOptions): void {
  if (o.channels !== undefined && o.channels !== 1 && o.channels !== 3) {
    throw new ArgumentError(`loadImageFolder(${dir}): channels must be 1 (grey) or 3 (RGB), got ${String(o.channels)}`);
  }
  if (o.imageSize !== undefined && (!Number.isInteger(o.imageSize) || o.imageSize < 4)) {
    throw new ArgumentError(`loadImageFolder(${dir}): image size must be an integer >= 4, got ${String(o.imageSize)}; hint: --image-size 16, 28, 32 or 64`);
  }
  if (o.maxSide !== undefined && (!Number.isInteger(o.maxSide) || o.maxSide < 1)) {
    throw new ArgumentError(`loadImageFolder(${dir}): maxSide must be a positive integer, got ${String(o.maxSide)}`);
  }
}

/**
 * Loads every .png/.jpg/.jpeg under dir (recursively, sorted by relative path) as float32
 * (N, C, S, S) in [-1, 1]. Nothing is written to disk.
 */
export function loadImageFolder(dir: string, o: ImageFolderOptions = {}): ImageFolder {
  checkOptions(dir, o);
  const root = resolve(dir);
  const maxSide = o.maxSide ?? DEFAULT_MAX_SIDE;
  const rels = listImageFiles(root);
  if (rels.length === 0) {
    fail(root, 'has no images', {
      expected: `files ending in ${EXTENSIONS_WORD}, in the folder or its subfolders`, found: 'none',
      hint: 'check the path; convert other formats (.gif, .bmp, .webp) to PNG first',
    });
  }

  // Pass 1: headers only.
  const entries: Entry[] = rels.map((rel) => {
    const abs = join(root, rel);
    const header = readImageHeader(readBytes(abs), abs);
    const { width, height } = header;
    if (width === 0 || height === 0) {
      fail(abs, `header gives a size of ${width}x${height} (width x height)`, { expected: 'both sides at least 1 pixel', hint: 'the file is damaged; export it again' });
    }
    if (width > maxSide || height > maxSide) {
      fail(abs, `header gives a size of ${width}x${height} (width x height)`, {
        expected: `sides of at most ${maxSide} pixels`, hint: 'shrink the image first, or raise maxSide if it is meant to be this large',
      });
    }
    return { rel, abs, header };
  });

  let channels = o.channels;
  if (channels === undefined) {
    const g = entries.find((e) => e.header.grey);
    const c = entries.find((e) => !e.header.grey);
    if (g && c) {
      fail(root, `mixes grey and colour images (grey: ${g.rel}; colour: ${c.rel})`, {
        expected: 'all grey or all colour when the channels are not given',
        hint: 'pass --channels 1 to convert all to grey or --channels 3 to train on RGB',
      });
    }
    channels = g ? 1 : 3;
  }

  let size = o.imageSize;
  if (size === undefined) {
    const first = entries[0]!;
    const other = entries.find((e) => e.header.width !== first.header.width || e.header.height !== first.header.height);
    const dims = (e: Entry): string => `${e.header.width}x${e.header.height}`;
    if (other) {
      fail(root, `holds images of different sizes (${first.rel} is ${dims(first)}, ${other.rel} is ${dims(other)}, width x height)`, {
        expected: 'one size when the image size is not given',
        hint: 'pass --image-size N to resize each image (shorter side) and center-crop it to NxN',
      });
    }
    size = Math.min(first.header.width, first.header.height);
    if (size < 4) {
      fail(root, `images are ${dims(first)} pixels`, { expected: 'a side of at least 4', hint: 'pass --image-size N (N >= 4) to resize them up' });
    }
  }

  // Pass 2: decode, convert and resize one image at a time, so only the result stays in memory.
  const c = channels;
  const s = size;
  const per = c * s * s;
  const images = new Float32Array(entries.length * per);
  noGrad(() => {
    entries.forEach((e, i) => {
      const img = decodeImage(readBytes(e.abs), e.abs, e.header, maxSide);
      const planar = toPlanar(img, e.header.grey, c);
      const { width: w, height: h } = img;
      const r = resizedSize(w, h, s);
      const { top, left } = centerCropOffsets(r.width, r.height, s);
      const out = tidy(() => {
        let x = tensor(planar, [1, c, h, w]).float().div(255); // (1, C, H, W) ToTensor: [0, 1]
        if (r.width !== w || r.height !== h) x = interpolate(x, { size: [r.height, r.width], mode: 'bilinear', antialias: true });
        return x.narrow(2, top, s).narrow(3, left, s).mul(2).sub(1).dataSync(); // (1, C, S, S) in [-1, 1]
      });
      images.set(out as Float32Array, i * per);
    });
  });

  const files = entries.map((e) => e.rel);
  // torchvision ImageFolder: classes are the first-level subfolders; here only those holding images.
  let labels: Int32Array | null = null;
  let classNames: string[] | null = null;
  if (files.every((f) => f.includes('/'))) {
    const first = files.map((f) => f.slice(0, f.indexOf('/')));
    classNames = [...new Set(first)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const index = new Map(classNames.map((n, k) => [n, k]));
    labels = Int32Array.from(first, (n) => index.get(n)!);
  }
  return { images, n: entries.length, channels: c, size: s, files, labels, classNames, dir: root };
}

function readBytes(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (e) {
    fail(file, `cannot read the file (${(e as Error).message})`);
  }
}

/**
 * The first `limit` images (all when absent) as the tensors BatchLoader takes: images float32
 * (N, C, S, S) and labels int64 (N,) (what embedding() indexes with), or null without classes.
 */
export function imageFolderTensors(f: ImageFolder, limit?: number): { images: Tensor; labels: Tensor | null } {
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new ArgumentError(`imageFolderTensors(${f.dir}): limit must be a positive integer, got ${String(limit)}`);
  }
  const n = Math.min(limit ?? f.n, f.n);
  const per = f.channels * f.size * f.size;
  const images = tensor(f.images.subarray(0, n * per), [n, f.channels, f.size, f.size]); // (N, C, S, S)
  const labels = f.labels ? tensor(BigInt64Array.from(f.labels.subarray(0, n), (l) => BigInt(l)), [n]) : null; // (N,) int64
  return { images, labels };
}
