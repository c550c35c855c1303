// Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs", section 4): the
// unbiased estimate of MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged
// over random subsets of equal size m, as their code and clean-fid's kernel_distance do it
// (100 subsets of min(1000, n) rows by default). Unlike FID it is unbiased in the sample count,
// so small evaluations compare fairly.
import { type Tensor, type Generator, noGrad, tidy, tensor, randperm, ArgumentError } from '../tensor/index.js';

export const KID_SUBSETS = 100;
export const KID_SUBSET_SIZE = 1000;

/**
 * Unbiased MMD^2 between the rows of x (m, D) and y (m, D), polynomial kernel of degree 3:
 *   (sum_{i != j} k(x_i, x_j) + sum_{i != j} k(y_i, y_j)) / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2.
 */
export function mmd2Unbiased(x: Tensor, y: Tensor): number {
  if (x.rank !== 2 || y.rank !== 2 || x.shape[1] !== y.shape[1]) throw new ArgumentError(`mmd2Unbiased: expected (m, D) and (m, D), got [${x.shape.join(', ')}] and [${y.shape.join(', ')}]`);
  const m = x.shape[0]!;
  if (y.shape[0] !== m || m < 2) throw new ArgumentError(`mmd2Unbiased: both sets need the same number of rows, at least 2; got ${m} and ${y.shape[0]}`);
  const d = x.shape[1]!;
  return noGrad(() => tidy(() => {
    const xd = x.double();
    const yd = y.double();
    const k = (a: Tensor, b: Tensor): Tensor => a.matmul(b.transpose(0, 1)).div(d).add(1).pow(3); // (m, m)
    // The diagonal of k(x, x) is (|x_i|^2 / d + 1)^3.
    const diag = (a: Tensor): number => a.square().sum(1).div(d).add(1).pow(3).sum().item();
    const kxx = k(xd, xd).sum().item() - diag(xd);
    const kyy = k(yd, yd).sum().item() - diag(yd);
    const kxy = k(xd, yd).sum().item();
    return (kxx + kyy) / (m * (m - 1)) - (2 * kxy) / (m * m);
  }));
}

/** Row indices of each subset: one draw for the first set and one for the second. */
export interface KidSubset { x: number[]; y: number[] }

export interface KidResult {
  /** Mean of MMD^2 over the subsets. */
  mean: number;
  /** Standard deviation over the subsets (ddof 0, as Binkowski et al.'s reporting code). */
  std: number;
  subsets: number;
  subsetSize: number;
}

/** KID over the given subsets (fixed indices: what the fixture test replays). */
export function kidFromSubsets(x: Tensor, y: Tensor, subsets: readonly KidSubset[]): KidResult {
  if (subsets.length === 0) throw new ArgumentError('kid: needs at least one subset');
  const values = noGrad(() => subsets.map((s, i) => tidy(() => {
    if (s.x.length !== s.y.length) throw new ArgumentError(`kid: subset ${i} has ${s.x.length} rows of the first set and ${s.y.length} of the second; they must be equal`);
    const pick = (t: Tensor, idx: number[]): Tensor => t.indexSelect(0, tensorOfIndices(idx));
    return mmd2Unbiased(pick(x, s.x), pick(y, s.y));
  })));
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
  return { mean, std, subsets: values.length, subsetSize: subsets[0]!.x.length };
}

function tensorOfIndices(idx: number[]): Tensor {
  return tensor(BigInt64Array.from(idx, (i) => BigInt(i)), [idx.length]);
}

/**
 * KID of x (N1, D) against y (N2, D): `subsets` draws of m = min(subsetSize, N1, N2) rows from each
 * set without replacement (a fresh permutation per draw, from `generator`).
 */
export function kid(x: Tensor, y: Tensor, o: { generator: Generator; subsets?: number; subsetSize?: number }): KidResult {
  const count = o.subsets ?? KID_SUBSETS;
  const m = Math.min(o.subsetSize ?? KID_SUBSET_SIZE, x.shape[0]!, y.shape[0]!);
  if (m < 2) throw new ArgumentError(`kid: needs at least 2 rows in each set, got ${x.shape[0]} and ${y.shape[0]}`);
  const draw = (n: number): number[] => tidy(() => randperm(n, { generator: o.generator }).narrow(0, 0, m).toArray());
  const subsets: KidSubset[] = [];
  for (let i = 0; i < count; i++) subsets.push({ x: draw(x.shape[0]!), y: draw(y.shape[0]!) });
  return kidFromSubsets(x, y, subsets);
}
