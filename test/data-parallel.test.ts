// Data-parallel inference (src/models/data-parallel.ts): a batch split across model replicas in
// worker threads gives the single model's outputs, and so the same samples from the same seed; bad
// options and failing replicas give clear errors, and a failure leaves the predictor usable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, getNumThreads, randn, randint, tensor, tidy, noGrad, manualSeed, type Tensor } from '../src/tensor/index.js';
import { createModel, inferencePredictor, type DiffusionUNet, type ModelConfig } from '../src/models/index.js';
import { dataParallelPredictor, splitSizes } from '../src/models/data-parallel.js';
import { Diffusion, makeSchedule } from '../src/diffusion/index.js';
import { sample, type SamplerName } from '../src/samplers/index.js';
import { oneHot } from '../src/samplers/denoiser.js';

const CONFIG: ModelConfig = { preset: 'dli02', imageChannels: 1, imageSize: 16, T: 20, numClasses: 0 };

/** A dli02 model whose BatchNorm statistics are not the identity, so that folding them matters. */
function trainedLike(config: ModelConfig): DiffusionUNet {
  manualSeed(7);
  const model = createModel(config).train();
  const c = config.numClasses ? tidy(() => oneHot(Array.from({ length: 16 }, (_, i) => i % config.numClasses!), config.numClasses!)) : null;
  noGrad(() => tidy(() => { for (let i = 0; i < 3; i++) model.forward(randn([16, 1, 16, 16]).mul(0.7).add(0.2), randint(0, config.T, [16]), c); }));
  c?.dispose();
  return model.eval();
}

function maxAbsDiff(a: Tensor, b: Tensor): number { return tidy(() => a.sub(b).abs().max().item()); }

test('splitSizes: as even as possible, largest first, no empty slices', () => {
  assert.deepEqual(splitSizes(500, 2), [250, 250]);
  assert.deepEqual(splitSizes(7, 3), [3, 2, 2]);
  assert.deepEqual(splitSizes(5, 2), [3, 2]);
  assert.deepEqual(splitSizes(1, 3), [1]);
  assert.deepEqual(splitSizes(2, 4), [1, 1]);
});

test('replicas give the single model its outputs: even and uneven splits, fewer rows than replicas', () => {
  const model = trainedLike(CONFIG);
  const single = inferencePredictor(model);
  const before = getNumThreads();
  for (const replicas of [2, 3]) {
    const dp = dataParallelPredictor(model, CONFIG, { replicas });
    try {
      for (const b of [8, 7, 1, 2]) {
        tidy(() => noGrad(() => {
          const x = randn([b, 1, 16, 16]);
          const t = randint(0, CONFIG.T, [b]);
          const want = single.forward(x, t);
          const got = dp.forward(x, t);
          assert.deepEqual(got.shape, want.shape, `replicas ${replicas}, batch ${b}: shape`);
          const d = maxAbsDiff(got, want);
          assert.ok(d < 1e-5, `replicas ${replicas}, batch ${b}: outputs differ by ${d}`);
        }));
      }
    } finally {
      dp.dispose();
    }
  }
  assert.equal(getNumThreads(), before, 'dispose restores the calling thread\'s libtorch threads');
  single.dispose();
  model.dispose();
});

test('a class-conditional model gets each row\'s class input on its replica', () => {
  const config = { ...CONFIG, numClasses: 10 };
  const model = trainedLike(config);
  const single = inferencePredictor(model);
  const dp = dataParallelPredictor(model, config, { replicas: 2 });
  try {
    tidy(() => noGrad(() => {
      const x = randn([6, 1, 16, 16]);
      const t = randint(0, config.T, [6]);
      const c = oneHot([0, 3, 9, 9, 1, 5], 10); // (6, 10)
      const d = maxAbsDiff(dp.forward(x, t, c), single.forward(x, t, c));
      assert.ok(d < 1e-5, `outputs differ by ${d}`);
      // The classes matter, so a wrong split of c would have shown.
      assert.ok(maxAbsDiff(single.forward(x, t, c), single.forward(x, t, null)) > 1e-4);
    }));
  } finally {
    dp.dispose();
    single.dispose();
    model.dispose();
  }
});

