// safetensors reader/writer on raw bytes (no tensor imports). Validation follows the reference
// implementation, huggingface/safetensors `SafeTensors::read_metadata` + `Metadata::validate`:
// every check that bounds memory (header length prefix) runs before anything is allocated or sliced.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { writeFileAtomic } from './atomic.js';

// Order mirrors the reference `Dtype` enum; serialization sorts by this rank (descending).
export const SAFETENSORS_DTYPES = [
  'BOOL', 'U8', 'I8', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64',
] as const;
export type SafetensorsDtype = (typeof SAFETENSORS_DTYPES)[number];

export interface RawTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array;
}

/** Reference `MAX_HEADER_SIZE`: larger headers are refused before any allocation. */
export const MAX_HEADER_SIZE = 100_000_000;

const DTYPE_SIZES: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 1, U8: 1, I8: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};

export function dtypeByteSize(d: SafetensorsDtype): number {
  return DTYPE_SIZES[d];
}

export function isSafetensorsDtype(d: unknown): d is SafetensorsDtype {
  return typeof d === 'string' && Object.hasOwn(DTYPE_SIZES, d);
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  readonly source: string;
  readonly tensor: string | undefined;
  constructor(source: string, detail: string, tensor?: string) {
    super(`${source}: ${tensor !== undefined ? `tensor ${quote(tensor)}: ` : ''}${detail}`);
    this.source = source;
    this.tensor = tensor;
  }
}

// Names come from untrusted files: escape them and keep error messages bounded.
function quote(s: string): string {
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}...` : s);
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * Serializes like the reference `serialize`: tensors sorted by dtype rank descending (widest
 * first, so every tensor starts at a multiple of its element size), then by name (UTF-8 byte
 * order); compact JSON header with `__metadata__` first (only when `metadata` is given), padded
 * with spaces to a multiple of 8 bytes.
 */
export function serializeSafetensors(
  tensors: Record<string, RawTensor>,
  metadata?: Record<string, string>,
  source = 'serializeSafetensors',
): Buffer {
  const entries = Object.entries(tensors).map(([name, t]) => {
    checkTensorForWrite(name, t, source);
    return { name, t, key: Buffer.from(name, 'utf8') };
  });
  entries.sort((a, b) => {
    const rank = SAFETENSORS_DTYPES.indexOf(b.t.dtype) - SAFETENSORS_DTYPES.indexOf(a.t.dtype);
    return rank !== 0 ? rank : Buffer.compare(a.key, b.key);
  });

  const parts: string[] = [];
  if (metadata !== undefined) {
    const fields = Object.entries(metadata).map(([k, v]) => {
      if (typeof v !== 'string') {
        throw new SafetensorsError(source, `__metadata__ key ${quote(k)}: expected a string value, found ${typeof v}`);
      }
      checkWellFormed(k, source, '__metadata__ key');
      checkWellFormed(v, source, `__metadata__ value of ${quote(k)}`);
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    parts.push(`"__metadata__":{${fields.join(',')}}`);
  }
  let offset = 0;
  for (const { name, t } of entries) {
    const end = offset + t.data.byteLength;
    parts.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [offset, end] })}`);
    offset = end;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const headerLen = Math.ceil(json.byteLength / 8) * 8;

  const out = Buffer.alloc(8 + headerLen + offset);
  out.writeBigUInt64LE(BigInt(headerLen), 0);
  json.copy(out, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerLen);
  let at = 8 + headerLen;
  for (const { t } of entries) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
}

function checkTensorForWrite(name: string, t: RawTensor, source: string): void {
  if (name === '__metadata__') {
    throw new SafetensorsError(source, 'the name "__metadata__" is reserved for file metadata; rename the tensor');
  }
  checkWellFormed(name, source, 'tensor name');
  if (!isSafetensorsDtype(t.dtype)) {
    throw new SafetensorsError(source, `unknown dtype ${JSON.stringify(t.dtype)}; expected one of ${SAFETENSORS_DTYPES.join(', ')}`, name);
  }
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(source, `shape ${JSON.stringify(t.shape)} must be an array of non-negative integers`, name);
  }
  if (!(t.data instanceof Uint8Array)) {
    throw new SafetensorsError(source,
      'data must be a Uint8Array of raw little-endian bytes; wrap typed arrays: new Uint8Array(x.buffer, x.byteOffset, x.byteLength)', name);
  }
  const expected = shapeByteLength(t.shape, t.dtype);
  if (expected === undefined || expected !== BigInt(t.data.byteLength)) {
    throw new SafetensorsError(source,
      `byte length ${t.data.byteLength} disagrees with shape ${JSON.stringify(t.shape)} x ${t.dtype} = ${expected ?? 'overflow'} bytes`, name);
  }
}

