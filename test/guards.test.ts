// Training guards (issue: trust): a non-finite loss never reaches the weights, a run that keeps
// producing them stops with a count, and no checkpoint or sample is made of non-finite values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Generator, keep, manualSeed, noGrad, tensor, tidy, type Tensor } from '../src/tensor/index.js';
import { Adam } from '../src/nn/index.js';
import { Diffusion, makeSchedule } from '../src/diffusion/index.js';
import { createModel } from '../src/models/index.js';
import { BatchLoader } from '../src/data/loader.js';
import { FASHION_MNIST_FILES } from '../src/data/fashion-mnist.js';
import { assertFinite } from '../src/samplers/index.js';
import { RunFolder } from '../src/io/run.js';
import { presetDefaults } from '../src/train/config.js';
import { train, trainStep, stepSettings, type TrainingSession } from '../src/train/trainer.js';
import { EMA } from '../src/train/ema.js';
import { checkpointFiles } from '../src/train/checkpoint.js';
import { loadTensors } from '../src/io/tensors.js';

const work = mkdtempSync(path.join(tmpdir(), 'ddpm-guards-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const N = 16;
const BATCH = 4;
const NAN_IMAGES = [3, 11];

/** (N, 1, 16, 16) images in [-1, 1], those listed in `nan` all NaN. */
function images(nan: readonly number[]): Tensor {
  const px = new Float32Array(N * 256);
  for (let i = 0; i < px.length; i++) px[i] = Math.sin(i * 0.37);
  for (const k of nan) px.fill(NaN, k * 256, (k + 1) * 256);
  return keep(tensor(px, [N, 1, 16, 16]));
}

function session(x: Tensor): TrainingSession {
  const config = presetDefaults('dli02');
  manualSeed(0);
  const model = createModel(config.model);
  return {
    model,
    optimizer: new Adam(model.namedParameters(), { lr: 1e-3 }),
    loader: new BatchLoader(x, null, { batchSize: BATCH, seed: 1, flip: true }),
    noiseGen: new Generator(2),
    step: 0,
    ema: new EMA(model, { decay: 0.9 }),
  };
}

function emaSnapshot(s: TrainingSession): Map<string, number[]> {
  return new Map([...s.ema!.stateDict()].map(([k, t]) => [k, t.toArray()]));
}

function snapshot(s: TrainingSession): Map<string, number[]> {
  return new Map([...s.model.stateDict()].map(([k, t]) => [k, t.toArray()]));
}

function nonFinite(s: TrainingSession): string[] {
  return [...s.model.stateDict()]
    .filter(([, t]) => t.dtype.startsWith('float') && !tidy(() => t.isfinite().all().item()))
    .map(([k]) => k);
}

test('a batch holding a NaN image is skipped naming the non-finite loss; weights and BatchNorm statistics stay as they were; training continues', () => {
  const diffusion = new Diffusion(makeSchedule(presetDefaults('dli02').schedule));
  const settings = stepSettings(presetDefaults('dli02'), 1000);
  const x = images(NAN_IMAGES);
  const s = session(x);
  // A twin loader with the same seed yields the same batches (permutation and flips): which hold NaN.
  const twin = new BatchLoader(x, null, { batchSize: BATCH, seed: 1, flip: true });
  const outcomes: { bad: boolean; r: ReturnType<typeof trainStep> }[] = [];
  for (let epoch = 0; epoch < 2; epoch++) {
    for (;;) {
      const bad = tidy(() => {
        const b = twin.next();
        return b === null ? null : !b.x.isfinite().all().item();
      });
      const before = bad ? snapshot(s) : null;
      const emaBefore = bad ? emaSnapshot(s) : null;
      const emaUpdates = s.ema!.updates;
      const stepsBefore = s.optimizer.stepCount;
      const r = trainStep(s, diffusion, settings);
      if (bad === null) { assert.equal(r, 'end-of-epoch'); break; }
      outcomes.push({ bad, r });
      if (bad) {
        assert.equal(r, 'loss is NaN', 'the reason names the non-finite loss');
        assert.deepEqual(snapshot(s), before, 'a skipped step changed the model (parameters or buffers)');
        assert.equal(s.optimizer.stepCount, stepsBefore, 'a skipped step reached the optimizer');
        assert.deepEqual(emaSnapshot(s), emaBefore, 'a skipped step changed the EMA weights');
        assert.equal(s.ema!.updates, emaUpdates, 'a skipped step counted as an EMA update');
        assert.ok(s.model.parameters().every((p) => p.grad === null), 'a skipped step left gradients behind');
      } else {
        assert.ok(typeof r === 'object' && Number.isFinite(r.loss), `a clean batch gave ${JSON.stringify(r)}`);
        assert.equal(s.ema!.updates, emaUpdates + 1, 'a good step updates the EMA');
      }
    }
  }
  const bad = outcomes.filter((o) => o.bad).length;
  assert.ok(bad >= 2 && bad <= 4, `${bad} of ${outcomes.length} batches held a NaN image`);
  assert.equal(s.optimizer.stepCount, outcomes.length - bad, 'every clean batch was a step');
  // Steps after a skipped one still learn.
  const after = outcomes.findIndex((o, i) => i > 0 && outcomes[i - 1]!.bad && !o.bad);
  assert.ok(after > 0, 'no clean step followed a skipped one');
  assert.deepEqual(nonFinite(s), [], 'weights or running statistics went non-finite');
  // So the session still checkpoints.
  assert.ok(checkpointFiles(s, 1)['model.safetensors'] instanceof Uint8Array);
  assert.ok(checkpointFiles(s, 1)['ema.safetensors'] instanceof Uint8Array);
  s.ema!.dispose();
  s.model.dispose();
  x.dispose();
});

test('checkpointFiles refuses a model with a NaN parameter or a NaN running statistic, naming the tensor', () => {
  const x = images([]);
  const s = session(x);
  s.step = 7;
  const [pname, p] = s.model.namedParameters()[2]!;
  const [bname, b] = s.model.namedBuffers().find(([k]) => k.endsWith('running_var'))!;
  const escape = (k: string): string => k.replace(/\./g, '\\.');
  noGrad(() => p.fill_(NaN));
  assert.throws(() => checkpointFiles(s, 0.5),
    new RegExp(`^Error: refusing to write checkpoint step-7: ${escape(pname)} has non-finite values \\(training diverged; try a lower --lr\\)$`));
  noGrad(() => { p.fill_(0.25); b.fill_(Infinity); });
  assert.throws(() => checkpointFiles(s, 0.5), new RegExp(`step-7: ${escape(bname)} has non-finite values`));
  noGrad(() => b.fill_(1));
  assert.ok(checkpointFiles(s, 0.5)['state.json']);
  s.model.dispose();
  x.dispose();
});

// ------------------------------------------------------------------ the real train() loop
// Tiny Fashion-MNIST lookalikes: 64 train and 16 test images of 16x16 (so no resize), gzip and raw.
function idx(type: number, dims: number[], payload: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = type;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, payload]);
}
const dataDir = path.join(work, 'data');
{
  mkdirSync(dataDir);
  for (const [split, n, gz] of [['train', 64, true], ['test', 16, false]] as const) {
    const px = Uint8Array.from({ length: n * 256 }, (_, i) => (i * 31 + (i >> 8) * 7) % 256);
    const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
    const files = FASHION_MNIST_FILES[split];
    const write = (name: string, b: Buffer): void => writeFileSync(path.join(dataDir, gz ? `${name}.gz` : name), gz ? gzipSync(b) : b);
    write(files.images, idx(0x08, [n, 16, 16], px));
    write(files.labels, idx(0x08, [n], labels));
  }
}

