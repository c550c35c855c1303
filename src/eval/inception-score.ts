// The Inception-Score analogue (Salimans et al. 2016) with the Fashion-MNIST classifier in place of
// Inception: exp(E_x KL(p(y|x) || p(y))), over 10 consecutive splits as the original code
// (openai/improved-gan, inception_score.py), reported as the mean and standard deviation over the
// splits. High when each sample is classified confidently (quality) and the classes are used evenly
// (diversity); at most the number of classes, 10. Also the class histogram of the samples.
import { type Tensor, noGrad, tidy, zerosLike, where, ArgumentError } from '../tensor/index.js';

export const IS_SPLITS = 10;

export interface InceptionScore { mean: number; std: number; splits: number }

/** probs (N, K): rows of p(y|x), e.g. the classifier's softmax. */
export function inceptionScore(probs: Tensor, splits = IS_SPLITS): InceptionScore {
  const n = probs.shape[0]!;
  if (probs.rank !== 2) throw new ArgumentError(`inceptionScore: expected class probabilities (N, K), got [${probs.shape.join(', ')}]`);
  if (!Number.isInteger(splits) || splits < 1 || splits > n) throw new ArgumentError(`inceptionScore: splits must be an integer in [1, ${n}] for ${n} samples, got ${splits}`);
  const scores = noGrad(() => Array.from({ length: splits }, (_, k) => tidy(() => {
    const start = Math.floor((k * n) / splits);
    const end = Math.floor(((k + 1) * n) / splits);
    const p = probs.narrow(0, start, end - start).double(); // (n_k, K)
    const py = p.mean(0, true); // (1, K) the split's marginal p(y)
    // p log(p / p(y)), with 0 log 0 = 0 (a class the softmax underflowed to 0 contributes nothing).
    const terms = where(p.gt(0), p.mul(p.log().sub(py.log())), zerosLike(p)); // (n_k, K)
    return Math.exp(terms.sum(1).mean().item());
  })));
  const mean = scores.reduce((a, b) => a + b, 0) / splits;
  const std = Math.sqrt(scores.reduce((a, b) => a + (b - mean) ** 2, 0) / splits);
  return { mean, std, splits };
}

/** How many samples the classifier puts in each class (argmax of probs (N, K)). */
export function classHistogram(probs: Tensor): number[] {
  const k = probs.shape[1]!;
  const pred = noGrad(() => tidy(() => probs.argmax(1).toArray()));
  const counts = new Array<number>(k).fill(0);
  for (const c of pred) counts[c]! += 1;
  return counts;
}