// Lone surrogates would be silently replaced by U+FFFD when encoded to UTF-8.
function checkWellFormed(s: string, source: string, what: string): void {
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s)) {
    throw new SafetensorsError(source, `${what} ${quote(s)} contains a lone UTF-16 surrogate and cannot be encoded as UTF-8`);
  }
}

/**
 * Element count x dtype size, or undefined when a partial product passes 2^53-1. Checking every
 * step (not just the final product) matches the reference's `checked_mul` fold.
 */
function shapeByteLength(shape: readonly number[], dtype: SafetensorsDtype): bigint | undefined {
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  let n = 1n;
  for (const d of shape) {
    n *= BigInt(d);
    if (n > max) return undefined;
  }
  n *= BigInt(DTYPE_SIZES[dtype]);
  return n > max ? undefined : n;
}

export function writeSafetensorsFile(path: string, tensors: Record<string, RawTensor>, metadata?: Record<string, string>): void {
  writeFileAtomic(path, serializeSafetensors(tensors, metadata, path));
}

// ---------------------------------------------------------------------------------------------
// Reading

export interface ParsedSafetensors {
  /** In file (offset) order. */
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

/**
 * Parses and fully validates a safetensors file held in memory. Each `data` is a view into
 * `bytes` (no copy): it aliases the input and is generally not aligned for typed-array views, so
 * call `data.slice()` before `new Float32Array(...)` or when the buffer will be reused.
 * A `__metadata__` of null is accepted as "no metadata", as the reference does.
 */
export function parseSafetensors(bytes: Uint8Array, source = '<buffer>'): ParsedSafetensors {
  const headerLen = checkHeaderLength(bytes.subarray(0, 8), bytes.byteLength, source);
  const header = decodeHeader(bytes.subarray(8, 8 + headerLen), source);
  const { entries, metadata } = validateHeader(header, source);

  const dataLen = bytes.byteLength - 8 - headerLen;
  const dataEnd = checkLayout(entries, source);
  if (dataEnd < dataLen) {
    throw new SafetensorsError(source,
      `${dataLen - dataEnd} bytes of trailing data after the last tensor (tensor data ends at byte ${dataEnd} of ${dataLen}); the file has junk appended`);
  }
  if (dataEnd > dataLen) {
    throw new SafetensorsError(source,
      `tensor data needs ${dataEnd} bytes but only ${dataLen} follow the header; the file is truncated (${dataEnd - dataLen} bytes short)`);
  }

  const base = bytes.byteOffset + 8 + headerLen;
  const tensors = new Map<string, RawTensor>();
  for (const e of entries) {
    // A plain Uint8Array view even when `bytes` is a Buffer: Buffer#slice is a view, not the copy callers expect.
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: new Uint8Array(bytes.buffer, base + e.begin, e.end - e.begin) });
  }
  return { tensors, metadata };
}

