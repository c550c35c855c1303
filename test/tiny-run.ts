// A dli02 run with T = 10 trained for two steps (one epoch of 32 random images, batch 16): enough for
// tests to list, load and sample from in about a second.
import { rand, tensor } from '../src/tensor/index.js';
import { presetDefaults, type RunConfig } from '../src/train/config.js';
import { train, trainTask } from '../src/train/trainer.js';
import { CLASSIFYING, classifierRunConfig } from '../src/train/classifier.js';
import { RunFolder } from '../src/io/run.js';

export async function trainTinyRun(dir: string, numClasses = 0, o: { sampleGrids?: boolean } = {}): Promise<void> {
  const base = presetDefaults('dli02');
  const config: RunConfig = {
    ...base,
    model: { ...base.model, T: 10, numClasses },
    schedule: { kind: 'linear', T: 10, betaStart: 1e-3, betaEnd: 0.2 },
    train: { ...base.train, epochs: 1, batchSize: 16, limit: 32, logEvery: 1 },
    samples: { ...base.samples, count: 4 },
  };
  const images = rand([32, 1, 16, 16]).mul(2).sub(1); // (32, 1, 16, 16) in [-1, 1)
  const labels = numClasses > 0 ? tensor(BigInt64Array.from({ length: 32 }, (_, i) => BigInt(i % numClasses)), [32], { dtype: 'int64' }) : null;
  try {
    await train(config, new RunFolder(dir), {
      threads: 1, sampleGrids: o.sampleGrids ?? false, dataset: { images, labels, classNames: null, dataDir: 'memory' },
    });
  } finally {
    images.dispose();
    labels?.dispose();
  }
}

/** A noise-aware classifier for the tiny run in `runDir` (trainTinyRun), trained for two steps on random images. */
export async function trainTinyClassifier(dir: string, runDir: string, numClasses = 10): Promise<void> {
  const r = new RunFolder(runDir).readConfig<RunConfig>();
  const config = classifierRunConfig(r, runDir, numClasses, { epochs: 1, batchSize: 16, lr: 3e-4, seed: 0, limit: 32 });
  const images = rand([32, 1, 16, 16]).mul(2).sub(1); // (32, 1, 16, 16) in [-1, 1)
  const labels = tensor(BigInt64Array.from({ length: 32 }, (_, i) => BigInt(i % numClasses)), [32], { dtype: 'int64' });
  try {
    await trainTask(CLASSIFYING, config, new RunFolder(dir), { threads: 1, sampleGrids: false, dataset: { images, labels, classNames: null, dataDir: 'memory' } });
  } finally {
    images.dispose();
    labels.dispose();
  }
}
