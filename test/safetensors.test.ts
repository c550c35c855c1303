import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MAX_HEADER_SIZE, SAFETENSORS_DTYPES, SafetensorsError, dtypeByteSize, parseSafetensors,
  readSafetensorsFile, serializeSafetensors, writeSafetensorsFile, type RawTensor, type SafetensorsDtype,
} from '../src/io/safetensors.js';

const tmp = mkdtempSync(join(tmpdir(), 'ddpm-safetensors-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Hand-built file: u64 prefix (default: the real header length), header text, data bytes. */
function rawFile(header: string | Uint8Array, data: Uint8Array = new Uint8Array(0), prefix?: bigint): Buffer {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const out = Buffer.alloc(8 + h.byteLength + data.byteLength);
  out.writeBigUInt64LE(prefix ?? BigInt(h.byteLength), 0);
  h.copy(out, 8);
  out.set(data, 8 + h.byteLength);
  return out;
}

function bytesOf(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 17 + 7) & 0xff;
  return b;
}

/** Float bit patterns that a value-level round trip would lose: NaN payloads, -0, sNaN, inf. */
function specialFloats(dtype: SafetensorsDtype): Uint8Array | undefined {
  const patterns: Record<string, bigint[]> = {
    F16: [0x7e01n, 0xfc01n, 0x8000n, 0x7c00n, 0x3c00n, 0x0001n],
    BF16: [0x7fc1n, 0xff81n, 0x8000n, 0x7f80n, 0x3f80n, 0x0001n],
    F32: [0x7fc00001n, 0xffa00000n, 0x80000000n, 0x7f800000n, 0x3f800000n, 0x00000001n],
    F64: [0x7ff0000000000001n, 0xfff8000000000abcn, 0x8000000000000000n, 0x7ff0000000000000n, 0x3ff0000000000000n, 1n],
  };
  const p = patterns[dtype];
  if (!p) return undefined;
  const size = dtypeByteSize(dtype);
  const out = new Uint8Array(p.length * size);
  const view = new DataView(out.buffer);
  p.forEach((bits, i) => {
    if (size === 2) view.setUint16(i * 2, Number(bits), true);
    else if (size === 4) view.setUint32(i * 4, Number(bits), true);
    else view.setBigUint64(i * 8, bits, true);
  });
  return out;
}

function assertRefused(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => parseSafetensors(bytes, 'model.safetensors'), (err: unknown) => {
    assert.ok(err instanceof SafetensorsError, `expected SafetensorsError, got ${String(err)}`);
    assert.match(err.message, /^model\.safetensors: /);
    assert.match(err.message, pattern);
    return true;
  });
}

const F32x3 = (name: string, begin: number, end: number): string =>
  `${JSON.stringify(name)}:{"dtype":"F32","shape":[${(end - begin) / 4}],"data_offsets":[${begin},${end}]}`;

