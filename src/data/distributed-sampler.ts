// PyTorch's DistributedSampler (torch/utils/data/distributed.py) over one epoch's permutation: pad the
// permutation to a multiple of the world size by wrapping around, then rank r takes positions
// r, r + W, r + 2W, ... Tensor-free: positions only.

/** The number of examples each rank sees per epoch: ceil(n / W), the padded permutation's share. */
export function samplesPerRank(n: number, worldSize: number): number {
  return Math.ceil(n / worldSize);
}

/**
 * Positions into a permutation of length n that rank `rank` visits this epoch, in order. Position
 * i of the padded permutation is i mod n (the wrap-around padding).
 */
export function distributedPositions(n: number, rank: number, worldSize: number): number[] {
  if (!(Number.isInteger(worldSize) && worldSize >= 1)) throw new RangeError(`world size must be an integer >= 1, got ${worldSize}`);
  if (!(Number.isInteger(rank) && rank >= 0 && rank < worldSize)) throw new RangeError(`rank must be an integer in [0, ${worldSize}), got ${rank}`);
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`the dataset must hold at least one example, got ${n}`);
  const total = samplesPerRank(n, worldSize) * worldSize;
  const out: number[] = [];
  for (let i = rank; i < total; i += worldSize) out.push(i % n);
  return out;
}

/**
 * Rows of a global batch of `globalSize` rows (W ranks x B) that rank r computes: r, r + W, ...
 * Global batch k of a DistributedSampler run is positions [kWB, (k+1)WB) of the padded permutation,
 * and rank r's batch k is exactly its rows r::W, so the random draws a single process makes for that
 * batch (t, noise, flips, label drops) line up row for row.
 */
export function rankRows(globalSize: number, rank: number, worldSize: number): number[] {
  if (globalSize % worldSize !== 0) throw new RangeError(`a global batch of ${globalSize} does not split into ${worldSize} equal shares`);
  const out: number[] = [];
  for (let i = rank; i < globalSize; i += worldSize) out.push(i);
  return out;
}
