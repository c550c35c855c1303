// A shuffling batch iterator over an in-memory dataset, driven by one seeded generator, with a
// position that can be saved and restored (epoch, batch index, the epoch's permutation seed).
import { type Tensor, Generator, randperm, tidy, keep, ArgumentError } from '../tensor/index.js';
import { randomHorizontalFlip } from './transforms.js';

export interface LoaderOptions {
  batchSize: number;
  /** The notebook's DataLoader uses drop_last=True, so every step sees a full batch. */
  dropLast?: boolean;
  flip?: boolean;
  seed: number;
}

export interface LoaderPosition {
  epoch: number;
  batch: number;
  /** State of the generator at the start of this epoch (before its permutation was drawn). */
  epochState: number[];
}

export class BatchLoader {
  readonly generator: Generator;
  readonly batchesPerEpoch: number;
  #epoch = 0;
  #batch = 0;
  #perm: Tensor | null = null;
  #epochState: Uint8Array;

  constructor(readonly images: Tensor, readonly labels: Tensor | null, readonly o: LoaderOptions) {
    const n = images.shape[0]!;
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new ArgumentError(`loader: batch size must be a positive integer, got ${o.batchSize}`);
    this.batchesPerEpoch = (o.dropLast ?? true) ? Math.floor(n / o.batchSize) : Math.ceil(n / o.batchSize);
    if (this.batchesPerEpoch === 0) {
      throw new ArgumentError(`loader: ${n} images are fewer than one batch of ${o.batchSize}; lower --batch-size or use more images`);
    }
    this.generator = new Generator(o.seed);
    this.#epochState = this.generator.getState();
  }

  get epoch(): number { return this.#epoch; }
  get batchIndex(): number { return this.#batch; }

  position(): LoaderPosition {
    return { epoch: this.#epoch, batch: this.#batch, epochState: Array.from(this.#epochState) };
  }

  /** Continues exactly where position() was taken (the permutation and later draws repeat). */
  restore(p: LoaderPosition): void {
    this.#perm?.dispose();
    this.#perm = null;
    this.#epoch = p.epoch;
    this.#batch = 0;
    this.#epochState = Uint8Array.from(p.epochState);
    this.generator.setState(this.#epochState);
    for (let i = 0; i < p.batch; i++) this.next(true);
  }

  /** The next batch (B, C, H, W) and labels (B,), or null at the end of an epoch (then the next epoch starts). */
  next(skip = false): { x: Tensor; y: Tensor | null } | null {
    if (this.#batch >= this.batchesPerEpoch) {
      this.#perm?.dispose();
      this.#perm = null;
      this.#epoch += 1;
      this.#batch = 0;
      this.#epochState = this.generator.getState();
      return null;
    }
    this.#perm ??= keep(randperm(this.images.shape[0]!, { generator: this.generator }));
    const n = this.images.shape[0]!;
    const start = this.#batch * this.o.batchSize;
    const size = Math.min(this.o.batchSize, n - start);
    this.#batch += 1;
    return tidy(() => {
      const idx = this.#perm!.narrow(0, start, size); // (B,) int64
      let x = this.images.indexSelect(0, idx);
      if (this.o.flip ?? true) x = randomHorizontalFlip(x, this.generator);
      if (skip) return null;
      return { x, y: this.labels ? this.labels.indexSelect(0, idx) : null };
    });
  }
}
