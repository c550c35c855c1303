// Frechet distance between Gaussian fits of two feature sets (Heusel et al. 2017, FID), in float64:
//   d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2).
// tr sqrt(S1 S2) is taken as tr sqrt(sqrt(S1) S2 sqrt(S1)): the same eigenvalues (similar matrices)
// but a symmetric positive semi-definite matrix, so two symmetric eigendecompositions replace
// scipy.linalg.sqrtm's Schur method, and eigenvalues that rounding pushes slightly below 0 (rank-
// deficient covariances: fewer samples than feature dims) are clamped to 0 instead of turning into
// the imaginary parts pytorch-fid and clean-fid discard.
import { type Tensor, noGrad, tidy, linalgEigh, arange, ArgumentError } from '../tensor/index.js';

export interface GaussianStats {
  /** (D,) float64. */
  mu: Tensor;
  /** (D, D) float64, unbiased (np.cov's ddof = 1, as pytorch-fid). */
  sigma: Tensor;
  /** Number of feature rows fitted. */
  count: number;
}

function checkFeatures(what: string, f: Tensor, minRows = 2): void {
  if (f.rank !== 2) throw new ArgumentError(`${what}: features must be (N, D), got [${f.shape.join(', ')}]`);
  if (f.shape[0]! < minRows) throw new ArgumentError(`${what}: needs at least ${minRows} feature rows, got ${f.shape[0]}`);
}

/** Mean and covariance of (N, D) features, in float64. */
export function gaussianStats(features: Tensor): GaussianStats {
  checkFeatures('gaussianStats', features);
  const n = features.shape[0]!;
  return noGrad(() => tidy(() => {
    const f = features.double(); // (N, D)
    const mu = f.mean(0); // (D,)
    const c = f.sub(mu); // (N, D)
    const sigma = c.transpose(0, 1).matmul(c).div(n - 1); // (D, D)
    return { mu, sigma: sigma.add(sigma.transpose(0, 1)).mul(0.5), count: n };
  }));
}

/** sqrt of a symmetric PSD matrix through its eigendecomposition, negative eigenvalues clamped to 0. */
export function sqrtmPsd(a: Tensor): Tensor {
  return noGrad(() => tidy(() => {
    const sym = a.add(a.transpose(0, 1)).mul(0.5); // (D, D)
    const { values, vectors } = linalgEigh(sym);
    const root = values.clamp(0, null).sqrt(); // (D,)
    return vectors.mul(root.unsqueeze(0)).matmul(vectors.transpose(0, 1)); // V diag(sqrt l) V^T
  }));
}

/** tr sqrt(S1 S2) for symmetric PSD S1, S2, as the sum of sqrt of the eigenvalues of sqrt(S1) S2 sqrt(S1). */
export function traceSqrtProduct(s1: Tensor, s2: Tensor): number {
  return noGrad(() => tidy(() => {
    const r1 = sqrtmPsd(s1.double());
    const m = r1.matmul(s2.double()).matmul(r1); // (D, D), symmetric PSD up to rounding
    const { values } = linalgEigh(m.add(m.transpose(0, 1)).mul(0.5));
    return values.clamp(0, null).sqrt().sum().item();
  }));
}

/** The Frechet distance of two Gaussians (FID when they fit feature-network activations). */
export function frechetDistance(a: Pick<GaussianStats, 'mu' | 'sigma'>, b: Pick<GaussianStats, 'mu' | 'sigma'>): number {
  const d = a.mu.shape[0]!;
  for (const [what, s] of [['first', a], ['second', b]] as const) {
    if (s.mu.rank !== 1 || s.sigma.shape.join() !== `${d},${d}`) {
      throw new ArgumentError(`frechetDistance: the ${what} Gaussian has mu [${s.mu.shape.join(', ')}] and sigma [${s.sigma.shape.join(', ')}]; expected [${d}] and [${d}, ${d}]`);
    }
  }
  const parts = noGrad(() => tidy(() => {
    const diff = a.mu.double().sub(b.mu.double()); // (D,)
    return { meanTerm: diff.square().sum().item(), tr1: trace(a.sigma), tr2: trace(b.sigma) };
  }));
  const cross = traceSqrtProduct(a.sigma, b.sigma);
  // Rounding can leave -1e-13 for identical inputs; a distance is never negative.
  return Math.max(0, parts.meanTerm + parts.tr1 + parts.tr2 - 2 * cross);
}

function trace(s: Tensor): number {
  return noGrad(() => tidy(() => {
    const d = s.shape[0]!;
    // The diagonal of a contiguous (D, D) matrix is every (D + 1)-th element.
    return s.double().contiguous().reshape([d * d]).indexSelect(0, arange(0, d * d, d + 1)).sum().item();
  }));
}

/** FID between two feature sets (N1, D) and (N2, D). */
export function fid(a: Tensor, b: Tensor): number {
  checkFeatures('fid (first set)', a);
  checkFeatures('fid (second set)', b);
  const sa = gaussianStats(a);
  const sb = gaussianStats(b);
  try {
    return frechetDistance(sa, sb);
  } finally {
    for (const t of [sa.mu, sa.sigma, sb.mu, sb.sigma]) t.dispose();
  }
}