/** The dli02 preset on the tiny data; lr Infinity makes the first Adam step turn the weights non-finite. */
function divergingConfig(): ReturnType<typeof presetDefaults> {
  const c = presetDefaults('dli02');
  return { ...c, train: { ...c.train, epochs: 1, batchSize: 8, limit: 64, lr: Infinity, logEvery: 1 }, samples: { ...c.samples, count: 4 } };
}

function checkpointDirs(run: RunFolder): string[] {
  return existsSync(run.checkpointsDir) ? readdirSync(run.checkpointsDir) : [];
}

test('train() stops once maxBadSteps steps in a row are skipped, saying how many, and writes no checkpoint', async () => {
  const run = new RunFolder(path.join(work, 'run-stop'));
  run.create();
  const skips: { step: number; reason: string; inARow: number }[] = [];
  await assert.rejects(
    train(divergingConfig(), run, { threads: 1, data: { dir: dataDir }, maxBadSteps: 3, sampleGrids: false, hooks: { onSkip: (i) => skips.push(i) } }),
    /^Error: stopping at step 4: 3 steps in a row were skipped \(loss is NaN\)\. The last good checkpoint is kept; check the data for NaN or infinite values, or lower --lr$/,
  );
  assert.deepEqual(skips.map((k) => [k.step, k.inARow, k.reason]), [[2, 1, 'loss is NaN'], [3, 2, 'loss is NaN'], [4, 3, 'loss is NaN']]);
  assert.deepEqual(checkpointDirs(run), []);
});

