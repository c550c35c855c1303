// Mutation fuzzer for the two parsers that read untrusted bytes: safetensors (checkpoints anyone
// can hand us) and IDX (downloads, raw or gzip). Contract per input: either a self-consistent
// result or the module's own error class (SafetensorsError / IdxError); anything else (RangeError,
// TypeError from the internals), a slow input or memory growth from a lying header is a failure,
// saved under $TMPDIR for reproduction. Usage: npm run fuzz -- [--iterations N] [--seed N] [--replay I]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gzipSync } from 'node:zlib';
import {
  MAX_HEADER_SIZE, SAFETENSORS_DTYPES, SafetensorsError, dtypeByteSize, isSafetensorsDtype, parseSafetensors,
  readSafetensorsFile, serializeSafetensors, type ParsedSafetensors, type RawTensor, type SafetensorsDtype,
} from '../src/io/safetensors.js';
import { IdxError, parseIdx, readIdxFile, type IdxArray } from '../src/data/idx.js';

export interface FuzzOptions {
  iterations?: number;
  seed?: number;
  /** Run only this iteration (as numbered in a failure report). */
  replay?: number;
  /** An input slower than this (measured twice) is a failure. */
  timeLimitMs?: number;
  /** arrayBuffers growth over the post-seed baseline that counts as a failure. */
  memoryLimitBytes?: number;
  /** Where failing inputs are written; defaults to $TMPDIR/ddpm-fuzz-failures. */
  failureDir?: string;
  log?: (line: string) => void;
}

export type FuzzTarget = 'safetensors' | 'safetensors-file' | 'idx' | 'idx-file';

export interface FuzzFailure {
  iteration: number;
  target: FuzzTarget;
  kind: 'exception' | 'inconsistent' | 'slow' | 'memory';
  message: string;
  /** The saved input (undefined once too many were saved). */
  file: string | undefined;
}

export interface FuzzSummary {
  seed: number;
  inputs: number;
  accepted: number;
  refused: number;
  byTarget: Record<FuzzTarget, number>;
  failures: FuzzFailure[];
  /** Refusals by the kind of message (numbers, names and paths blanked): which checks the inputs reached. */
  refusals: Record<string, number>;
  maxMs: number;
  /** The iteration that took maxMs (replay it with --replay). */
  slowest: number;
  peakRss: number;
  peakArrayBuffersOverBaseline: number;
  seconds: number;
}

const DEFAULT_ITERATIONS = 10_000;
const MB = 1 << 20;
const MAX_SAVED = 50;

// ---------------------------------------------------------------------------------------------
// Seeded randomness: mulberry32, one stream per iteration so any input can be replayed alone.

export class Rng {
  #s: number;
  constructor(seed: number) { this.#s = seed >>> 0; }
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  float(): number { return this.u32() / 2 ** 32; }
  int(n: number): number { return Math.floor(this.float() * n); }
  /** Inclusive range. */
  range(lo: number, hi: number): number { return lo + this.int(hi - lo + 1); }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]!; }
  chance(p: number): boolean { return this.float() < p; }
  bytes(n: number): Uint8Array { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff; return b; }
}

