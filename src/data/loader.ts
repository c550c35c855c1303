// A shuffling batch iterator over an in-memory dataset, driven by one seeded generator, with a
// position that can be saved and restored (epoch, batch index, the epoch's permutation seed).
import { type Tensor, type BatchShare, Generator, randperm, tensor, tidy, keep, ArgumentError } from '../tensor/index.js';
import { randomHorizontalFlip } from './transforms.js';
import { samplesPerRank, rankRows } from './distributed-sampler.js';

export interface LoaderOptions {
  batchSize: number;
  /** The notebook's DataLoader uses drop_last=True, so every step sees a full batch. */
  dropLast?: boolean;
  flip?: boolean;
  seed: number;
  /**
   * Data parallel: this process is `rank` of `worldSize`, each with batchSize images of a global
   * batch of worldSize x batchSize. Each epoch's permutation is padded to a multiple of worldSize
   * by wrapping and rank r takes positions r, r + W, ... (PyTorch's DistributedSampler); the flips
   * are drawn for the global batch, so every rank's images are those a single process would see.
   */
  world?: { rank: number; worldSize: number };
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
  /** Images per step over all processes (batchSize x world size). */
  readonly globalBatchSize: number;
  /** This process's rows of each global batch (B,) int64, when data parallel. */
  readonly share: BatchShare | undefined;
  #epoch = 0;
  #batch = 0;
  #perm: Tensor | null = null;
  #epochState: Uint8Array;

  constructor(readonly images: Tensor, readonly labels: Tensor | null, readonly o: LoaderOptions) {
    const n = images.shape[0]!;
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new ArgumentError(`loader: batch size must be a positive integer, got ${o.batchSize}`);
    const w = o.world?.worldSize ?? 1;
    const perRank = samplesPerRank(n, w);
    this.batchesPerEpoch = (o.dropLast ?? true) ? Math.floor(perRank / o.batchSize) : Math.ceil(perRank / o.batchSize);
    if (this.batchesPerEpoch === 0) {
      const each = w > 1 ? ` (${perRank} for each of ${w} processes)` : '';
      throw new ArgumentError(`loader: ${n} images${each} are fewer than one batch of ${o.batchSize}; lower --batch-size or use more images`);
    }
    this.globalBatchSize = o.batchSize * w;
    this.share = o.world && w > 1
      ? { total: this.globalBatchSize, rows: keep(tensor(rankRows(this.globalBatchSize, o.world.rank, w), [o.batchSize], { dtype: 'int64' })) }
      : undefined;
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
    const share = this.share;
    const start = this.#batch * this.globalBatchSize;
    this.#batch += 1;
    return tidy(() => {
      let idx: Tensor; // (B,) int64
      if (share) {
        // Positions of the padded permutation (i mod n wraps around), this rank's rows of the global batch.
        const positions = Array.from(share.rows.toArray(), (r) => (start + r) % n);
        idx = this.#perm!.indexSelect(0, tensor(positions, [positions.length], { dtype: 'int64' }));
      } else {
        idx = this.#perm!.narrow(0, start, Math.min(this.o.batchSize, n - start));
      }
      let x = this.images.indexSelect(0, idx);
      if (this.o.flip ?? true) x = randomHorizontalFlip(x, this.generator, 0.5, share);
      if (skip) return null;
      return { x, y: this.labels ? this.labels.indexSelect(0, idx) : null };
    });
  }
}