test('train() with non-finite weights at the end of an epoch refuses the checkpoint instead of writing it', async () => {
  const run = new RunFolder(path.join(work, 'run-epoch'));
  run.create();
  let skipped = 0;
  await assert.rejects(
    train(divergingConfig(), run, { threads: 1, data: { dir: dataDir }, maxBadSteps: 100, sampleGrids: false, hooks: { onSkip: () => { skipped++; } } }),
    /^Error: refusing to write checkpoint step-8: \S+ has non-finite values \(training diverged; try a lower --lr\)$/,
  );
  assert.equal(skipped, 7, 'steps 2..8 of the 8-step epoch were skipped');
  assert.deepEqual(checkpointDirs(run), [], 'no checkpoint folder, complete or temporary');
});

test('train() on data holding NaN images skips those steps, ends, and writes finite checkpoints (weights and EMA)', async () => {
  const run = new RunFolder(path.join(work, 'run-nan-data'));
  run.create();
  const config = presetDefaults('dli02');
  config.train = { ...config.train, epochs: 2, batchSize: BATCH, emaDecay: 0.9 };
  const x = images(NAN_IMAGES);
  let skipped = 0;
  const summary = await train(config, run, {
    threads: 1, sampleGrids: true, dataset: { images: x, labels: null, classNames: null, dataDir: 'memory' },
    hooks: { onSkip: (k) => { skipped++; assert.equal(k.reason, 'loss is NaN'); } },
  });
  assert.ok(skipped >= 2, `${skipped} steps skipped`);
  assert.equal(summary.skipped, skipped);
  const ckpts = run.listCheckpoints();
  assert.equal(ckpts.length, 2, 'one checkpoint per epoch');
  for (const c of ckpts) {
    for (const f of ['model.safetensors', 'ema.safetensors']) {
      const { tensors } = loadTensors(path.join(c.dir, f));
      for (const [k, t] of tensors) {
        assert.ok(!t.dtype.startsWith('float') || tidy(() => t.isfinite().all().item()), `${f} ${k} is finite`);
        t.dispose();
      }
    }
  }
  assert.ok(existsSync(path.join(run.samplesDir, 'epoch-002.png')), 'the sample grid was drawn from finite weights');
  x.dispose();
});

test('assertFinite refuses a tensor with NaN or infinite values, counting them', () => tidy(() => {
  const x = tensor([1, NaN, 2, Infinity, -Infinity, 0], [2, 3]);
  assert.throws(() => assertFinite(x, 'sample grid'),
    /^Error: sample grid: 3 of 6 values are NaN or infinite; the model or its checkpoint has diverged \(try a lower --lr, or an earlier checkpoint\)$/);
  assert.doesNotThrow(() => assertFinite(tensor([1, -2, 3e38], [3]), 'ok'));
}));