function iterationSeed(seed: number, i: number): number {
  // splitmix32-style mix, so neighbouring (seed, i) give unrelated streams.
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x21f0aaad);
  h = Math.imul(h ^ (h >>> 15), 0x735a2d97);
  return (h ^ (h >>> 15)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Seeds: valid files built in code.

function rawTensor(rng: Rng, dtype: SafetensorsDtype, shape: number[]): RawTensor {
  const n = shape.reduce((a, b) => a * b, 1) * dtypeByteSize(dtype);
  return { dtype, shape, data: rng.bytes(n) };
}

function safetensorsSeeds(): Uint8Array[] {
  const rng = new Rng(1);
  const t = (d: SafetensorsDtype, s: number[]): RawTensor => rawTensor(rng, d, s);
  const out: Uint8Array[] = [
    serializeSafetensors({
      'conv.weight': t('F32', [2, 1, 3, 3]), 'conv.bias': t('F32', [2]), steps: t('I64', [1]), mask: t('BOOL', [2, 2]),
      half: t('F16', [4]), brain: t('BF16', [2, 1]),
    }, { format: 'pt', producer: 'ddpm-ts' }),
    serializeSafetensors({ x: t('U8', [5]) }),
    serializeSafetensors({}, { only: 'metadata' }),
    serializeSafetensors({}),
    serializeSafetensors({
      scalar: t('F64', []), empty: t('I32', [0, 3]), u16: t('U16', [3]), u32: t('U32', [2]), u64: t('U64', [1]),
      i8: t('I8', [2]), i16: t('I16', [2, 2]), zero: t('F32', [4, 0]),
    }),
    serializeSafetensors({ 'ünï/çødé.weight': t('F32', [1, 1, 2]), 'a"b\\c\n': t('U8', [1]) }, { 'k\u00e9y': 'v\u2028' }),
  ];
  // Hand-written: whitespace, no padding, metadata null, offsets listed out of file order.
  const header = '{ "b" : {"dtype":"F32","shape":[2],"data_offsets":[4,12]}, "__metadata__":null,\n'
    + '"a":{"data_offsets":[0,4],"shape":[2,2],"dtype":"U8"} }';
  out.push(withHeader(header, rng.bytes(12)));
  return out;
}

function withHeader(header: string, data: Uint8Array, prefix?: bigint): Uint8Array {
  const h = Buffer.from(header, 'utf8');
  const out = new Uint8Array(8 + h.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, prefix ?? BigInt(h.byteLength), true);
  out.set(h, 8);
  out.set(data, 8 + h.byteLength);
  return out;
}

const IDX_TYPES: Record<string, { code: number; size: number }> = {
  u8: { code: 0x08, size: 1 }, i8: { code: 0x09, size: 1 }, i16: { code: 0x0b, size: 2 },
  i32: { code: 0x0c, size: 4 }, f32: { code: 0x0d, size: 4 }, f64: { code: 0x0e, size: 8 },
};

function idxFile(rng: Rng, dtype: string, shape: number[]): Uint8Array {
  const { code, size } = IDX_TYPES[dtype]!;
  const n = shape.reduce((a, b) => a * b, 1) * size;
  const out = new Uint8Array(4 + 4 * shape.length + n);
  const v = new DataView(out.buffer);
  out[2] = code;
  out[3] = shape.length;
  shape.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  // Labels stay in 0..9 so seeds are valid datasets, not just valid IDX.
  const payload = rng.bytes(n).map((b) => (shape.length === 1 && dtype === 'u8' ? b % 10 : b));
  out.set(payload, 4 + 4 * shape.length);
  return out;
}

function idxSeeds(): Uint8Array[] {
  const rng = new Rng(2);
  return [
    idxFile(rng, 'u8', [3, 4, 5]), // images (N, H, W)
    idxFile(rng, 'u8', [3]), // labels (N,)
    idxFile(rng, 'u8', [2, 12]), // flattened images
    idxFile(rng, 'u8', [0, 28, 28]),
    idxFile(rng, 'u8', [0]),
    idxFile(rng, 'i8', [5]),
    idxFile(rng, 'i16', [4]),
    idxFile(rng, 'i32', [2, 2]),
    idxFile(rng, 'f32', [3]),
    idxFile(rng, 'f64', [2, 1, 1]),
  ];
}

// ---------------------------------------------------------------------------------------------
// Mutations. Each returns a new array; none mutates its input.

// Plain Uint8Array copies throughout: Buffer#slice is a view, and mutating one would corrupt the seeds.
function copy(b: Uint8Array): Uint8Array { return new Uint8Array(b); }

const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x01, 0x20, 0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x5c];

function flipBit(rng: Rng, b: Uint8Array): Uint8Array {
  if (b.length === 0) return b;
  const out = copy(b);
  out[rng.int(out.length)]! ^= 1 << rng.int(8);
  return out;
}

function setByte(rng: Rng, b: Uint8Array): Uint8Array {
  if (b.length === 0) return b;
  const out = copy(b);
  // Bias toward the header, where the parser makes its decisions.
  const at = rng.chance(0.6) ? rng.int(Math.min(out.length, 64)) : rng.int(out.length);
  out[at] = rng.pick(INTERESTING_BYTES);
  return out;
}

function truncate(rng: Rng, b: Uint8Array): Uint8Array {
  if (b.length === 0) return b;
  const cut = rng.chance(0.3) ? rng.range(1, Math.min(8, b.length)) : rng.range(1, b.length);
  return copy(b.subarray(0, b.length - cut));
}

function extend(rng: Rng, b: Uint8Array): Uint8Array {
  const n = rng.chance(0.5) ? rng.range(1, 8) : rng.range(1, 300);
  const junk = rng.chance(0.3) ? new Uint8Array(n).fill(rng.pick(INTERESTING_BYTES)) : rng.bytes(n);
  const out = new Uint8Array(b.length + n);
  out.set(b);
  out.set(junk, b.length);
  return out;
}

function duplicateChunk(rng: Rng, b: Uint8Array): Uint8Array {
  if (b.length === 0) return b;
  const start = rng.int(b.length);
  const len = rng.range(1, Math.min(64, b.length - start));
  const at = rng.int(b.length + 1);
  const chunk = copy(b.subarray(start, start + len));
  const out = new Uint8Array(b.length + len);
  out.set(b.subarray(0, at));
  out.set(chunk, at);
  out.set(b.subarray(at), at + len);
  return out;
}

