// IDX reader (the MNIST / Fashion-MNIST file format, http://yann.lecun.com/exdb/mnist/), byte-level
// and tensor-free. Header: 00 00, type byte, number of dims, then each dim as u32 big-endian; the
// payload follows, big-endian, and must be exactly product(dims) x itemsize bytes long.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export type IdxDtype = 'u8' | 'i8' | 'i16' | 'i32' | 'f32' | 'f64';
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
export interface IdxArray { dtype: IdxDtype; shape: number[]; data: IdxData }

export interface ImagesAndLabels {
  images: Uint8Array; // (N, H, W) row-major, 0..255
  labels: Uint8Array; // (N,)
  count: number;
  height: number;
  width: number;
}

/** An invalid or unreadable IDX file; `file` is the path (or source name) it came from. */
export class IdxError extends Error {
  override name = 'IdxError';
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
  }
}

interface Problem { expected?: string; found?: string; hint?: string }

function fail(file: string, what: string, p: Problem = {}): never {
  let msg = what;
  if (p.expected !== undefined) msg += `; expected ${p.expected}`;
  if (p.found !== undefined) msg += `, found ${p.found}`;
  if (p.hint !== undefined) msg += `. Hint: ${p.hint}`;
  throw new IdxError(file, msg);
}

const TYPES: Record<number, { dtype: IdxDtype; size: number }> = {
  0x08: { dtype: 'u8', size: 1 },
  0x09: { dtype: 'i8', size: 1 },
  0x0b: { dtype: 'i16', size: 2 },
  0x0c: { dtype: 'i32', size: 4 },
  0x0d: { dtype: 'f32', size: 4 },
  0x0e: { dtype: 'f64', size: 8 },
};
const TYPE_LIST = '0x08 (u8), 0x09 (i8), 0x0B (i16), 0x0C (i32), 0x0D (f32), 0x0E (f64)';
// Our datasets are labels (1-D) and images (3-D); 2-D is allowed for flattened images.
const MAX_DIMS = 3;
// Far above Fashion-MNIST's 47 MB: stops a gzip bomb before it fills memory.
const MAX_GUNZIP_BYTES = 1 << 30;

const hex = (b: number | undefined): string => (b === undefined ? 'EOF' : `0x${b.toString(16).padStart(2, '0').toUpperCase()}`);
const bytesWord = (n: bigint): string => (n === 1n ? 'one byte' : `${n} bytes`);

export function parseIdx(bytes: Uint8Array, source: string): IdxArray {
  if (bytes.length < 4) {
    fail(source, 'not an IDX file: too short for the 4-byte header (00 00, type, number of dims)', {
      expected: 'at least 4 bytes', found: `${bytes.length}`,
    });
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const gz = bytes[0] === 0x1f && bytes[1] === 0x8b;
    fail(source, 'bad magic: an IDX file starts with two zero bytes', {
      expected: '00 00', found: `${hex(bytes[0])} ${hex(bytes[1])}`,
      ...(gz ? { hint: 'these are gzip bytes; read the file with readIdxFile or gunzip it first' } : {}),
    });
  }
  const type = TYPES[bytes[2]!];
  if (type === undefined) {
    fail(source, `unknown type byte ${hex(bytes[2])}`, { expected: `one of ${TYPE_LIST}`, found: hex(bytes[2]) });
  }
  const ndims = bytes[3]!;
  if (ndims < 1 || ndims > MAX_DIMS) {
    fail(source, `${ndims} dimensions`, {
      expected: `1 to ${MAX_DIMS} (1 for labels, 3 for images N x H x W)`, found: `${ndims}`,
    });
  }
  const headerLen = 4 + 4 * ndims;
  if (bytes.length < headerLen) {
    fail(source, `header is truncated: ${ndims} dims need a ${headerLen}-byte header`, {
      expected: `${headerLen} bytes`, found: `${bytes.length}`,
    });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  for (let i = 0; i < ndims; i++) shape.push(view.getUint32(4 + 4 * i, false));

  // BigInt so a lying header (dims of 2^32-1) is compared, never multiplied into a bogus allocation.
  const want = shape.reduce((acc, d) => acc * BigInt(d), 1n) * BigInt(type.size);
  const have = BigInt(bytes.length - headerLen);
  if (have !== want) {
    const diff = have - want;
    const off = diff < 0n ? `${bytesWord(-diff)} short` : `${bytesWord(diff)} too many`;
    fail(source, `payload is ${off} for shape [${shape.join(', ')}] of ${type.dtype}`, {
      expected: `${want} payload bytes`, found: `${have}`,
      hint: diff < 0n ? 'the file is truncated (fetch it again) or its header is wrong' : 'the header does not describe this file',
    });
  }
  return { dtype: type.dtype, shape, data: decode(type.dtype, bytes.subarray(headerLen)) };
}

// Copies into a fresh, aligned buffer (offset 0) and converts big-endian on disk to host order.
function decode(dtype: IdxDtype, payload: Uint8Array): IdxData {
  // new Uint8Array(view) copies; Buffer#slice (readFileSync, gunzipSync give Buffers) would not.
  if (dtype === 'u8') return new Uint8Array(payload);
  if (dtype === 'i8') return new Int8Array(new Uint8Array(payload).buffer);
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  switch (dtype) {
    case 'i16': { const a = new Int16Array(payload.length / 2); for (let i = 0; i < a.length; i++) a[i] = v.getInt16(2 * i, false); return a; }
    case 'i32': { const a = new Int32Array(payload.length / 4); for (let i = 0; i < a.length; i++) a[i] = v.getInt32(4 * i, false); return a; }
    case 'f32': { const a = new Float32Array(payload.length / 4); for (let i = 0; i < a.length; i++) a[i] = v.getFloat32(4 * i, false); return a; }
    case 'f64': { const a = new Float64Array(payload.length / 8); for (let i = 0; i < a.length; i++) a[i] = v.getFloat64(8 * i, false); return a; }
  }
}

/** Reads an IDX file, raw or gzip-compressed (detected by the 1f 8b magic, not by the name). */
export function readIdxFile(path: string): IdxArray {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    fail(path, `cannot read the file (${(e as Error).message})`);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    bytes = gunzip(bytes, path);
  } else if (path.endsWith('.gz')) {
    fail(path, 'not a gzip file although the name ends in .gz', {
      expected: 'gzip magic 1f 8b', found: `${hex(bytes[0])} ${hex(bytes[1])}`,
      hint: 'if it is a raw IDX file, drop the .gz from its name',
    });
  }
  return parseIdx(bytes, path);
}

