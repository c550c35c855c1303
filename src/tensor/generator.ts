// Seeded random-number generators (libtorch's CPU Mersenne Twister, the one torch.Generator uses),
// so the same seed gives the same numbers as PyTorch's `torch.Generator().manual_seed(seed)`.
import { native, type GeneratorHandle, type Handle } from './native.js';

export class Generator {
  /** @internal */
  readonly handle: GeneratorHandle;

  constructor(seed: number | bigint = 0, handle?: GeneratorHandle) {
    this.handle = handle ?? native.newGenerator(checkSeed(seed));
  }

  manualSeed(seed: number | bigint): this {
    native.generatorSeed(this.handle, checkSeed(seed));
    return this;
  }

  /** The full generator state (bytes), for exact resume. */
  getState(): Uint8Array {
    const h: Handle = native.generatorGetState(this.handle);
    try {
      return new Uint8Array(native.toBuffer(h) as ArrayBuffer);
    } finally {
      native.dispose(h);
    }
  }

  setState(state: Uint8Array): void {
    const h: Handle = native.fromBuffer(state, [state.length], 0);
    try {
      native.generatorSetState(this.handle, h);
    } finally {
      native.dispose(h);
    }
  }
}

function checkSeed(seed: number | bigint): number {
  const n = Number(seed);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`seed must be a non-negative integer, got ${String(seed)}`);
  return n;
}

let defaultGen: Generator | undefined;

/** The process-wide default generator (torch's default CPU generator), used when none is given. */
export function defaultGenerator(): Generator {
  defaultGen ??= new Generator(0, native.defaultGenerator());
  return defaultGen;
}

/** Seeds the default generator, as torch.manual_seed does. */
export function manualSeed(seed: number): void {
  native.manualSeed(checkSeed(seed));
}