describe('safetensors round trip', () => {
  it('every dtype is bit-exact, including NaN payloads and -0', () => {
    const tensors: Record<string, RawTensor> = {};
    for (const dtype of SAFETENSORS_DTYPES) {
      const size = dtypeByteSize(dtype);
      tensors[`t.${dtype}`] = { dtype, shape: [2, 3], data: specialFloats(dtype) ?? bytesOf(6 * size, size) };
    }
    const file = serializeSafetensors(tensors);
    const { tensors: back, metadata } = parseSafetensors(file);
    assert.deepEqual(metadata, {});
    assert.equal(back.size, SAFETENSORS_DTYPES.length);
    for (const [name, t] of Object.entries(tensors)) {
      const got = back.get(name);
      assert.ok(got, name);
      assert.equal(got.dtype, t.dtype);
      assert.deepEqual(got.shape, t.shape);
      assert.equal(Buffer.compare(got.data, t.data), 0, `${name} bytes differ`);
    }
    // Reference order: widest dtype rank first, so each tensor is aligned to its element size.
    const order = [...back.keys()];
    assert.deepEqual(order, [...SAFETENSORS_DTYPES].reverse().map((d) => `t.${d}`));
    const headerLen = Number(file.readBigUInt64LE(0));
    assert.equal(headerLen % 8, 0);
    for (const t of back.values()) assert.equal((t.data.byteOffset - 8 - headerLen) % dtypeByteSize(t.dtype), 0);
  });

  it('writes the reference byte layout: compact JSON, space padding to 8, metadata first', () => {
    const data = bytesOf(24, 1);
    const file = serializeSafetensors({ 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data } }, { format: 'pt' });
    const json = '{"__metadata__":{"format":"pt"},"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
    assert.equal(Number(file.readBigUInt64LE(0)), padded.length);
    assert.equal(file.subarray(8, 8 + padded.length).toString('utf8'), padded);
    assert.equal(Buffer.compare(file.subarray(8 + padded.length), data), 0);
  });

  it('reads the reference crate\'s documented example file', () => {
    const header = '{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}';
    const { tensors } = parseSafetensors(rawFile(header, new Uint8Array(16)));
    assert.deepEqual(tensors.get('test')?.shape, [2, 2]);
  });

  it('metadata round trips, including unicode and awkward keys', () => {
    const metadata: Record<string, string> = Object.fromEntries([
      ['format', 'pt'], ['note', 'β=1e-4 → 0.02 🙂'], ['__proto__', 'a'], ['', ''], ['quote"\\', '\n\u0001'],
    ]);
    const back = parseSafetensors(serializeSafetensors({}, metadata)).metadata;
    assert.deepEqual(back, metadata);
  });

  it('zero-size tensors and scalars', () => {
    const tensors: Record<string, RawTensor> = {
      empty: { dtype: 'F32', shape: [0, 4], data: new Uint8Array(0) },
      empty2: { dtype: 'F32', shape: [3, 0], data: new Uint8Array(0) },
      scalar: { dtype: 'F64', shape: [], data: bytesOf(8, 3) },
      bool: { dtype: 'BOOL', shape: [], data: new Uint8Array([1]) },
    };
    const back = parseSafetensors(serializeSafetensors(tensors)).tensors;
    for (const [name, t] of Object.entries(tensors)) {
      assert.deepEqual(back.get(name)?.shape, t.shape);
      assert.equal(Buffer.compare(back.get(name)?.data ?? new Uint8Array(1), t.data), 0);
    }
  });

  it('an empty file ({}) and a tensor named __proto__ are fine', () => {
    assert.equal(parseSafetensors(serializeSafetensors({})).tensors.size, 0);
    const t: RawTensor = { dtype: 'U8', shape: [1], data: new Uint8Array([9]) };
    const back = parseSafetensors(serializeSafetensors(Object.fromEntries([['__proto__', t]]) as Record<string, RawTensor>));
    assert.deepEqual([...back.tensors.keys()], ['__proto__']);
  });

  it('serialize refuses inconsistent input', () => {
    assert.throws(() => serializeSafetensors({ w: { dtype: 'F32', shape: [2, 2], data: new Uint8Array(15) } }),
      /tensor "w": byte length 15 disagrees with shape \[2,2\] x F32 = 16 bytes/);
    assert.throws(() => serializeSafetensors({ w: { dtype: 'F32', shape: [1], data: new Float32Array(1) as unknown as Uint8Array } }),
      /must be a Uint8Array/);
    assert.throws(() => serializeSafetensors({ w: { dtype: 'F8' as SafetensorsDtype, shape: [], data: new Uint8Array(1) } }),
      /unknown dtype "F8"/);
    assert.throws(() => serializeSafetensors({ __metadata__: { dtype: 'U8', shape: [], data: new Uint8Array(1) } }), /reserved/);
    assert.throws(() => serializeSafetensors({}, { a: 1 as unknown as string }), /__metadata__ key "a": expected a string/);
    assert.throws(() => serializeSafetensors({ ['\uD800']: { dtype: 'U8', shape: [], data: new Uint8Array(1) } }), /lone UTF-16 surrogate/);
  });
});