function deleteChunk(rng: Rng, b: Uint8Array): Uint8Array {
  if (b.length === 0) return b;
  const start = rng.int(b.length);
  const len = rng.range(1, Math.min(64, b.length - start));
  const out = new Uint8Array(b.length - len);
  out.set(b.subarray(0, start));
  out.set(b.subarray(start + len), start);
  return out;
}

function overwriteChunk(rng: Rng, b: Uint8Array): Uint8Array {
  if (b.length < 2) return b;
  const from = rng.int(b.length);
  const to = rng.int(b.length);
  const len = rng.range(1, Math.min(32, b.length - Math.max(from, to)));
  const out = copy(b);
  out.set(b.subarray(from, from + len), to);
  return out;
}

const GENERIC = [flipBit, setByte, setByte, truncate, extend, duplicateChunk, deleteChunk, overwriteChunk];

// --- safetensors: the 8-byte length prefix and the JSON header

function headerLengthRewrite(rng: Rng, b: Uint8Array): Uint8Array {
  if (b.length < 8) return b;
  const out = copy(b);
  const v = new DataView(out.buffer);
  const n = v.getBigUint64(0, true);
  const total = BigInt(out.length);
  const choices: bigint[] = [
    0xffffffffffffffffn, 0x8000000000000000n, 2n ** 53n + 1n, 2n ** 53n - 1n, 2n ** 32n, 2n ** 32n - 1n, 2n ** 31n,
    BigInt(MAX_HEADER_SIZE), BigInt(MAX_HEADER_SIZE) + 1n, // huge
    0n, 1n, 2n, 7n, // small
    n + 1n, n - 1n, n + 8n, n - 8n, total - 8n, total - 7n, total, // off by one
  ];
  const c = rng.pick(choices);
  v.setBigUint64(0, BigInt.asUintN(64, c), true);
  return out;
}

const NUMBER_LITERALS = [
  '0', '1', '-1', '2', '3', '7', '8', '255', '256', '65535', '4294967295', '4294967296', '9007199254740991',
  '9007199254740992', '18446744073709551615', '18446744073709551616', '99999999999999999999999999', '1e3', '1E400',
  '1.0', '1.5', '-0', '00', '01', '0x10', '1e-7', 'NaN', 'Infinity', '"4"', 'null', 'true', '[]', '{}',
];
const DTYPE_LITERALS = [
  ...SAFETENSORS_DTYPES, 'F8_E4M3', 'F8_E5M2', 'f32', 'F32 ', '', 'U8\\u0000', 'C64', 'F4', 'BOOL\\n', '__proto__', 'toString',
];

interface HeaderParts { header: string; data: Uint8Array }

function splitSafetensors(b: Uint8Array): HeaderParts | null {
  if (b.length < 8) return null;
  const n = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(b.length - 8)) return null;
  const len = Number(n);
  return { header: Buffer.from(b.subarray(8, 8 + len)).toString('utf8'), data: copy(b.subarray(8 + len)) };
}

/** Replaces the match at a random one of `re`'s matches in s. */
function editMatch(rng: Rng, s: string, re: RegExp, f: (m: RegExpExecArray) => string): string {
  const ms = [...s.matchAll(re)];
  if (ms.length === 0) return s;
  const m = rng.pick(ms);
  return s.slice(0, m.index) + f(m) + s.slice(m.index + m[0].length);
}

