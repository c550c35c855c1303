// A process's share of a global batch in data-parallel training: the random draws of the whole batch,
// made as one process would make them, then this process's rows.
import type { Tensor } from './tensor.js';
import { tidy } from './scope.js';
import { ArgumentError } from './check.js';

/**
 * This process's rows of a global batch that several processes compute together (data parallel):
 * random draws are made for all `total` rows, as one process would, and `rows` (B,) int64 picks
 * this process's, so a run's randomness does not depend on how many processes share it.
 */
export interface BatchShare { total: number; rows: Tensor }

/** draw(n) for the whole global batch, then this process's rows (or draw(b) when there is no share). */
export function drawShare(share: BatchShare | undefined, b: number, draw: (n: number) => Tensor): Tensor {
  if (!share) return draw(b);
  if (share.rows.shape[0] !== b) throw new ArgumentError(`batch share: ${share.rows.shape[0]} rows of ${share.total} are this process's, but the batch has ${b}`);
  return tidy(() => draw(share.total).indexSelect(0, share.rows));
}
