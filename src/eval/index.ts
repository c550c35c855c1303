// Sample-quality metrics against Fashion-MNIST with the shipped feature network (`ddpm eval`), the
// variational bound in bits/dim and the loss per timestep.
export { DEFAULT_FEATURE_NET_PATH, EMBED_BATCH, loadFeatureNet, embed, type FeatureNet, type Embedding } from './feature-net.js';
export { gaussianStats, frechetDistance, traceSqrtProduct, sqrtmPsd, fid, type GaussianStats } from './fid.js';
export { mmd2Unbiased, kid, kidFromSubsets, KID_SUBSETS, KID_SUBSET_SIZE, type KidResult, type KidSubset } from './kid.js';
export { precisionRecall, kNearestRadii, fractionInManifold, PR_K, type PrecisionRecall } from './precision-recall.js';
export { inceptionScore, classHistogram, IS_SPLITS, type InceptionScore } from './inception-score.js';
export {
  referenceStats, readReferenceCache, disposeReference, defaultCacheDir, cacheFileName, quantize8, realImagesAt, CACHE_FORMAT,
  type ReferenceStats, type ReferenceKey, type ReferenceOptions,
} from './reference.js';
export { meanPairwiseDistance, diversityByClass, intraClassDiversity, type Diversity, type ClassDiversity } from './diversity.js';
export { evaluateSamples, MIN_EVAL_SAMPLES, type EvalMetrics, type EvalOptions } from './evaluate.js';
export {
  variationalBound, normalKl, discretizedGaussianLogLikelihood, reverseLogVariance, type BoundOptions, type BoundResult,
} from './nll.js';
export { lossByT, lossTimesteps, defaultLossPoints, type LossByTOptions, type LossByTResult } from './loss-by-t.js';
