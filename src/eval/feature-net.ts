// The shipped Fashion-MNIST feature network: where its weights live, loading them, and running it
// over a batch of images to get the 128-d features (FID, KID, precision/recall) and class
// probabilities (the Inception-Score analogue, the class histogram).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Tensor, inferenceMode, tidy, keep, cat, softmax } from '../tensor/index.js';
import { parseSafetensors } from '../io/safetensors.js';
import { fromRaw } from '../io/tensors.js';
import { FmnistClassifier, FMNIST_CLASSIFIER_DEFAULTS, type FmnistClassifierConfig } from '../models/fmnist-classifier.js';

/** assets/fmnist-features.safetensors at the package root (written by tools/train_feature_net.ts). */
export const DEFAULT_FEATURE_NET_PATH = fileURLToPath(new URL('../../../assets/fmnist-features.safetensors', import.meta.url));

export interface FeatureNet {
  net: FmnistClassifier;
  /** The weights file. */
  path: string;
  /** sha256 of the weights file, hex: part of every cache key, so new weights never reuse old statistics. */
  sha256: string;
  /** The file's metadata (training seed, epochs, test accuracy, ...). */
  metadata: Record<string, string>;
}

/** Loads the feature network in eval mode; the file's `config` metadata (JSON) gives its shape. */
export function loadFeatureNet(file: string = DEFAULT_FEATURE_NET_PATH): FeatureNet {
  if (!existsSync(file)) {
    throw new Error(`feature network ${file} does not exist; expected the shipped assets/fmnist-features.safetensors (retrain it with \`node dist/tools/train_feature_net.js\`) or a file given with --features`);
  }
  const bytes = readFileSync(file);
  const parsed = parseSafetensors(bytes, file);
  let config: FmnistClassifierConfig = FMNIST_CLASSIFIER_DEFAULTS;
  if (parsed.metadata.config !== undefined) {
    try {
      config = { ...FMNIST_CLASSIFIER_DEFAULTS, ...(JSON.parse(parsed.metadata.config) as Partial<FmnistClassifierConfig>) };
    } catch (e) {
      throw new Error(`feature network ${file}: metadata "config" is not valid JSON (${(e as Error).message})`, { cause: e });
    }
  }
  const net = new FmnistClassifier(config);
  const tensors = new Map<string, Tensor>();
  try {
    for (const [k, r] of parsed.tensors) tensors.set(k, fromRaw(r, k, file));
    net.loadStateDict(tensors, file);
  } catch (e) {
    net.dispose();
    throw e;
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  net.eval();
  return { net, path: file, sha256: createHash('sha256').update(bytes).digest('hex'), metadata: parsed.metadata };
}

/**
 * Images per forward pass. Measured here: 10,000 images take about 5 s in batches of 100 and 15 to 25 s
 * in batches of 500, whose 50 MB activations are fresh mmap'd pages each time (all in sys time).
 */
export const EMBED_BATCH = 100;

export interface Embedding {
  /** (N, featureDim) float64. */
  features: Tensor;
  /** (N, numClasses) float64 softmax of the logits. */
  probs: Tensor;
}

/**
 * Features and class probabilities of (N, 1, S, S) images in [-1, 1], batch by batch in eval mode
 * with BatchNorm folded (the same path for real images and samples). Returned in float64: every statistic downstream is computed in float64.
 */
export function embed(net: FmnistClassifier, images: Tensor, batchSize = EMBED_BATCH): Embedding {
  if (net.training) throw new Error('embed: the feature network must be in eval mode (BatchNorm running statistics, no dropout); call net.eval()');
  const n = images.shape[0]!;
  const feats: Tensor[] = [];
  const probs: Tensor[] = [];
  const folded = net.foldedForInference();
  try {
    inferenceMode(() => {
      for (let start = 0; start < n; start += batchSize) {
        const b = Math.min(batchSize, n - start);
        const out = tidy(() => {
          const { features, logits } = folded.forwardBoth(images.narrow(0, start, b));
          return { f: features.double(), p: softmax(logits.double(), 1) }; // (b, D), (b, K)
        });
        feats.push(keep(out.f));
        probs.push(keep(out.p));
      }
    });
  } finally {
    folded.dispose();
  }
  const join = (parts: Tensor[]): Tensor => {
    if (parts.length === 1) return parts[0]!;
    const all = cat(parts, 0);
    for (const p of parts) p.dispose();
    return all;
  };
  return { features: join(feats), probs: join(probs) };
}
