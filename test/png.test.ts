import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { decodePng, encodePng, writePng, type Image8 } from '../src/io/png.js';

function pattern(width: number, height: number, channels: 1 | 3 | 4): Image8 {
  const data = new Uint8Array(width * height * channels);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + 11) & 255; // every byte value occurs
  return { width, height, channels, data };
}

function chunk(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
  return Buffer.concat([head, body, crc]);
}

// Hand-built PNG (filter 0 rows) for the formats encodePng never writes: 16-bit and palette.
function rawPng(w: number, h: number, depth: number, colorType: number, rows: Buffer[], extra: Buffer[] = []): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = depth;
  ihdr[9] = colorType;
  const idat = deflateSync(Buffer.concat(rows.map((r) => Buffer.concat([Buffer.from([0]), r]))));
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    ...extra,
    chunk('IDAT', idat),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

for (const channels of [1, 3, 4] as const) {
  test(`encode/decode round trip is bit-exact for ${channels} channel(s)`, () => {
    const img = pattern(17, 9, channels);
    const back = decodePng(encodePng(img), 'memory');
    assert.deepEqual(back, { ...img, data: back.data });
    assert.deepEqual(Buffer.from(back.data), Buffer.from(img.data));
  });
}

test('grey image is written as 8-bit greyscale (IHDR colour type 0, depth 8)', () => {
  const png = encodePng(pattern(5, 3, 1));
  assert.equal(png.toString('latin1', 12, 16), 'IHDR');
  assert.equal(png.readUInt32BE(16), 5);
  assert.equal(png.readUInt32BE(20), 3);
  assert.equal(png[24], 8, 'bit depth');
  assert.equal(png[25], 0, 'colour type');
  assert.equal(encodePng(pattern(2, 2, 3))[25], 2);
  assert.equal(encodePng(pattern(2, 2, 4))[25], 6);
});

test('16-bit grey decodes to rounded 8-bit grey', () => {
  const row = Buffer.alloc(6);
  [0, 65535, 32896].forEach((v, i) => row.writeUInt16BE(v, i * 2)); // 32896 = 128 * 257
  const img = decodePng(rawPng(3, 1, 16, 0, [row]), 'sixteen.png');
  assert.equal(img.channels, 1);
  assert.deepEqual([...img.data], [0, 255, 128]);
});

test('palette image decodes to RGB', () => {
  const plte = chunk('PLTE', Buffer.from([255, 0, 0, 0, 0, 255]));
  const img = decodePng(rawPng(2, 1, 8, 3, [Buffer.from([1, 0])], [plte]), 'palette.png');
  assert.equal(img.channels, 3);
  assert.deepEqual([...img.data], [0, 0, 255, 255, 0, 0]);
});

test('decode refuses junk and names the source', () => {
  assert.throws(() => decodePng(Buffer.from('not a png at all'), 'samples/junk.png'), /samples\/junk\.png/);
  const truncated = encodePng(pattern(8, 8, 3)).subarray(0, 40);
  assert.throws(() => decodePng(truncated, 'cut.png'), /cut\.png.*not a readable PNG/);
});

test('encode refuses a data length that does not match the size', () => {
  assert.throws(() => encodePng({ width: 4, height: 4, channels: 3, data: new Uint8Array(47) }), /47 bytes, expected 4\*4\*3 = 48/);
});

test('writePng writes the file and leaves no temp files behind', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ddpm-png-'));
  try {
    const img = pattern(6, 4, 1);
    writePng(join(dir, 'a.png'), img);
    writePng(join(dir, 'a.png'), pattern(6, 4, 3)); // overwrite goes through rename too
    assert.deepEqual(readdirSync(dir), ['a.png']);
    assert.equal(decodePng(readFileSync(join(dir, 'a.png')), 'a.png').channels, 3);
    assert.throws(() => writePng(join(dir, 'missing', 'b.png'), img), /missing\/b\.png/);
    assert.deepEqual(readdirSync(dir), ['a.png']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
