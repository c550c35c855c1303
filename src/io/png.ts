import { randomBytes } from 'node:crypto';
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { PNG } from 'pngjs';

/** 8-bit raster, interleaved HWC (the PNG byte order), channels 1 = grey, 3 = RGB, 4 = RGBA. */
export interface Image8 {
  width: number;
  height: number;
  channels: 1 | 3 | 4;
  data: Uint8Array;
}

// PNG colour types for 8-bit grey, RGB and RGBA (PNG spec 11.2.2, IHDR).
const COLOR_TYPE = { 1: 0, 3: 2, 4: 6 } as const;

export function checkImage8(img: Image8, where: string): void {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`${where}: image size must be positive integers, got ${width}x${height}`);
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new Error(`${where}: channels must be 1, 3 or 4, got ${String(channels)}`);
  }
  if (data.length !== width * height * channels) {
    throw new Error(
      `${where}: data has ${data.length} bytes, expected ${width}*${height}*${channels} = ` +
        `${width * height * channels}; hint: data is interleaved HWC, one byte per sample`,
    );
  }
}

/** Encodes as an 8-bit PNG of the image's own colour type, so grey stays grey (1 byte/pixel). */
export function encodePng(img: Image8): Buffer {
  checkImage8(img, 'encodePng');
  const colorType = COLOR_TYPE[img.channels];
  // new PNG() without a size allocates nothing; the packer only reads width, height and data.
  const png = new PNG();
  png.width = img.width;
  png.height = img.height;
  png.data = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  // inputColorType === colorType takes pngjs's pass-through path: no RGBA round trip, no bgColor blend.
  return PNG.sync.write(png, {
    colorType,
    inputColorType: colorType,
    inputHasAlpha: img.channels === 4,
    bitDepth: 8,
  });
}

/** The PNG as a data: URL, for pages that show images without a file. */
export function pngDataUrl(img: Image8): string {
  return `data:image/png;base64,${encodePng(img).toString('base64')}`;
}

/** Decodes any PNG to 8 bits (palette expanded, 16-bit rounded); keeps grey as 1 channel, RGB as 3. */
export function decodePng(bytes: Uint8Array, source: string): Image8 {
  let meta;
  try {
    meta = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new Error(
      `decodePng: ${source} is not a readable PNG (${(e as Error).message}); ` +
        `hint: check the file is a complete .png`,
      { cause: e },
    );
  }
  // pngjs always hands back RGBA; a tRNS chunk (transColor or palette alpha) makes alpha meaningful.
  const hasAlpha = meta.alpha || 'transColor' in meta;
  const channels: 1 | 3 | 4 = hasAlpha ? 4 : meta.color || meta.palette ? 3 : 1;
  const { width, height } = meta;
  const rgba = meta.data;
  if (channels === 4) return { width, height, channels, data: new Uint8Array(rgba) };
  const data = new Uint8Array(width * height * channels);
  for (let p = 0, q = 0; q < data.length; p += 4) {
    for (let k = 0; k < channels; k++) data[q++] = rgba[p + k];
  }
  return { width, height, channels, data };
}

/** Writes a PNG atomically: readers never see a half-written file if the process dies mid-write. */
export function writePng(path: string, img: Image8): void {
  const bytes = encodePng(img);
  // Same folder as the target so rename() stays on one filesystem and is atomic.
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // tmp was never created or already renamed; the original error is the one to report
    }
    throw new Error(`writePng: could not write ${path} (${(e as Error).message})`, { cause: e });
  }
}
