// gifenc ships no types. Its CJS build is not seen by Node's named-export detection, so under ESM
// only the default import (module.exports) exists; declare it that way to match the runtime.
declare module 'gifenc' {
  export type Palette = number[][];
  export interface FrameOptions {
    palette?: Palette;
    delay?: number; // milliseconds, rounded to centiseconds by the encoder
    repeat?: number; // -1 once, 0 forever, >0 count
    transparent?: boolean;
    transparentIndex?: number;
    dispose?: number;
    first?: boolean;
    colorDepth?: number;
  }
  export interface Encoder {
    writeFrame(index: Uint8Array, width: number, height: number, opts?: FrameOptions): void;
    finish(): void;
    bytes(): Uint8Array;
  }
  export type ColorFormat = 'rgb565' | 'rgb444' | 'rgba4444';
  const gifenc: {
    GIFEncoder(opts?: { auto?: boolean; initialCapacity?: number }): Encoder;
    quantize(rgba: Uint8Array, maxColors: number, opts?: { format?: ColorFormat }): Palette;
    applyPalette(rgba: Uint8Array, palette: Palette, format?: ColorFormat): Uint8Array;
  };
  export default gifenc;
}