describe('safetensors refuses malformed files', () => {
  const good = serializeSafetensors({
    a: { dtype: 'F32', shape: [2], data: bytesOf(8, 1) },
    b: { dtype: 'U8', shape: [3], data: bytesOf(3, 2) },
  });

  it('a file shorter than 8 bytes', () => {
    assertRefused(new Uint8Array(5), /file is 5 bytes; a safetensors file needs at least 8 bytes/);
    assertRefused(new Uint8Array(0), /needs at least 8 bytes/);
  });

  it('cut by one byte', () => {
    assertRefused(good.subarray(0, good.length - 1), /truncated \(1 bytes short\)/);
  });

  it('junk appended', () => {
    assertRefused(Buffer.concat([good, Buffer.from([0])]), /1 bytes of trailing data after the last tensor/);
  });

  it('length prefix 2^64-1, without allocating', () => {
    const bytes = rawFile('{}', new Uint8Array(0), 2n ** 64n - 1n);
    const before = process.memoryUsage().arrayBuffers;
    assertRefused(bytes, /header length prefix is 18446744073709551615 bytes, over the 100000000-byte limit/);
    assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20);
  });

  it('length prefix 2^40, without allocating', () => {
    const bytes = rawFile('{}', new Uint8Array(0), 2n ** 40n);
    const before = process.memoryUsage().arrayBuffers;
    assertRefused(bytes, /over the 100000000-byte limit/);
    assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20);
  });

  it('header longer than the file', () => {
    assertRefused(rawFile('{}      ', new Uint8Array(0), 1000n), /header length prefix says 1000 bytes but only 8 bytes follow the prefix/);
    assertRefused(rawFile('{}', new Uint8Array(0), BigInt(MAX_HEADER_SIZE)), /only 2 bytes follow/);
  });

  it('overlapping offsets', () => {
    const header = `{${F32x3('a', 0, 8)},${F32x3('b', 4, 12)}}`;
    assertRefused(rawFile(header, new Uint8Array(12)), /tensor "b": data_offsets \[4,12\] overlap tensor "a", which ends at 8/);
  });

  it('a gap between offsets', () => {
    const header = `{${F32x3('a', 0, 4)},${F32x3('b', 8, 12)}}`;
    assertRefused(rawFile(header, new Uint8Array(12)), /tensor "b": data_offsets begin at 8 but tensor "a" ends at 4: a gap of 4 bytes/);
    assertRefused(rawFile(`{${F32x3('a', 4, 8)}}`, new Uint8Array(8)), /tensor "a": .*tensor data starts at 0: a gap of 4 bytes/);
  });

  it('byte length disagreeing with shape x dtype', () => {
    const header = '{"down0.0.weight":{"dtype":"F32","shape":[16,1,3,3],"data_offsets":[0,60]}}';
    assertRefused(rawFile(header, new Uint8Array(60)),
      /model\.safetensors: tensor "down0\.0\.weight": byte length 60 disagrees with shape \[16,1,3,3\] x F32 = 576 bytes/);
  });

  it('an unknown dtype', () => {
    assertRefused(rawFile('{"x":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', new Uint8Array(16)),
      /tensor "x": unknown dtype "F128"; expected one of BOOL, U8/);
    assertRefused(rawFile('{"x":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)), /unknown dtype the number 4/);
  });

  it('a non-UTF-8 header, and a BOM', () => {
    assertRefused(rawFile(new Uint8Array([0x7b, 0xff, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20])), /header is not valid UTF-8/);
    assertRefused(rawFile('\uFEFF{}'), /header must start with "\{"/);
  });

  it('a shape whose product overflows', () => {
    const header = `{"x":{"dtype":"U8","shape":[${2 ** 40},${2 ** 40}],"data_offsets":[0,0]}}`;
    assertRefused(rawFile(header), /tensor "x": shape \[1099511627776,1099511627776\] x U8 overflows 2\^53-1 bytes/);
    assertRefused(rawFile(`{"x":{"dtype":"U8","shape":[${2 ** 40},${2 ** 40},0],"data_offsets":[0,0]}}`), /overflows/);
    assertRefused(rawFile('{"x":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,0]}}'), /shape\[0\] 18446744073709551616 is larger than 2\^53-1/);
  });

  it('metadata with a non-string value', () => {
    assertRefused(rawFile('{"__metadata__":{"a":"ok","epoch":3}}'), /__metadata__ key "epoch": expected a string value, found the number 3/);
    assertRefused(rawFile('{"__metadata__":["a"]}'), /__metadata__ must be an object of strings, found an array/);
    assert.deepEqual(parseSafetensors(rawFile('{"__metadata__":null}')).metadata, {}); // as the reference
  });

  it('a header that is not a JSON object', () => {
    assertRefused(rawFile('[1,2]   '), /header must start with "\{" \(a JSON object\), found "\[1,2\] {3}"/);
    assertRefused(rawFile(' {}     '), /header must start with "\{"/);
    assertRefused(rawFile('{"a":   '), /header is not valid JSON: unexpected end/);
    assertRefused(rawFile('{} x    '), /header is not valid JSON: unexpected text after the JSON value at character 3/);
    assertRefused(rawFile('{"a":1}'), /tensor "a": expected an object with dtype, shape, data_offsets, found the number 1/);
  });

  it('duplicated names, extra or missing fields, bad integers, reversed offsets', () => {
    assertRefused(rawFile(`{${F32x3('a', 0, 4)},${F32x3('a', 4, 8)}}`, new Uint8Array(8)), /duplicate key "a"/);
    assertRefused(rawFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}}', new Uint8Array(1)),
      /tensor "a": unexpected field "extra"; expected exactly dtype, shape, data_offsets/);
    assertRefused(rawFile('{"a":{"dtype":"U8","shape":[1]}}'), /tensor "a": missing field data_offsets/);
    assertRefused(rawFile('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}'), /shape\[0\] must be a non-negative integer, found -1/);
    assertRefused(rawFile('{"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}', new Uint8Array(1)), /found 1\.0/);
    assertRefused(rawFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}}'), /data_offsets \[1,0\] end before they begin/);
    assertRefused(rawFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}}'), /data_offsets must be a \[begin, end\] pair, found an array of 1/);
  });

  it('lone surrogates and deep nesting are JSON errors, not crashes', () => {
    assertRefused(rawFile('{"\\ud800":1}'), /lone high surrogate/);
    assertRefused(rawFile(`{"a":${'['.repeat(100_000)}`), /nesting deeper than 128/);
  });

  it('errors name the tensor even when the name is hostile', () => {
    const long = 'n'.repeat(1000);
    assertRefused(rawFile(`{${F32x3(long, 0, 4)}}`, new Uint8Array(8)), /trailing data/);
    assertRefused(rawFile(`{"${long}":{"dtype":"X","shape":[],"data_offsets":[0,0]}}`), /tensor "n{200}\.\.\.": unknown dtype/);
  });
});

