// ONNX export of every preset, run on onnxruntime-node against libtorch's forward pass of the same
// weights; the file's metadata, the graph's form, and the exporter's refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed, noGrad, randn, rand, randint, tensor, tidy, type Tensor } from '../src/tensor/index.js';
import { BatchNorm2d, GroupNorm } from '../src/nn/index.js';
import { createModel, inferencePredictor, PRESETS, type DiffusionUNet, type ModelConfig, type PresetName } from '../src/models/index.js';
import { modelToOnnx } from '../src/models/onnx-export.js';
import { OnnxRuntimeModel } from '../src/models/onnx-runtime.js';
import { encodeOnnx } from '../src/io/onnx.js';
import { maxAbsDiff } from './helpers.js';

const SIZES: Record<PresetName, { imageSize: number; T: number }> = { dli02: { imageSize: 16, T: 150 }, dli03: { imageSize: 16, T: 150 }, ddpm: { imageSize: 28, T: 1000 } };

/**
 * A preset at its real size, with random weights: the initialisation's for convolutions and linear
 * layers, and random normalisation parameters and running statistics, so that folding BatchNorm and
 * lowering GroupNorm have something to get wrong.
 */
function randomModel(preset: PresetName, numClasses: number, seed: number): { model: DiffusionUNet; config: ModelConfig } {
  manualSeed(seed);
  const config: ModelConfig = { preset, imageChannels: 1, ...SIZES[preset], numClasses };
  const model = createModel(config);
  noGrad(() => tidy(() => {
    const visit = (m: { children(): [string, unknown][] }): void => {
      for (const [, c] of m.children()) {
        if (c instanceof BatchNorm2d || c instanceof GroupNorm) {
          c.weight.copy_(rand(c.weight.shape).mul(1).add(0.5));
          c.bias.copy_(randn(c.bias.shape).mul(0.2));
          if (c instanceof BatchNorm2d) {
            c.runningMean.copy_(randn(c.runningMean.shape).mul(0.2));
            c.runningVar.copy_(rand(c.runningVar.shape).add(0.5));
          }
        }
        visit(c as { children(): [string, unknown][] });
      }
    };
    visit(model);
  }));
  model.eval();
  return { model, config };
}

/** libtorch's eval-mode prediction (BatchNorm folded, as sampling runs it) for labels (-1: no class). */
function libtorchPrediction(model: DiffusionUNet, x: Tensor, t: Tensor, labels: number[] | null): Float32Array {
  const predictor = inferencePredictor(model);
  try {
    return tidy(() => {
      const c = labels ? tensor(labels.flatMap((l) => Array.from({ length: model.numClasses }, (_, k) => (k === l ? 1 : 0))), [labels.length, model.numClasses]) : null;
      return predictor.forward(x, t, c).dataSync() as Float32Array;
    });
  } finally {
    predictor.dispose();
  }
}

for (const preset of PRESETS) {
  for (const numClasses of [0, 10]) {
    test(`${preset}${numClasses ? ', 10 classes' : ''}: onnxruntime-node's prediction equals libtorch's within 1e-4 at batch 1 and 7`, async () => {
      const { model, config } = randomModel(preset, numClasses, 11 + numClasses);
      const bytes = encodeOnnx(modelToOnnx(model, config));
      const ort = await OnnxRuntimeModel.open(bytes, { threads: 1 });
      try {
        for (const b of [1, 7]) {
          manualSeed(100 + b);
          const x = randn([b, 1, config.imageSize, config.imageSize]);
          const t = randint(0, config.T, [b], { dtype: 'int64' });
          // Every class and the null label (-1) among the rows.
          const labels = numClasses ? Array.from({ length: b }, (_, i) => (i === 0 && b > 1 ? -1 : (3 * i + b) % numClasses)) : null;
          const expected = libtorchPrediction(model, x, t, labels);
          const actual = await ort.run(x.dataSync() as Float32Array, t.toArray(), labels ?? undefined);
          const diff = maxAbsDiff(actual, expected);
          const scale = maxAbsDiff(expected, new Float32Array(expected.length));
          if (process.env.SHOW) console.log(preset, numClasses, b, diff, scale);
          assert.ok(diff <= 1e-4, `${preset} batch ${b}: max |ORT - libtorch| = ${diff} (outputs up to ${scale})`);
          assert.ok(scale > 0.01, `${preset} batch ${b}: the outputs are too small (${scale}) to tell anything apart`);
          x.dispose();
          t.dispose();
        }
      } finally {
        await ort.release();
        model.dispose();
      }
    });
  }
}