function gunzip(bytes: Uint8Array, path: string): Uint8Array {
  try {
    return gunzipSync(bytes, { maxOutputLength: MAX_GUNZIP_BYTES });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'Z_BUF_ERROR' || /unexpected end/i.test(err.message)) {
      fail(path, `truncated gzip file: the compressed stream ends early (zlib: ${err.message})`, {
        hint: 'the download was cut short; fetch the file again',
      });
    }
    if (err.code === 'ERR_BUFFER_TOO_LARGE') {
      fail(path, 'gzip data decompresses to more than 1 GiB', { expected: 'an IDX dataset file' });
    }
    fail(path, `corrupt gzip data (zlib: ${err.message})`, { hint: 'fetch the file again' });
  }
}

function describe(a: IdxArray): string {
  return `a ${a.shape.length}-D ${a.dtype} IDX file of shape [${a.shape.join(', ')}]`;
}

/** Loads an images file (u8, N x H x W) and its labels file (u8, N) and checks they belong together. */
export function loadImagesAndLabels(
  imagesPath: string,
  labelsPath: string,
  opts: { numClasses?: number } = {},
): ImagesAndLabels {
  const numClasses = opts.numClasses ?? 10;
  if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > 256) {
    throw new RangeError(`loadImagesAndLabels: numClasses must be an integer in 1..256 (u8 labels), found ${numClasses}`);
  }
  const img = readIdxFile(imagesPath);
  if (img.shape.length !== 3) {
    fail(imagesPath, `is ${describe(img)}; images need 3 dims (N, H, W)`, {
      ...(img.shape.length === 1 ? { hint: 'this looks like a labels file; pass the images file first' } : {}),
    });
  }
  if (img.dtype !== 'u8') fail(imagesPath, `images must be u8 (type 0x08)`, { expected: 'u8', found: img.dtype });
  const lab = readIdxFile(labelsPath);
  if (lab.shape.length !== 1) {
    fail(labelsPath, `is ${describe(lab)}; labels need 1 dim (N)`, {
      ...(lab.shape.length === 3 ? { hint: 'this looks like an images file; pass the labels file second' } : {}),
    });
  }
  if (lab.dtype !== 'u8') fail(labelsPath, `labels must be u8 (type 0x08)`, { expected: 'u8', found: lab.dtype });
  const [count, height, width] = img.shape as [number, number, number];
  if (lab.shape[0] !== count) {
    fail(labelsPath, `label count ${lab.shape[0]} does not match image count ${count} in ${imagesPath}`, {
      expected: `${count} labels`, found: `${lab.shape[0]}`, hint: 'images and labels must come from the same split',
    });
  }
  const labels = lab.data as Uint8Array;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i]! >= numClasses) {
      fail(labelsPath, `label at index ${i} is ${labels[i]}, outside the classes`, {
        expected: `0 <= label < ${numClasses}`, found: `${labels[i]}`,
      });
    }
  }
  return { images: img.data as Uint8Array, labels, count, height, width };
}