test('sampling with replicas: the same seed gives the same images (DDPM ancestral, DDIM, guided DPM++)', () => {
  const config = { ...CONFIG, numClasses: 10 };
  const model = trainedLike(config);
  const diffusion = new Diffusion(makeSchedule({ kind: 'linear', T: config.T, betaStart: 1e-3, betaEnd: 0.2 }));
  const runs: { sampler: SamplerName; guidance?: number; eta?: number }[] = [{ sampler: 'ddpm' }, { sampler: 'ddim', eta: 0 }, { sampler: 'ddim', eta: 1 }, { sampler: 'dpmpp2m', guidance: 1.5 }];
  for (const r of runs) {
    const draw = (replicas: number): Tensor => {
      const p = dataParallelPredictor(model, config, { replicas });
      try {
        return sample({
          model: (x, t, c) => p.forward(x, t, c), diffusion, objective: 'eps', shape: [9, 1, 16, 16], sampler: r.sampler, steps: 10,
          generator: new Generator(11), batchSize: 5, numClasses: 10, labels: [0, 1, 2, 3, 4, 5, 6, 7, 8],
          ...(r.guidance !== undefined ? { guidance: r.guidance } : {}), ...(r.eta !== undefined ? { eta: r.eta } : {}),
        });
      } finally {
        p.dispose();
      }
    };
    const a = draw(1);
    const b = draw(2);
    const d = maxAbsDiff(a, b);
    assert.ok(d < 1e-4, `${r.sampler}${r.guidance ? ' guided' : ''}: images differ by ${d}`);
    assert.ok(tidy(() => a.max().item() - a.min().item()) > 0.1, `${r.sampler}: not constant images`);
    a.dispose();
    b.dispose();
  }
  model.dispose();
});

test('bad options are refused with what was expected', () => {
  const model = trainedLike(CONFIG);
  assert.throws(() => dataParallelPredictor(model, CONFIG, { replicas: 0 }), /replicas must be an integer >= 1, got 0/);
  assert.throws(() => dataParallelPredictor(model, CONFIG, { replicas: 2.5 }), /replicas must be an integer >= 1, got 2.5/);
  assert.throws(() => dataParallelPredictor(model, CONFIG, { replicas: 2, threadsPerReplica: 0 }), /threadsPerReplica must be an integer >= 1, got 0/);
  model.train();
  assert.throws(() => dataParallelPredictor(model, CONFIG, { replicas: 2 }), /put the model in eval mode first/);
  model.dispose();
});

test('a replica that cannot be built names itself and the reason; nothing is left running', () => {
  const model = trainedLike(CONFIG);
  const before = getNumThreads();
  // The weights are dli02's at 16x16; this config asks the worker for another model.
  assert.throws(() => dataParallelPredictor(model, { ...CONFIG, preset: 'dli03' }, { replicas: 2 }), /data parallel: replica 1 of 2 failed: .*(missing|unexpected|shape)/i);
  assert.equal(getNumThreads(), before);
  model.dispose();
});

test('a failing forward reports the replica\'s error, and the next call still gives the right outputs', () => {
  const model = trainedLike(CONFIG);
  const single = inferencePredictor(model);
  const dp = dataParallelPredictor(model, CONFIG, { replicas: 2 });
  try {
    // 3 channels for a 1-channel model: every replica fails; the error says why.
    assert.throws(() => tidy(() => dp.forward(randn([4, 3, 16, 16]), randint(0, CONFIG.T, [4]))), /channels|shape|size/i);
    tidy(() => noGrad(() => {
      const x = randn([4, 1, 16, 16]);
      const t = tensor(BigInt64Array.from([0n, 5n, 10n, 19n]), [4]);
      const d = maxAbsDiff(dp.forward(x, t), single.forward(x, t));
      assert.ok(d < 1e-5, `after a failure, outputs differ by ${d}`);
    }));
  } finally {
    dp.dispose();
  }
  assert.throws(() => dp.forward(randn([2, 1, 16, 16]), randint(0, CONFIG.T, [2])), /was disposed/);
  single.dispose();
  model.dispose();
});