/** Validates the u64 length prefix against the cap and the total size; returns the header length. */
function checkHeaderLength(prefix: Uint8Array, totalLen: number, source: string): number {
  if (totalLen < 8) {
    throw new SafetensorsError(source, `file is ${totalLen} bytes; a safetensors file needs at least 8 bytes (the header length prefix)`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) {
    throw new SafetensorsError(source,
      `header length prefix is ${n} bytes, over the ${MAX_HEADER_SIZE}-byte limit; the file is corrupt or not a safetensors file`);
  }
  if (n > BigInt(totalLen - 8)) {
    throw new SafetensorsError(source,
      `header length prefix says ${n} bytes but only ${totalLen - 8} bytes follow the prefix; the file is truncated or not a safetensors file`);
  }
  return Number(n);
}

function decodeHeader(raw: Uint8Array, source: string): string {
  let text: string;
  try {
    // ignoreBOM keeps a leading BOM in the text so the '{' check below refuses it, like the reference.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
  } catch {
    throw new SafetensorsError(source, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) {
    throw new SafetensorsError(source, `header must start with "{" (a JSON object), found ${quote(text.slice(0, 20))}`);
  }
  return text;
}

interface Entry { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }

function validateHeader(text: string, source: string): { entries: Entry[]; metadata: Record<string, string> } {
  const root = new HeaderJsonParser(text, source).parse();
  if (!(root instanceof Map)) throw new SafetensorsError(source, `header must be a JSON object, found ${describe(root)}`);

  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries: Entry[] = [];
  for (const [name, value] of root) {
    if (name === '__metadata__') {
      if (value === null) continue;
      if (!(value instanceof Map)) throw new SafetensorsError(source, `__metadata__ must be an object of strings, found ${describe(value)}`);
      for (const [k, v] of value) {
        if (typeof v !== 'string') {
          throw new SafetensorsError(source, `__metadata__ key ${quote(k)}: expected a string value, found ${describe(v)}`);
        }
        metadata[k] = v;
      }
      continue;
    }
    entries.push(validateEntry(name, value, source));
  }
  return { entries, metadata: { ...metadata } };
}

function validateEntry(name: string, value: Json, source: string): Entry {
  const fail = (detail: string): never => { throw new SafetensorsError(source, detail, name); };
  if (!(value instanceof Map)) return fail(`expected an object with dtype, shape, data_offsets, found ${describe(value)}`);
  for (const key of value.keys()) {
    if (key !== 'dtype' && key !== 'shape' && key !== 'data_offsets') {
      fail(`unexpected field ${quote(key)}; expected exactly dtype, shape, data_offsets`);
    }
  }
  const dtype = value.get('dtype');
  const shape = value.get('shape');
  const offsets = value.get('data_offsets');
  if (dtype === undefined || shape === undefined || offsets === undefined) {
    return fail(`missing field ${dtype === undefined ? 'dtype' : shape === undefined ? 'shape' : 'data_offsets'}`);
  }
  if (!isSafetensorsDtype(dtype)) {
    return fail(`unknown dtype ${typeof dtype === 'string' ? quote(dtype) : describe(dtype)}; expected one of ${SAFETENSORS_DTYPES.join(', ')}`);
  }
  if (!Array.isArray(shape)) return fail(`shape must be an array, found ${describe(shape)}`);
  const dims = shape.map((d, i) => toIndex(d, `shape[${i}]`, fail));
  if (!Array.isArray(offsets) || offsets.length !== 2) return fail(`data_offsets must be a [begin, end] pair, found ${describe(offsets)}`);
  const begin = toIndex(offsets[0] ?? null, 'data_offsets[0]', fail);
  const end = toIndex(offsets[1] ?? null, 'data_offsets[1]', fail);
  if (begin > end) fail(`data_offsets [${begin},${end}] end before they begin`);

  const expected = shapeByteLength(dims, dtype);
  if (expected === undefined) fail(`shape ${JSON.stringify(dims)} x ${dtype} overflows 2^53-1 bytes`);
  if (BigInt(end - begin) !== expected) {
    fail(`byte length ${end - begin} disagrees with shape ${JSON.stringify(dims)} x ${dtype} = ${expected} bytes`);
  }
  return { name, dtype, shape: dims, begin, end };
}

function toIndex(v: Json, what: string, fail: (d: string) => never): number {
  if (!(v instanceof JsonNumber)) return fail(`${what} must be a non-negative integer, found ${describe(v)}`);
  if (!/^(0|[1-9][0-9]*)$/.test(v.literal)) return fail(`${what} must be a non-negative integer, found ${v.literal}`);
  if (v.literal.length > 16 || BigInt(v.literal) > BigInt(Number.MAX_SAFE_INTEGER)) {
    return fail(`${what} ${v.literal.slice(0, 30)} is larger than 2^53-1`);
  }
  return Number(v.literal);
}

/** Sorted by offsets, tensors must tile [0, end) exactly; returns the end of tensor data. */
function checkLayout(entries: Entry[], source: string): number {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let prev: Entry | undefined;
  for (const e of entries) {
    if (e.begin > at) {
      throw new SafetensorsError(source,
        `data_offsets begin at ${e.begin} but ${prev ? `tensor ${quote(prev.name)} ends` : 'tensor data starts'} at ${at}: a gap of ${e.begin - at} bytes`, e.name);
    }
    if (e.begin < at) {
      throw new SafetensorsError(source,
        `data_offsets [${e.begin},${e.end}] overlap tensor ${quote(prev?.name ?? '')}, which ends at ${at}`, e.name);
    }
    at = e.end;
    prev = e;
  }
  return at;
}

// ---------------------------------------------------------------------------------------------
// Strict JSON for headers. JSON.parse is not enough: it keeps the last of duplicated keys, turns
// `"__proto__"` into prototype games on plain objects, and rounds integers past 2^53 silently.

type Json = null | boolean | string | JsonNumber | Json[] | Map<string, Json>;

class JsonNumber {
  constructor(readonly literal: string) {}
}

function describe(v: Json): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return `the string ${quote(v)}`;
  if (v instanceof JsonNumber) return `the number ${v.literal.slice(0, 30)}`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return 'an object';
}

// serde_json's recursion limit; also keeps "[[[[..." headers from overflowing the JS stack.
const MAX_DEPTH = 128;
const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const PLAIN_RE = /[^"\\\u0000-\u001f]*/y;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

class HeaderJsonParser {
  private i = 0;
  constructor(private readonly s: string, private readonly source: string) {}

  parse(): Json {
    const v = this.value(0);
    this.ws();
    if (this.i < this.s.length) this.fail('unexpected text after the JSON value');
    return v;
  }

  private fail(what: string): never {
    throw new SafetensorsError(this.source, `header is not valid JSON: ${what} at character ${this.i}`);
  }

  private ws(): void {
    for (let c = this.s.charCodeAt(this.i); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = this.s.charCodeAt(++this.i));
  }

  private value(depth: number): Json {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH}`);
    this.ws();
    const c = this.s[this.i];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return this.string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length;
        return v;
      }
    }
    return this.fail(c === undefined ? 'unexpected end' : `unexpected ${quote(c)}`);
  }

  private expect(c: string): void {
    this.ws();
    if (this.s[this.i] !== c) this.fail(`expected ${quote(c)}`);
    this.i++;
  }

  private object(depth: number): Map<string, Json> {
    const out = new Map<string, Json>();
    this.i++;
    this.ws();
    if (this.s[this.i] === '}') { this.i++; return out; }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail('expected a string key');
      const at = this.i;
      const key = this.string();
      if (out.has(key)) { this.i = at; this.fail(`duplicate key ${quote(key)}`); }
      this.expect(':');
      out.set(key, this.value(depth + 1));
      this.ws();
      const c = this.s[this.i++];
      if (c === '}') return out;
      if (c !== ',') { this.i--; this.fail('expected "," or "}"'); }
    }
  }

  private array(depth: number): Json[] {
    const out: Json[] = [];
    this.i++;
    this.ws();
    if (this.s[this.i] === ']') { this.i++; return out; }
    for (;;) {
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.s[this.i++];
      if (c === ']') return out;
      if (c !== ',') { this.i--; this.fail('expected "," or "]"'); }
    }
  }

  private number(): JsonNumber {
    NUMBER_RE.lastIndex = this.i;
    const m = NUMBER_RE.exec(this.s);
    if (!m) return this.fail('malformed number');
    this.i += m[0].length;
    return new JsonNumber(m[0]);
  }

  private string(): string {
    this.i++; // opening quote
    let out = '';
    for (;;) {
      PLAIN_RE.lastIndex = this.i;
      const run = PLAIN_RE.exec(this.s)?.[0] ?? '';
      out += run;
      this.i += run.length;
      const c = this.s[this.i];
      if (c === '"') { this.i++; return out; }
      if (c !== '\\') this.fail(c === undefined ? 'unterminated string' : 'control character in string');
      const e = this.s[this.i + 1] ?? '';
      if (e !== 'u') {
        const decoded = ESCAPES[e];
        if (decoded === undefined) this.fail(`invalid escape "\\${e}"`);
        out += decoded;
        this.i += 2;
        continue;
      }
      const unit = this.hex4(this.i + 2);
      this.i += 6;
      if (unit >= 0xdc00 && unit <= 0xdfff) this.fail('lone low surrogate escape');
      if (unit >= 0xd800 && unit <= 0xdbff) {
        // Like serde_json: a high surrogate escape must be followed by a low surrogate escape.
        const low = this.s.startsWith('\\u', this.i) ? this.hex4(this.i + 2) : -1;
        if (low < 0xdc00 || low > 0xdfff) this.fail('lone high surrogate escape');
        this.i += 6;
        out += String.fromCharCode(unit, low);
      } else {
        out += String.fromCharCode(unit);
      }
    }
  }

  private hex4(at: number): number {
    const h = this.s.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) { this.i = at; this.fail('invalid \\u escape'); }
    return parseInt(h, 16);
  }
}

// ---------------------------------------------------------------------------------------------
// Files

/**
 * Reads and validates a safetensors file. The 8-byte prefix is read and checked against the file
 * size first, so a lying length never causes a large allocation; then the whole file is read
 * once (tensor data are views into that one buffer, see parseSafetensors).
 */
export function readSafetensorsFile(path: string): ParsedSafetensors {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new SafetensorsError(path, `cannot open: ${(err as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new SafetensorsError(path, 'not a regular file');
    const size = st.size;
    const prefix = new Uint8Array(8);
    if (size >= 8) readFully(fd, prefix, 0, path);
    checkHeaderLength(prefix, size, path); // refuses size < 8 first
    if (size > bufferConstants.MAX_LENGTH) {
      throw new SafetensorsError(path, `file is ${size} bytes, more than one buffer can hold (${bufferConstants.MAX_LENGTH}); split the checkpoint into shards`);
    }
    const bytes = Buffer.alloc(size);
    readFully(fd, bytes, 0, path);
    return parseSafetensors(bytes, path);
  } finally {
    closeSync(fd);
  }
}

function readFully(fd: number, into: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < into.byteLength) {
    // readSync moves at most 2 GiB per call.
    const n = readSync(fd, into, done, Math.min(into.byteLength - done, 1 << 30), position + done);
    if (n === 0) throw new SafetensorsError(path, `file shrank while being read (got ${done} of ${into.byteLength} bytes)`);
    done += n;
  }
}