describe('safetensors files', () => {
  it('writeSafetensorsFile / readSafetensorsFile round trip, no temp files left', () => {
    const path = join(tmp, 'model.safetensors');
    const tensors: Record<string, RawTensor> = { w: { dtype: 'BF16', shape: [4], data: bytesOf(8, 5) } };
    writeSafetensorsFile(path, tensors, { step: '10' });
    writeSafetensorsFile(path, tensors, { step: '20' }); // replaces
    const back = readSafetensorsFile(path);
    assert.deepEqual(back.metadata, { step: '20' });
    assert.equal(Buffer.compare(back.tensors.get('w')?.data ?? new Uint8Array(0), tensors.w!.data), 0);
    assert.deepEqual(readdirSync(tmp).filter((n) => n.includes('.tmp-')), []);
  });

  it('a refused serialization leaves the previous file intact', () => {
    const path = join(tmp, 'keep.safetensors');
    writeSafetensorsFile(path, { w: { dtype: 'U8', shape: [1], data: new Uint8Array([1]) } });
    const before = readFileSync(path);
    assert.throws(() => writeSafetensorsFile(path, { w: { dtype: 'U8', shape: [2], data: new Uint8Array([1]) } }),
      /keep\.safetensors: tensor "w": byte length 1 disagrees/);
    assert.equal(Buffer.compare(readFileSync(path), before), 0);
  });

  it('refuses bad files with the path in the message', () => {
    const cut = join(tmp, 'cut.safetensors');
    const good = serializeSafetensors({ w: { dtype: 'F32', shape: [3], data: bytesOf(12, 1) } });
    writeFileSync(cut, good.subarray(0, good.length - 1));
    assert.throws(() => readSafetensorsFile(cut), (err: unknown) =>
      err instanceof SafetensorsError && err.message.startsWith(`${cut}: `) && /truncated/.test(err.message));
    const tiny = join(tmp, 'tiny.safetensors');
    writeFileSync(tiny, Buffer.from([1, 2, 3]));
    assert.throws(() => readSafetensorsFile(tiny), /tiny\.safetensors: file is 3 bytes/);
    assert.throws(() => readSafetensorsFile(join(tmp, 'missing.safetensors')), /missing\.safetensors: cannot open: ENOENT/);
    assert.throws(() => readSafetensorsFile(tmp), /not a regular file/);
  });

  it('a lying header length is refused before reading the file', () => {
    // 99 MB claimed (under MAX_HEADER_SIZE) in a tiny file: a naive reader would allocate it.
    for (const prefix of [99_000_000n, 2n ** 40n]) {
      const path = join(tmp, `liar-${prefix}.safetensors`);
      writeFileSync(path, rawFile('{}' + ' '.repeat(100), new Uint8Array(0), prefix));
      const before = process.memoryUsage().arrayBuffers;
      assert.throws(() => readSafetensorsFile(path), /header length prefix (says 99000000 bytes but only 102 bytes follow|is 1099511627776 bytes, over)/);
      assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20, 'reader allocated in proportion to the claimed length');
    }
  });
});
