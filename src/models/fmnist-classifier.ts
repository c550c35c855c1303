// The Fashion-MNIST feature network of `ddpm eval`: a small CNN classifier whose 128-d penultimate
// layer plays the part Inception-v3's pool3 plays in FID (Heusel et al. 2017). Inception weights
// cannot be fetched here, and Inception features of 28x28 grey garments upscaled to 299x299 colour
// are known to mislead (Kynkaanniemi et al. 2023, "The Role of ImageNet Classes in FID"); a
// classifier trained on the data set itself is the usual substitute for MNIST-like data.
//
// Input: (B, 1, S, S) in [-1, 1]. S = 28 goes in as is; any other S (16x16 dli02 samples) is first
// resized to 28 with the project's antialiased bilinear interpolate. `ddpm eval` brings the real
// images to the run's resolution and then up to 28 in exactly the same way, so both sides of every
// metric pass through the same resize (see src/eval/reference.ts).
//
// The shipped weights (assets/fmnist-features.safetensors, tools/train_feature_net.ts) reach 93.48%
// test accuracy at 28x28 and 91.72% after the 16x16 round trip; their feature layer is scaled to a
// mean square of about 1 per dimension on the training set (metadata `featureScale`), the O(1)
// range KID's polynomial kernel is meant for.
import { type Tensor, interpolate, ArgumentError } from '../tensor/index.js';
import { Module, Sequential, Conv2d, BatchNorm2d, ReLU, MaxPool2d, Flatten, Linear, Dropout, foldBatchNorm, FoldedConv } from '../nn/index.js';

/** The side the network was trained at: Fashion-MNIST's own. */
export const CLASSIFIER_SIZE = 28;

export interface FmnistClassifierConfig {
  /** Conv channels of the two Conv-BN-ReLU x2 + max-pool stages. */
  channels: [number, number];
  /** Width of the feature layer (the FID/KID/PR embedding). */
  featureDim: number;
  numClasses: number;
  /** Dropout after the feature layer, in training only. */
  dropout: number;
}

export const FMNIST_CLASSIFIER_DEFAULTS: FmnistClassifierConfig = { channels: [32, 64], featureDim: 128, numClasses: 10, dropout: 0.3 };

function convStage(inCh: number, outCh: number): Sequential {
  return new Sequential(
    new Conv2d(inCh, outCh, 3, { padding: 1 }), new BatchNorm2d(outCh), new ReLU(),
    new Conv2d(outCh, outCh, 3, { padding: 1 }), new BatchNorm2d(outCh), new ReLU(),
    new MaxPool2d(2),
  );
}

export class FmnistClassifier extends Module {
  readonly body: Sequential;
  readonly feature: Linear;
  readonly drop: Dropout;
  readonly head: Linear;

  constructor(readonly config: FmnistClassifierConfig = FMNIST_CLASSIFIER_DEFAULTS) {
    super();
    const [c1, c2] = config.channels;
    // 28 -> 14 -> 7 after the two pools.
    this.body = this.registerModule('body', new Sequential(convStage(1, c1), convStage(c1, c2), new Flatten()));
    this.feature = this.registerModule('feature', new Linear(c2 * 7 * 7, config.featureDim));
    this.drop = this.registerModule('drop', new Dropout(config.dropout));
    this.head = this.registerModule('head', new Linear(config.featureDim, config.numClasses));
  }

  /** (B, 1, S, S) in [-1, 1] -> (B, 1, 28, 28): antialiased bilinear resize when S is not 28. */
  static toInputSize(x: Tensor): Tensor {
    const s = x.shape;
    if (s.length !== 4 || s[1] !== 1 || s[2] !== s[3] || s[2]! < 2) {
      throw new ArgumentError(`FmnistClassifier: expected grey square images (B, 1, S, S), got [${s.join(', ')}]`);
    }
    if (s[2] === CLASSIFIER_SIZE) return x;
    return interpolate(x, { size: [CLASSIFIER_SIZE, CLASSIFIER_SIZE], mode: 'bilinear', antialias: true });
  }

  /** The 128-d embedding (after its ReLU, before dropout) and the class logits. */
  forwardBoth(x: Tensor): { features: Tensor; logits: Tensor } {
    const h = this.body.forward(FmnistClassifier.toInputSize(x)); // (B, c2 * 49)
    const features = this.feature.forward(h).relu(); // (B, featureDim)
    const logits = this.head.forward(this.drop.forward(features)); // (B, numClasses)
    return { features, logits };
  }

  forward(x: Tensor): Tensor { return this.forwardBoth(x).logits; }

  /**
   * forwardBoth in eval mode with each BatchNorm folded into its convolution: the same values to float
   * rounding, about 4x faster here (libtorch's eval-mode BatchNorm is a slow path on this CPU).
   */
  foldedForInference(): ClassifierInference {
    if (this.training) throw new ArgumentError('FmnistClassifier.foldedForInference: put the model in eval mode first (model.eval())');
    const stages = (this.body.layers.slice(0, 2) as Sequential[]).map((s) => foldBatchNorm(s));
    const flatten = this.body.layers[2]!;
    return {
      forwardBoth: (x) => {
        let h = FmnistClassifier.toInputSize(x);
        for (const s of stages) h = s.forward(h);
        const features = this.feature.forward(flatten.forward(h)).relu(); // (B, featureDim)
        return { features, logits: this.head.forward(features) }; // dropout is the identity in eval mode
      },
      // Only the folded convolutions own tensors; the other layers are the model's.
      dispose: () => { for (const s of stages) for (const l of s.layers) if (l instanceof FoldedConv) l.dispose(); },
    };
  }
}

export interface ClassifierInference {
  forwardBoth(x: Tensor): { features: Tensor; logits: Tensor };
  dispose(): void;
}
