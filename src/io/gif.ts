import gifenc from 'gifenc';
import { checkImage8, type Image8 } from './png.js';

export interface GifOptions {
  /** Per-frame delay; GIF stores centiseconds, so it is rounded to 10 ms. */
  delayMs?: number;
  /** Loop forever (NETSCAPE2.0 extension) or play once. */
  loop?: boolean;
}

// Grey frames index a 256-level grey palette directly, which is exact (no quantisation error).
const GREY_PALETTE = Array.from({ length: 256 }, (_, v) => [v, v, v]);

function toRgba(img: Image8): Uint8Array {
  const { channels: c, data } = img;
  const out = new Uint8Array(img.width * img.height * 4);
  for (let p = 0, q = 0; q < out.length; p += c, q += 4) {
    out[q] = data[p];
    out[q + 1] = data[c === 1 ? p : p + 1];
    out[q + 2] = data[c === 1 ? p : p + 2];
    out[q + 3] = c === 4 ? data[p + 3] : 255;
  }
  return out;
}

/** Animated GIF of equally sized frames, e.g. a sampling trajectory x_T..x_0. */
export function encodeGif(frames: Image8[], opts: GifOptions = {}): Uint8Array {
  const { delayMs = 80, loop = true } = opts;
  if (frames.length === 0) throw new Error('encodeGif: frames is empty, expected at least one frame');
  if (!(delayMs >= 0 && delayMs <= 655350)) {
    throw new Error(`encodeGif: delayMs must be in 0..655350 (16-bit centiseconds), got ${delayMs}`);
  }
  const { width, height } = frames[0];
  frames.forEach((f, i) => {
    checkImage8(f, `encodeGif frame ${i}`);
    if (f.width !== width || f.height !== height) {
      throw new Error(`encodeGif: frame ${i} is ${f.width}x${f.height}, expected ${width}x${height} like frame 0`);
    }
  });

  const { GIFEncoder, quantize, applyPalette } = gifenc;
  let palette: number[][];
  let indexed: Uint8Array[];
  if (frames.every((f) => f.channels === 1)) {
    palette = GREY_PALETTE;
    indexed = frames.map((f) => f.data);
  } else {
    // One global palette over all frames: per-frame palettes make flat areas flicker between frames.
    const rgba = frames.map(toRgba);
    const all = new Uint8Array(rgba.length * rgba[0].length);
    rgba.forEach((f, i) => all.set(f, i * f.length));
    palette = quantize(all, 256);
    indexed = rgba.map((f) => applyPalette(f, palette));
  }

  const gif = GIFEncoder();
  indexed.forEach((index, i) => {
    // The palette and repeat count only matter on the first frame (global colour table, loop block).
    gif.writeFrame(index, width, height, i === 0 ? { palette, delay: delayMs, repeat: loop ? 0 : -1 } : { delay: delayMs });
  });
  gif.finish();
  return gif.bytes();
}