function editHeaderText(rng: Rng, h: string): string {
  switch (rng.int(15)) {
    case 0: // a number in data_offsets or shape
      return editMatch(rng, h, /-?\d+/g, (m) => (rng.chance(0.3) ? String(Number(m[0]) + rng.pick([-1, 1, 8, -8, 4096])) : rng.pick(NUMBER_LITERALS)));
    case 1: // a dtype name
      return editMatch(rng, h, /"dtype"\s*:\s*"[^"]*"/g, () => `"dtype":"${rng.pick(DTYPE_LITERALS)}"`);
    case 2: { // insert a key into a tensor entry or the root
      const key = rng.pick(['"extra":1', '"dtype":"U8"', '"shape":[1]', '"data_offsets":[0,0]', '"__proto__":{}', '"constructor":null', '"":""']);
      return editMatch(rng, h, /\{/g, (m) => `${m[0]}${key},`);
    }
    case 3: { // insert a root entry
      const entry = rng.pick([
        '"__metadata__":{"a":"b"}', '"__metadata__":{"a":1}', '"__metadata__":null', '"__metadata__":[]', '"__metadata__":"x"',
        '"__proto__":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}', '"z":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}',
        '"y":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}', '"w":null', '"v":[1,2]',
      ]);
      return h.startsWith('{') ? `{${entry}${/^\{\s*\}/.test(h) ? '' : ','}${h.slice(1)}` : h;
    }
    case 4: // remove a field
      return editMatch(rng, h, /"(dtype|shape|data_offsets)"\s*:\s*("[^"]*"|\[[^\]]*\])\s*,?/g, () => '');
    case 5: // remove a whole entry
      return editMatch(rng, h, /"[^"]*"\s*:\s*\{[^{}]*\}\s*,?/g, () => '');
    case 6: // duplicate an entry (duplicate key)
      return editMatch(rng, h, /"[^"]*"\s*:\s*\{[^{}]*\}/g, (m) => `${m[0]},${m[0]}`);
    case 7: // shape edits
      return editMatch(rng, h, /"shape"\s*:\s*\[[^\]]*\]/g, (m) => {
        const inner = m[0].slice(m[0].indexOf('[') + 1, -1);
        return `"shape":${rng.pick([`[${inner}${inner ? ',' : ''}${rng.pick(['0', '1', '2', '65536', '4294967296'])}]`,
          `[${inner.split(',').slice(1).join(',')}]`, '[]', '3', '[[1]]', '[-1]', `[${inner},]`, '[1.0]', '["2"]'])}`;
      });
    case 8: // data_offsets shapes
      return editMatch(rng, h, /"data_offsets"\s*:\s*\[\s*(\d+)\s*,\s*(\d+)\s*\]/g, (m) => `"data_offsets":${rng.pick([
        `[${m[2]},${m[1]}]`, `[${m[1]}]`, `[${m[1]},${m[2]},${m[2]}]`, '[]', `[${m[1]},${Number(m[2]) + 1}]`, `[${m[1]},null]`, `{"0":${m[1]}}`,
      ])}`);
    case 9: { // structure: truncation, trailing comma, nesting, BOM, bad escapes
      const at = rng.int(h.length + 1);
      const ins = rng.pick(['', ',', '}', ']', '"', '\\', '\\u12', '\\ud800', '\\udc00', '\\ud800\\u0041', '\u0000', '\u00ff',
        '[[[[[[[[[[', '['.repeat(200) + ']'.repeat(200), ' \t\r\n', '\ufeff', '\ud83d\ude00', 'tru', 'nul']);
      return rng.chance(0.3) ? h.slice(0, at) : h.slice(0, at) + ins + h.slice(at);
    }
    case 10: // a name edit: escapes, empty, reserved
      return editMatch(rng, h, /"([^"\\]+)"\s*:\s*\{"(?:dtype|shape|data_offsets)/g, (m) =>
        m[0].replace(m[1]!, rng.pick(['', '__metadata__', '__proto__', '\\u0041', '\\"', 'a\\nb', 'x'.repeat(300), m[1]!.toUpperCase()])));
    case 11: // a whole new header around the same data
      return rng.pick(['{}', '[]', '""', 'null', '{"a":{}}', '{"a":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}', h.trimEnd()]);
    case 12: // a dtype of the same size: still valid, exercises acceptance and the round trip
      return editMatch(rng, h, /"dtype"\s*:\s*"([^"]*)"/g, (m) => {
        const d = m[1]!;
        const same = isSafetensorsDtype(d) ? SAFETENSORS_DTYPES.filter((x) => dtypeByteSize(x) === dtypeByteSize(d)) : SAFETENSORS_DTYPES;
        return `"dtype":"${rng.pick(same)}"`;
      });
    case 13: // the same element count in another shape: valid
      return editMatch(rng, h, /"shape"\s*:\s*\[([^\]]*)\]/g, (m) => {
        const dims = m[1]!.split(',').filter((x) => x.trim() !== '').map(Number);
        const n = product(dims);
        const options = [[n], [1, n], [n, 1], [...dims].reverse(), [...dims, 1], n === 1 ? [] : [n]];
        return `"shape":${JSON.stringify(rng.pick(options))}`;
      });
    default: // one tensor's offsets moved: gaps, overlaps, past the end
      return editMatch(rng, h, /"data_offsets"\s*:\s*\[\s*(\d+)\s*,\s*(\d+)\s*\]/g, (m) => {
        const k = rng.pick([-8, -4, -2, -1, 1, 2, 4, 8, Number(m[2]) - Number(m[1])]);
        return `"data_offsets":[${Number(m[1]) + k},${Number(m[2]) + k}]`;
      });
  }
}

function headerEdit(rng: Rng, b: Uint8Array): Uint8Array {
  const parts = splitSafetensors(b);
  if (!parts) return flipBit(rng, b);
  let h = parts.header;
  for (let k = rng.range(1, 2); k > 0; k--) h = editHeaderText(rng, h);
  // Mostly a truthful prefix (so the edit reaches validation), padded to 8 like the writer or not.
  if (rng.chance(0.5)) h = h.trimEnd().padEnd(Math.ceil(Buffer.byteLength(h.trimEnd()) / 8) * 8, ' ');
  const len = BigInt(Buffer.byteLength(h, 'utf8'));
  const prefix = rng.chance(0.85) ? len : len + BigInt(rng.pick([-1, 1, 8]));
  return withHeader(h, parts.data, BigInt.asUintN(64, prefix));
}

