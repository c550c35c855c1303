import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeGif } from '../src/io/gif.js';
import type { Image8 } from '../src/io/png.js';

interface Parsed {
  width: number;
  height: number;
  globalPalette: number[];
  frames: { delayCs: number; indices: number[] }[];
  loops: boolean;
}

// GIF LZW decoder (GIF89a spec appendix F), only what the tests need to read pixels back.
function lzw(minCode: number, data: number[], count: number): number[] {
  const clear = 1 << minCode, end = clear + 1;
  let dict: number[][] = [], size = minCode + 1, prev: number[] | null = null;
  const reset = () => {
    dict = Array.from({ length: clear + 2 }, (_, i) => [i]);
    size = minCode + 1;
    prev = null;
  };
  reset();
  const out: number[] = [];
  for (let bit = 0; out.length < count && bit + size <= data.length * 8; ) {
    let code = 0;
    for (let b = 0; b < size; b++, bit++) code |= ((data[bit >> 3] >> (bit & 7)) & 1) << b;
    if (code === clear) { reset(); continue; }
    if (code === end) break;
    const entry: number[] = code < dict.length ? dict[code] : [...prev!, prev![0]];
    out.push(...entry);
    if (prev) dict.push([...prev, entry[0]]);
    if (dict.length === 1 << size && size < 12) size++;
    prev = entry;
  }
  return out;
}

function parseGif(b: Uint8Array): Parsed {
  const u16 = (p: number) => b[p] | (b[p + 1] << 8);
  const width = u16(6), height = u16(8);
  let p = 13;
  const globalPalette: number[] = [];
  if (b[10] & 0x80) {
    const n = 3 * (2 << (b[10] & 7));
    globalPalette.push(...b.subarray(p, p + n));
    p += n;
  }
  const subBlocks = (): number[] => {
    const out: number[] = [];
    while (b[p] !== 0) { out.push(...b.subarray(p + 1, p + 1 + b[p])); p += 1 + b[p]; }
    p++;
    return out;
  };
  const frames: Parsed['frames'] = [];
  let delayCs = -1, loops = false;
  for (;;) {
    const tag = b[p++];
    if (tag === 0x3b) break;
    if (tag === 0x21) {
      const label = b[p++];
      const body = subBlocks();
      if (label === 0xf9) delayCs = body[1] | (body[2] << 8);
      if (label === 0xff && String.fromCharCode(...body.slice(0, 11)) === 'NETSCAPE2.0') loops = (body[12] | (body[13] << 8)) === 0;
    } else if (tag === 0x2c) {
      assert.ok(delayCs >= 0, 'image descriptor is preceded by a graphic control extension');
      const w = u16(p + 4), h = u16(p + 6), flags = b[p + 8];
      p += 9;
      if (flags & 0x80) p += 3 * (2 << (flags & 7));
      const minCode = b[p++];
      frames.push({ delayCs, indices: lzw(minCode, subBlocks(), w * h) });
      delayCs = -1;
    } else {
      assert.fail(`unexpected block 0x${tag.toString(16)} at ${p - 1}`);
    }
  }
  return { width, height, globalPalette, frames, loops };
}

const grey = (w: number, h: number, seed: number): Image8 => ({
  width: w, height: h, channels: 1,
  data: Uint8Array.from({ length: w * h }, (_, i) => (i * 7 + seed * 31) & 255),
});

test('grey frames: GIF89a header, screen size, frame count, delay, loop, exact pixels', () => {
  const frames = [0, 1, 2, 3, 4].map((s) => grey(23, 13, s));
  const gif = encodeGif(frames, { delayMs: 120 });
  assert.equal(Buffer.from(gif.subarray(0, 6)).toString('latin1'), 'GIF89a');
  const parsed = parseGif(gif);
  assert.deepEqual([parsed.width, parsed.height], [23, 13]);
  assert.equal(parsed.frames.length, 5);
  assert.ok(parsed.loops);
  for (const [i, f] of parsed.frames.entries()) {
    assert.equal(f.delayCs, 12);
    const pixels = f.indices.map((k) => parsed.globalPalette[3 * k]);
    assert.deepEqual(pixels, [...frames[i].data], `frame ${i} decodes to its grey values`);
  }
});

test('RGB frames are quantised to one palette and play once when loop is false', () => {
  const rgb: Image8 = { width: 4, height: 2, channels: 3, data: new Uint8Array(24) };
  [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]].forEach((c, i) => rgb.data.set(c, i * 6));
  const parsed = parseGif(encodeGif([rgb, rgb], { loop: false }));
  assert.equal(parsed.frames.length, 2);
  assert.equal(parsed.loops, false);
  const px = parsed.frames[0].indices.map((k) => [...parsed.globalPalette.slice(3 * k, 3 * k + 3)]);
  assert.deepEqual(px[0], [255, 0, 0]);
  assert.deepEqual(px[6], [255, 255, 255]);
});

test('frames of different sizes are refused', () => {
  assert.throws(() => encodeGif([grey(4, 4, 0), grey(4, 5, 0)]), /frame 1 is 4x5, expected 4x4/);
  assert.throws(() => encodeGif([]), /frames is empty/);
});
