// Every metric of `ddpm eval` for one set of samples against the reference statistics.
import { type Tensor, Generator, noGrad, tidy, randperm, ArgumentError } from '../tensor/index.js';
import { FASHION_MNIST_CLASSES } from '../data/fashion-mnist.js';
import { type FeatureNet, embed } from './feature-net.js';
import { type ReferenceStats } from './reference.js';
import { gaussianStats, frechetDistance } from './fid.js';
import { type KidResult, kid } from './kid.js';
import { PR_K, precisionRecall } from './precision-recall.js';
import { type InceptionScore, inceptionScore, classHistogram, IS_SPLITS } from './inception-score.js';
import { type Diversity, intraClassDiversity } from './diversity.js';

/** Fewest samples `ddpm eval` scores: the Inception Score needs one per split, precision/recall more than k. */
export const MIN_EVAL_SAMPLES = Math.max(IS_SPLITS, PR_K + 1);

export interface EvalMetrics {
  /** Frechet distance of the 128-d classifier features (float64, matrix square root by eigh). */
  fid: number;
  /** MMD^2 with the cubic polynomial kernel, mean and std over the subsets. */
  kid: KidResult;
  precision: number;
  recall: number;
  /** Neighbours defining each manifold ball. */
  k: number;
  /** Real images drawn (at random, seeded) for precision/recall: as many as samples, so both manifolds are estimated alike. */
  prRealCount: number;
  /** exp(E KL(p(y|x) || p(y))) with the classifier; at most 10. */
  inceptionScore: InceptionScore;
  /** Samples per class by the classifier's argmax. */
  classHistogram: { names: readonly string[]; counts: number[] };
  /** Class-conditional samples: the fraction the classifier puts in the class they were drawn for. */
  conditionalAccuracy?: number;
  /** The same figures for the real test images themselves, for scale (IS and histogram only). */
  realInceptionScore: InceptionScore;
  /** Mean pairwise feature distance within each predicted class, samples against the test images (diversity.ts). */
  diversity: Diversity;
}

export interface EvalOptions {
  net: FeatureNet;
  reference: ReferenceStats;
  /** Seeds the KID subsets and the real subset of precision/recall. */
  seed: number;
  /** Images per feature-network call (default EMBED_BATCH). */
  batchSize?: number;
  /** The class each sample was drawn for (class-conditional runs). */
  labels?: readonly number[];
}

/** Scores (N, 1, S, S) samples in [-1, 1] (8-bit levels, see quantize8) against the reference. */
export function evaluateSamples(samples: Tensor, o: EvalOptions): EvalMetrics {
  const n = samples.shape[0]!;
  if (n < MIN_EVAL_SAMPLES) throw new ArgumentError(`eval: needs at least ${MIN_EVAL_SAMPLES} samples, got ${n} (FID and KID want 1,000 or more to mean much)`);
  if (o.labels !== undefined && o.labels.length !== n) throw new ArgumentError(`eval: ${o.labels.length} labels for ${n} samples`);
  const ref = o.reference;
  const { features, probs } = embed(o.net.net, samples, o.batchSize);
  try {
    const stats = gaussianStats(features);
    let fid: number;
    try {
      fid = frechetDistance(stats, ref);
    } finally {
      stats.mu.dispose();
      stats.sigma.dispose();
    }
    const gen = new Generator(o.seed);
    const kidResult = kid(features, ref.features, { generator: gen });
    const realCount = Math.min(n, ref.count);
    const realSubset = noGrad(() => tidy(() => ref.features.indexSelect(0, randperm(ref.count, { generator: gen }).narrow(0, 0, realCount))));
    let pr;
    try {
      pr = precisionRecall(realSubset, features, PR_K);
    } finally {
      realSubset.dispose();
    }
    const counts = classHistogram(probs);
    let conditionalAccuracy: number | undefined;
    if (o.labels !== undefined) {
      const pred = noGrad(() => tidy(() => probs.argmax(1).toArray()));
      conditionalAccuracy = pred.filter((p, i) => p === o.labels![i]).length / n;
    }
    return {
      fid, kid: kidResult, precision: pr.precision, recall: pr.recall, k: pr.k, prRealCount: realCount,
      inceptionScore: inceptionScore(probs, IS_SPLITS),
      classHistogram: { names: FASHION_MNIST_CLASSES, counts },
      ...(conditionalAccuracy !== undefined ? { conditionalAccuracy } : {}),
      realInceptionScore: inceptionScore(ref.probs, IS_SPLITS),
      diversity: intraClassDiversity({ features, probs }, { features: ref.features, probs: ref.probs }),
    };
  } finally {
    features.dispose();
    probs.dispose();
  }
}