/**
 * A generic mutation aimed at the header or at the data section, with the length prefix kept
 * truthful most of the time, so byte-level damage reaches the JSON and layout checks instead of
 * dying at the prefix check.
 */
function sectionMutation(rng: Rng, b: Uint8Array): Uint8Array {
  const parts = splitSafetensors(b);
  const f = rng.pick(GENERIC);
  if (!parts || rng.chance(0.1)) return f(rng, b);
  const header = copy(b.subarray(8, b.length - parts.data.length));
  if (rng.chance(0.35)) return concatFile(header, f(rng, parts.data), BigInt(header.length));
  const h = f(rng, header);
  return concatFile(h, parts.data, rng.chance(0.85) ? BigInt(h.length) : BigInt(header.length));
}

function concatFile(header: Uint8Array, data: Uint8Array, prefix: bigint): Uint8Array {
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, prefix, true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

// --- IDX: the type byte, the number of dims, the u32 big-endian sizes

function idxDimRewrite(rng: Rng, b: Uint8Array): Uint8Array {
  if (b.length < 8) return b;
  const out = copy(b);
  const v = new DataView(out.buffer);
  const ndims = Math.min(out[3]!, Math.floor((out.length - 4) / 4));
  if (ndims === 0) return out;
  const i = rng.int(ndims);
  const d = v.getUint32(4 + 4 * i, false);
  if (rng.chance(0.15)) {
    for (let k = 0; k < ndims; k++) v.setUint32(4 + 4 * k, 0xffffffff, false); // product far past 2^53
  } else {
    v.setUint32(4 + 4 * i, rng.pick([0, 1, 2, 0xffffffff, 0xfffffffe, 0x80000000, 0x7fffffff, 0x10000, 0x01000000, d + 1, d - 1, d * 2]) >>> 0, false);
  }
  return out;
}

function idxTypeRewrite(rng: Rng, b: Uint8Array): Uint8Array {
  if (b.length < 4) return b;
  const out = copy(b);
  if (rng.chance(0.6)) out[2] = rng.pick([0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x00, 0xff]);
  else out[3] = rng.pick([0, 1, 2, 3, 4, 255]);
  if (rng.chance(0.15)) { out[0] = rng.pick([0x1f, 0x01, 0xff]); out[1] = rng.pick([0x8b, 0x00]); }
  return out;
}

/** A new valid file: other dims (and type) with a payload of exactly the right length. */
function idxConsistent(rng: Rng, b: Uint8Array): Uint8Array {
  const ndims = rng.range(1, 3);
  const shape = Array.from({ length: ndims }, () => rng.pick([0, 1, 2, 3, 5, 7, 8]));
  const dtype = rng.chance(0.5) && b.length > 2 ? (Object.keys(IDX_TYPES).find((k) => IDX_TYPES[k]!.code === b[2]) ?? 'u8') : rng.pick(Object.keys(IDX_TYPES));
  return idxFile(rng, dtype, shape);
}

function applyMutations(rng: Rng, b: Uint8Array, special: ((r: Rng, x: Uint8Array) => Uint8Array)[], pSpecial = 0.55): Uint8Array {
  let out = b;
  const n = 1 + Math.floor(rng.float() ** 2 * 4);
  for (let k = 0; k < n; k++) {
    const f = rng.chance(pSpecial) ? rng.pick(special) : rng.pick(GENERIC);
    out = f(rng, out);
  }
  return out;
}

/** The same bytes at an odd offset inside a larger buffer: catches code that forgets byteOffset. */
function offsetView(rng: Rng, b: Uint8Array): Uint8Array {
  const pad = rng.range(1, 13);
  const big = new Uint8Array(pad + b.length + rng.int(5)).fill(0xee);
  big.set(b, pad);
  return big.subarray(pad, pad + b.length);
}

// ---------------------------------------------------------------------------------------------
// Contract checks. Return a description of the inconsistency, or null.

function product(shape: readonly number[]): number { return shape.reduce((a, b) => a * b, 1); }

function checkSafetensors(input: Uint8Array, r: ParsedSafetensors, inMemory: boolean): string | null {
  for (const [name, t] of r.tensors) {
    if (!isSafetensorsDtype(t.dtype)) return `tensor ${JSON.stringify(name)}: dtype ${String(t.dtype)} is not a safetensors dtype`;
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return `tensor ${JSON.stringify(name)}: shape ${JSON.stringify(t.shape)}`;
    if (!(t.data instanceof Uint8Array)) return `tensor ${JSON.stringify(name)}: data is not a Uint8Array`;
    const want = product(t.shape) * dtypeByteSize(t.dtype);
    if (t.data.byteLength !== want) {
      return `tensor ${JSON.stringify(name)}: ${t.data.byteLength} data bytes for shape ${JSON.stringify(t.shape)} x ${t.dtype} = ${want}`;
    }
    if (inMemory) {
      const lo = input.byteOffset + 8;
      const hi = input.byteOffset + input.byteLength;
      if (t.data.buffer !== input.buffer || t.data.byteOffset < lo || t.data.byteOffset + t.data.byteLength > hi) {
        return `tensor ${JSON.stringify(name)}: data view [${t.data.byteOffset}, +${t.data.byteLength}) lies outside the input [${lo}, ${hi})`;
      }
    }
  }
  if (Object.values(r.metadata).some((v) => typeof v !== 'string')) return 'a metadata value is not a string';
  // What was accepted must write back and read back the same (the writer's own checks agree).
  let again: ParsedSafetensors;
  try {
    again = parseSafetensors(serializeSafetensors(Object.fromEntries(r.tensors), Object.keys(r.metadata).length ? r.metadata : undefined));
  } catch (e) {
    return `accepted, but writing it back fails: ${(e as Error).message}`;
  }
  if (again.tensors.size !== r.tensors.size) return `round trip has ${again.tensors.size} tensors, not ${r.tensors.size}`;
  for (const [name, t] of r.tensors) {
    const u = again.tensors.get(name);
    if (!u || u.dtype !== t.dtype || u.shape.join() !== t.shape.join() || !Buffer.from(u.data).equals(Buffer.from(t.data))) {
      return `tensor ${JSON.stringify(name)} differs after a round trip`;
    }
  }
  if (JSON.stringify(again.metadata) !== JSON.stringify(r.metadata)) return 'metadata differs after a round trip';
  return null;
}

const IDX_ARRAYS: Record<string, { ctor: unknown; size: number }> = {
  u8: { ctor: Uint8Array, size: 1 }, i8: { ctor: Int8Array, size: 1 }, i16: { ctor: Int16Array, size: 2 },
  i32: { ctor: Int32Array, size: 4 }, f32: { ctor: Float32Array, size: 4 }, f64: { ctor: Float64Array, size: 8 },
};

function checkIdx(input: Uint8Array | null, r: IdxArray): string | null {
  const kind = IDX_ARRAYS[r.dtype];
  if (!kind) return `unknown dtype ${String(r.dtype)}`;
  if (r.data.constructor !== kind.ctor) return `dtype ${r.dtype} came back as a ${r.data.constructor.name}`;
  if (r.shape.length < 1 || !r.shape.every((d) => Number.isInteger(d) && d >= 0 && d <= 0xffffffff)) return `shape ${JSON.stringify(r.shape)}`;
  if (r.data.length !== product(r.shape)) return `${r.data.length} elements for shape [${r.shape.join(', ')}] (${product(r.shape)})`;
  if (input !== null) {
    if (r.data.buffer === input.buffer) return 'data aliases the input bytes (expected a fresh copy)';
    if (4 + 4 * r.shape.length + r.data.length * kind.size !== input.length) return 'header + payload length differs from the input length';
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// The loop.

type Outcome = { ok: true; problem: string | null } | { ok: false; error: unknown };

/** Scratch folder for the via-file inputs: tmpfs when there is one (a disk write per input is ~10x slower). */
function workDir(): string {
  try {
    return mkdtempSync(path.join('/dev/shm', 'ddpm-fuzz-'));
  } catch {
    return mkdtempSync(path.join(tmpdir(), 'ddpm-fuzz-'));
  }
}

function getGc(): (() => void) | null {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return g;
  try {
    // Lets the loop start each memory sample from collected garbage without needing node --expose-gc.
    setFlagsFromString('--expose-gc');
    const fn = runInNewContext('gc') as unknown;
    return typeof fn === 'function' ? (fn as () => void) : null;
  } catch {
    return null;
  }
}

export async function runFuzz(o: FuzzOptions = {}): Promise<FuzzSummary> {
  const seed = (o.seed ?? 1) >>> 0;
  const iterations = o.iterations ?? DEFAULT_ITERATIONS;
  const timeLimit = o.timeLimitMs ?? 200;
  const memLimit = o.memoryLimitBytes ?? 64 * MB;
  const failureDir = o.failureDir ?? path.join(tmpdir(), 'ddpm-fuzz-failures');
  const log = o.log ?? ((line: string) => console.error(line));
  const started = performance.now();

  const stSeeds = safetensorsSeeds().map(copy);
  const idx = idxSeeds().map(copy);
  const gzSeeds = idx.map((b, k) => new Uint8Array(gzipSync(b, { level: k % 2 === 0 ? 9 : 1 })));
  // Every seed must pass its own contract, or a broken seed would hide everything else.
  for (const s of stSeeds) {
    const p = checkSafetensors(s, parseSafetensors(s, 'seed'), true);
    if (p) throw new Error(`fuzz: a safetensors seed is inconsistent: ${p}`);
  }
  for (const s of idx) {
    const p = checkIdx(s, parseIdx(s, 'seed'));
    if (p) throw new Error(`fuzz: an IDX seed is inconsistent: ${p}`);
  }

  const work = workDir();
  const gc = getGc();
  gc?.();
  let baseline = process.memoryUsage().arrayBuffers;
  let peakRss = process.memoryUsage.rss();
  let peakAb = 0;

  const failures: FuzzFailure[] = [];
  const byTarget: Record<FuzzTarget, number> = { safetensors: 0, 'safetensors-file': 0, idx: 0, 'idx-file': 0 };
  const refusals: Record<string, number> = {};
  let accepted = 0;
  let refused = 0;
  let maxMs = 0;
  let slowest = -1;
  let saved = 0;

  const fail = (iteration: number, target: FuzzTarget, kind: FuzzFailure['kind'], message: string, input: Uint8Array, ext: string): void => {
    let file: string | undefined;
    if (saved < MAX_SAVED) {
      mkdirSync(failureDir, { recursive: true });
      file = path.join(failureDir, `seed${seed}-iter${iteration}-${target}.${ext}`);
      writeFileSync(file, input);
      saved++;
    }
    failures.push({ iteration, target, kind, message, file });
    if (failures.length <= 20) {
      log(`fuzz: FAIL ${kind} at iteration ${iteration} (${target}): ${message}${file ? `\n  input saved to ${file}` : ''}`
        + `\n  replay: node dist/tools/fuzz.js --seed ${seed} --replay ${iteration}`);
    }
  };

  const first = o.replay ?? 0;
  const last = o.replay !== undefined ? o.replay + 1 : iterations;
  try {
    for (let i = first; i < last; i++) {
      const rng = new Rng(iterationSeed(seed, i));
      const roll = rng.float();
      let target: FuzzTarget;
      let input: Uint8Array;
      let ext = 'bin';
      let run: () => Outcome;
      if (roll < 0.5) {
        input = applyMutations(rng, rng.pick(stSeeds), [headerLengthRewrite, headerEdit, headerEdit, headerEdit, headerEdit, sectionMutation, sectionMutation], 0.85);
        ext = 'safetensors';
        if (rng.chance(0.15)) {
          target = 'safetensors-file';
          const file = path.join(work, 'input.safetensors');
          writeFileSync(file, input);
          const bytes = input;
          run = () => attempt(() => readSafetensorsFile(file), (r) => checkSafetensors(bytes, r, false));
        } else {
          target = 'safetensors';
          const bytes = rng.chance(0.3) ? offsetView(rng, input) : input;
          run = () => attempt(() => parseSafetensors(bytes, 'fuzz'), (r) => checkSafetensors(bytes, r, true));
        }
      } else if (roll < 0.78) {
        target = 'idx';
        input = applyMutations(rng, rng.pick(idx), [idxDimRewrite, idxDimRewrite, idxTypeRewrite, idxConsistent]);
        const bytes = rng.chance(0.3) ? offsetView(rng, input) : input;
        run = () => attempt(() => parseIdx(bytes, 'fuzz'), (r) => checkIdx(bytes, r));
      } else {
        target = 'idx-file';
        const how = rng.int(4);
        if (how === 0) {
          input = applyMutations(rng, rng.pick(idx), [idxDimRewrite, idxTypeRewrite]); // raw
        } else if (how === 1) {
          // Mutated content in a valid gzip wrapper: reaches parseIdx through gunzip.
          input = new Uint8Array(gzipSync(applyMutations(rng, rng.pick(idx), [idxDimRewrite, idxTypeRewrite])));
        } else {
          // Damaged gzip itself: header, deflate stream, CRC and size trailer, members glued on.
          const glue = (r: Rng, b: Uint8Array): Uint8Array => copy(Buffer.concat([b, r.chance(0.5) ? r.pick(gzSeeds) : r.bytes(r.range(1, 20))]));
          input = applyMutations(rng, rng.pick(gzSeeds), [glue, truncate, flipBit]);
        }
        ext = input[0] === 0x1f && input[1] === 0x8b ? 'idx.gz' : 'idx';
        // The name matters: readIdxFile refuses a .gz name on non-gzip bytes.
        const file = path.join(work, rng.chance(0.5) ? 'input-idx3-ubyte.gz' : 'input-idx3-ubyte');
        writeFileSync(file, input);
        run = () => attempt(() => readIdxFile(file), (r) => checkIdx(null, r));
      }
      byTarget[target]++;

      let t0 = performance.now();
      let outcome = run();
      let ms = performance.now() - t0;
      if (ms > timeLimit) {
        // Measured twice: a shared machine can stall any one call.
        t0 = performance.now();
        outcome = run();
        ms = Math.min(ms, performance.now() - t0);
        if (ms > timeLimit) fail(i, target, 'slow', `took ${ms.toFixed(1)} ms (limit ${timeLimit} ms)`, input, ext);
      }
      if (ms > maxMs) { maxMs = ms; slowest = i; }

      if (outcome.ok) {
        accepted++;
        if (outcome.problem !== null) fail(i, target, 'inconsistent', `accepted an inconsistent result: ${outcome.problem}`, input, ext);
      } else if (outcome.error instanceof SafetensorsError || outcome.error instanceof IdxError) {
        refused++;
        const key = refusalKind(outcome.error);
        refusals[key] = (refusals[key] ?? 0) + 1;
      } else {
        const e = outcome.error;
        const what = e instanceof Error ? `${e.constructor.name}: ${e.message}\n    ${(e.stack ?? '').split('\n').slice(1, 4).join('\n    ')}` : `non-Error thrown: ${String(e)}`;
        fail(i, target, 'exception', what, input, ext);
      }

      const mem = process.memoryUsage();
      peakRss = Math.max(peakRss, mem.rss);
      const growth = mem.arrayBuffers - baseline;
      peakAb = Math.max(peakAb, growth);
      if (growth > memLimit) {
        fail(i, target, 'memory', `arrayBuffers ${(growth / MB).toFixed(1)} MB over the baseline (limit ${memLimit / MB} MB)`, input, ext);
        // Whatever survives a collection is a leak already reported: count from there, once per input that adds more.
        gc?.();
        baseline = Math.max(baseline, process.memoryUsage().arrayBuffers);
      }
      if (i % 256 === 255) {
        // A failed zlib *Sync call closes its handle (and frees its 16 KB output buffer) on a later
        // tick: let the event loop turn, or a long run of corrupt gzips reads as a leak. Then a
        // collection, so the next samples are about the next inputs, not the last few hundred.
        await new Promise((resolve) => setImmediate(resolve));
        gc?.();
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  // A mutation that wrote into a seed would have skewed every later input.
  const same = (a: Uint8Array[], b: Uint8Array[]): boolean => a.every((x, k) => Buffer.from(x).equals(Buffer.from(b[k]!)));
  if (!same(stSeeds, safetensorsSeeds()) || !same(idx, idxSeeds())) throw new Error('fuzz: a mutation changed a seed in place (fuzzer bug)');
  return {
    seed, inputs: last - first, accepted, refused, byTarget, failures, refusals, maxMs, slowest, peakRss,
    peakArrayBuffersOverBaseline: peakAb, seconds: (performance.now() - started) / 1000,
  };
}

function refusalKind(e: SafetensorsError | IdxError): string {
  const detail = e instanceof SafetensorsError ? e.message.slice(e.source.length + 2) : e.message.slice(e.file.length + 2);
  return detail.replace(/^tensor "(?:[^"\\]|\\.)*": /, 'tensor X: ').replace(/"(?:[^"\\]|\\.)*"/g, 'S').replace(/\d+/g, 'N').slice(0, 70);
}

function attempt<R>(f: () => R, check: (r: R) => string | null): Outcome {
  let r: R;
  try {
    r = f();
  } catch (error) {
    return { ok: false, error };
  }
  return { ok: true, problem: check(r) };
}

function failureKinds(fs: FuzzFailure[]): string {
  if (fs.length === 0) return '';
  const n = new Map<string, number>();
  for (const f of fs) n.set(f.kind, (n.get(f.kind) ?? 0) + 1);
  return ` (${[...n].map(([k, c]) => `${c} ${k}`).join(', ')})`;
}

export function formatSummary(s: FuzzSummary): string {
  const t = s.byTarget;
  return `fuzz: ${s.inputs} inputs (safetensors ${t.safetensors} + ${t['safetensors-file']} via file, idx ${t.idx} + ${t['idx-file']} via file), `
    + `${s.accepted} accepted, ${s.refused} refused, ${s.failures.length} failures${failureKinds(s.failures)}, max ${s.maxMs.toFixed(2)} ms/input (#${s.slowest}), `
    + `peak rss ${(s.peakRss / MB).toFixed(0)} MB, arrayBuffers peak +${(s.peakArrayBuffersOverBaseline / MB).toFixed(1)} MB over baseline, `
    + `seed ${s.seed}, ${s.seconds.toFixed(1)} s`;
}

function parseArgs(argv: string[]): FuzzOptions {
  const o: FuzzOptions = {};
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k]!;
    const value = argv[k + 1];
    const num = (): number => {
      const n = Number(value);
      if (value === undefined || !Number.isInteger(n) || n < 0) throw new Error(`fuzz: ${flag} needs a non-negative integer, got ${value ?? 'nothing'}`);
      k++;
      return n;
    };
    if (flag === '--iterations') o.iterations = num();
    else if (flag === '--seed') o.seed = num();
    else if (flag === '--replay') o.replay = num();
    else throw new Error(`fuzz: unknown option ${flag}; expected --iterations N, --seed N, --replay I`);
  }
  return o;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const s = await runFuzz(parseArgs(process.argv.slice(2)));
    console.log(formatSummary(s));
    process.exitCode = s.failures.length > 0 ? 1 : 0;
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 2;
  }
}
