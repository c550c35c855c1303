// The training loss of the noise-aware classifier of classifier guidance (Dhariwal & Nichol 2021,
// section 4; guided-diffusion's classifier_train.py): t ~ U{0..T-1}, x_t ~ q(x_t | x_0) on the run's
// own schedule, and the cross-entropy of the classifier's logits at (x_t, t) against the labels.
import { type Tensor, type Generator, type BatchShare, drawShare, randint, randn, crossEntropy, tidy, ArgumentError } from '../tensor/index.js';
import type { Diffusion } from './process.js';

/** Class logits of p_phi(y | x_t, t): x_t (B, C, H, W), t (B,) int64 -> (B, K). */
export type ClassifierFn = (xt: Tensor, t: Tensor) => Tensor;

export interface ClassifierLossOptions {
  generator?: Generator;
  /** Data parallel: x0 is these rows of a global batch; t and the noise are drawn for the whole of it. */
  share?: BatchShare;
}

/** Mean cross-entropy of the classifier on noised images x_t of x0 (B, C, H, W) with labels y (B,) int64. */
export function classifierLoss(diffusion: Diffusion, classifier: ClassifierFn, x0: Tensor, y: Tensor, o: ClassifierLossOptions = {}): Tensor {
  if (y.rank !== 1 || y.shape[0] !== x0.shape[0]) throw new ArgumentError(`classifier loss: labels have shape [${y.shape.join(', ')}], expected [${x0.shape[0]}] (one per image)`);
  const gen = o.generator ? { generator: o.generator } : {};
  return tidy(() => {
    const b = x0.shape[0]!;
    const [, ...chw] = x0.shape;
    // Drawn on the CPU generator whatever x0's device, then moved: the same t and noise on every device.
    const onDevice = (u: Tensor): Tensor => (x0.device === 'cpu' ? u : u.to(x0.device));
    const t = onDevice(drawShare(o.share, b, (n) => randint(0, diffusion.T, [n], gen))); // (B,)
    const noise = onDevice(drawShare(o.share, b, (n) => randn([n, ...chw], { ...gen, dtype: x0.dtype }))); // (B, C, H, W)
    const { xt } = diffusion.qSample(x0, t, noise);
    return crossEntropy(classifier(xt, t), onDevice(y)); // logits (B, K)
  });
}
