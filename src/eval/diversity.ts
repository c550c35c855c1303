// Intra-class diversity: for each class the feature classifier predicts, the mean pairwise Euclidean
// distance between the feature vectors of the images it puts there, for the samples and for the real
// test images, and their ratio. FID and recall see a model that draws one garment per class only
// through their overall statistics; this figure names the class: a ratio near 1 is the data's own
// spread, near 0 every image of the class is the same (mode collapse). The measure is the average
// pairwise feature distance that GAN papers use for diversity (e.g. Yang et al. 2019, "Diversity-
// Sensitive Conditional GANs"; LPIPS diversity in Zhu et al. 2017), taken within predicted classes.
import { type Tensor, noGrad, tidy, cdist, tensor, ArgumentError } from '../tensor/index.js';

export interface ClassDiversity {
  /** Images the classifier puts in this class: samples and real. */
  count: number;
  realCount: number;
  /** Mean pairwise distance of their features; null with fewer than 2 images. */
  generated: number | null;
  real: number | null;
  /** generated / real; null when either is. */
  ratio: number | null;
}

export interface Diversity {
  /** One entry per class of the classifier. */
  perClass: ClassDiversity[];
  /**
   * Over all classes with a ratio: the per-class figures averaged with the samples' class counts as
   * weights, generated and real alike, so a model's class imbalance does not move the ratio.
   */
  generated: number | null;
  real: number | null;
  ratio: number | null;
}

/** Mean over the n(n-1)/2 unordered pairs of rows of |x_i - x_j|_2; x (n, D) with n >= 2. */
export function meanPairwiseDistance(x: Tensor): number {
  const n = x.shape[0]!;
  if (x.rank !== 2) throw new ArgumentError(`meanPairwiseDistance: expected (n, D) features, got shape [${x.shape.join(', ')}]`);
  if (n < 2) throw new ArgumentError(`meanPairwiseDistance: needs at least 2 rows for a pair, got ${n}`);
  // The full n x n matrix counts each pair twice and the zero diagonal once per row.
  return noGrad(() => tidy(() => cdist(x.double(), x.double()).sum().item())) / (n * (n - 1));
}

/** The rows of x whose predicted class (argmax of probs) is k, for every k: per-class mean pairwise distance and count. */
export function diversityByClass(features: Tensor, probs: Tensor): { count: number; mean: number | null }[] {
  const n = features.shape[0]!;
  if (probs.shape[0] !== n) throw new ArgumentError(`diversityByClass: ${n} feature rows but ${probs.shape[0]} rows of class probabilities`);
  const k = probs.shape[1]!;
  const pred = noGrad(() => tidy(() => probs.argmax(1).toArray()));
  return Array.from({ length: k }, (_, c) => {
    const rows = pred.flatMap((p, i) => (p === c ? [i] : []));
    if (rows.length < 2) return { count: rows.length, mean: null };
    const mean = tidy(() => meanPairwiseDistance(features.indexSelect(0, tensor(new BigInt64Array(rows.map(BigInt)), [rows.length]))));
    return { count: rows.length, mean };
  });
}

/** Samples' per-class diversity against the real images', each grouped by the classifier's prediction. */
export function intraClassDiversity(gen: { features: Tensor; probs: Tensor }, real: { features: Tensor; probs: Tensor }): Diversity {
  if (gen.probs.shape[1] !== real.probs.shape[1]) throw new ArgumentError(`intraClassDiversity: samples have ${gen.probs.shape[1]} classes and real images ${real.probs.shape[1]}; expected one classifier for both`);
  const g = diversityByClass(gen.features, gen.probs);
  const r = diversityByClass(real.features, real.probs);
  const perClass = g.map((gc, c): ClassDiversity => {
    const rc = r[c]!;
    return { count: gc.count, realCount: rc.count, generated: gc.mean, real: rc.mean, ratio: gc.mean !== null && rc.mean !== null && rc.mean > 0 ? gc.mean / rc.mean : null };
  });
  let wg = 0;
  let wr = 0;
  let w = 0;
  for (const c of perClass) {
    if (c.ratio === null) continue;
    wg += c.count * c.generated!;
    wr += c.count * c.real!;
    w += c.count;
  }
  return w === 0 ? { perClass, generated: null, real: null, ratio: null } : { perClass, generated: wg / w, real: wr / w, ratio: wg / wr };
}
