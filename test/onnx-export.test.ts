// ONNX export of every preset, run on onnxruntime-node against libtorch's forward pass of the same
// weights; the file's metadata, the graph's form, and the exporter's refusals.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { manualSeed, noGrad, randn, rand, randint, tensor, tidy, type Tensor } from '../src/tensor/index.js';
import {
  BatchNorm2d, Conv2d, ConvTranspose2d, Dropout, Flatten, GELU, GroupNorm, Identity, Layer, LayerNorm, Linear, MaxPool2d, OnnxGraph, ReLU, Sequential, SiLU, Unflatten,
} from '../src/nn/index.js';
import { createModel, inferencePredictor, PRESETS, type DiffusionUNet, type ModelConfig, type PresetName } from '../src/models/index.js';
import { modelToOnnx } from '../src/models/onnx-export.js';
import { OnnxRuntimeModel } from '../src/models/onnx-runtime.js';
import { encodeOnnx, decodeOnnx } from '../src/io/onnx.js';
import { RunFolder } from '../src/io/run.js';
import { serializeTensors } from '../src/io/tensors.js';
import { presetDefaults, type RunConfig } from '../src/train/config.js';
import { loadRun } from '../src/train/checkpoint.js';
import { onnxModelInfo } from '../src/samplers/onnx-model.js';
import { maxAbsDiff, ROOT } from './helpers.js';

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

// ------------------------------------------------------------------ `ddpm export` on a run folder

const work = mkdtempSync(path.join(tmpdir(), 'ddpm-onnx-'));
after(() => rmSync(work, { recursive: true, force: true }));

function ddpm(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'ddpm.js'), ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/**
 * A run folder as `ddpm train` leaves it, without training: the ddpm preset with 10 classes and an
 * EMA, its checkpoint step-40 holding random weights in model.safetensors and other random weights
 * in ema.safetensors (`poison` sets one EMA value to NaN).
 */
function craftRun(dir: string, o: { poison?: string } = {}): { config: RunConfig; configText: string } {
  const base = presetDefaults('ddpm');
  const config: RunConfig = { ...base, model: { ...base.model, numClasses: 10 } };
  const configText = `${JSON.stringify(config, null, 2)}\n`;
  const run = new RunFolder(dir);
  run.create();
  writeFileSync(run.configPath, configText);
  const trained = randomModel('ddpm', 10, 1).model;
  const ema = randomModel('ddpm', 10, 2).model;
  if (o.poison) noGrad(() => ema.stateDict().get(o.poison!)!.view([-1]).narrow(0, 3, 1).fill_(NaN));
  const state = { step: 40, epoch: 1, loader: { epochState: [] }, noiseGenerator: '', optimizer: { step: 40, lr: 1e-3 }, loss: 0.5 };
  run.writeCheckpoint(40, {
    'model.safetensors': serializeTensors(trained.stateDict()), 'ema.safetensors': serializeTensors(ema.stateDict()),
    'optimizer.safetensors': serializeTensors(new Map()), 'state.json': JSON.stringify(state),
  });
  trained.dispose();
  ema.dispose();
  return { config, configText };
}

test('ddpm export: the EMA weights of the latest checkpoint, the run described in metadata_props, and --no-ema', async () => {
  const dir = path.join(work, 'cond');
  const { config, configText } = craftRun(dir);
  const out = path.join(work, 'out', 'cond.onnx');
  const r = ddpm('export', '--run', dir, '--out', out);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /wrote .*cond\.onnx \([\d,]+ bytes\): ddpm, EMA weights of .*step-40.*ema\.safetensors/);
  const file = decodeOnnx(readFileSync(out), out);
  assert.deepEqual(file.metadata, {
    'ddpm_ts.format': '1', 'ddpm_ts.run_config': configText, preset: 'ddpm', image_size: '28', channels: '1', num_classes: '10', learn_variance: 'false',
    objective: 'v', timesteps: '1000', schedule: JSON.stringify({ kind: 'cosine', T: 1000, s: 0.008 }), ema: 'true', checkpoint_step: '40',
  });
  assert.deepEqual(onnxModelInfo(file.metadata, out).config, config);
  assert.equal(file.opset, 17);
  assert.deepEqual(file.graph.inputs.map((v) => [v.name, v.type, v.shape]), [
    ['x_t', 'float32', ['batch', 1, 28, 28]], ['t', 'int64', ['batch']], ['class_labels', 'int64', ['batch']],
  ]);
  assert.deepEqual(file.graph.outputs.map((v) => [v.name, v.type, v.shape]), [['prediction', 'float32', ['batch', 1, 28, 28]]]);
  // What PyTorch's exporter writes for GroupNorm, and no GroupNormalization node.
  const ops = new Set(file.graph.nodes.map((n) => n.opType));
  assert.ok(ops.has('InstanceNormalization') && !ops.has('GroupNormalization'), [...ops].join(', '));
  // The weights are the EMA's: ORT's prediction is the EMA model's, not the trained model's.
  const check = async (ema: boolean, onnx: string): Promise<void> => {
    const loaded = loadRun(dir, undefined, { ema });
    manualSeed(5);
    const x = randn([3, 1, 28, 28]);
    const t = tensor([0, 500, 999], [3], { dtype: 'int64' });
    const expected = libtorchPrediction(loaded.model, x, t, [2, -1, 9]);
    const ort = await OnnxRuntimeModel.open(onnx, { threads: 1 });
    const diff = maxAbsDiff(await ort.run(x.dataSync() as Float32Array, [0, 500, 999], [2, -1, 9]), expected);
    await ort.release();
    loaded.model.dispose();
    assert.ok(diff <= 1e-4, `${ema ? 'EMA' : 'trained'} weights: max |ORT - libtorch| = ${diff}`);
  };
  await check(true, out);
  const raw = path.join(work, 'out', 'raw.onnx');
  const r2 = ddpm('export', '--run', dir, '--out', raw, '--no-ema', '--checkpoint', path.join(dir, 'checkpoints', 'step-40'));
  assert.equal(r2.code, 0, r2.err);
  assert.equal(decodeOnnx(readFileSync(raw)).metadata.ema, 'false');
  await check(false, raw);
});

test('ddpm export refuses an existing --out unless --force, a folder as --out, and a checkpoint with a NaN, writing nothing', () => {
  const dir = path.join(work, 'refuse');
  craftRun(dir, { poison: 'mid_attn.to_qkv.weight' });
  const out = path.join(work, 'refuse.onnx');
  writeFileSync(out, 'precious');
  let r = ddpm('export', '--run', dir, '--out', out);
  assert.equal(r.code, 1);
  assert.match(r.err, /export: .*refuse\.onnx already exists; choose another --out, or pass --force to replace it/);
  r = ddpm('export', '--run', dir, '--out', work);
  assert.match(r.err, /export: --out .* is a folder; give the \.onnx file to write/);
  // --force gets past the existing file, then the EMA's NaN is refused: the old file stays as it was.
  r = ddpm('export', '--run', dir, '--out', out, '--force');
  assert.equal(r.code, 1);
  assert.match(r.err, /ONNX export: mid_attn\.to_qkv\.weight in .*ema\.safetensors has non-finite values \(NaN or infinity\); export an earlier checkpoint \(--checkpoint\), or the raw weights \(--no-ema\)/);
  assert.equal(readFileSync(out, 'utf8'), 'precious');
  // The raw weights are finite: --no-ema --force replaces the file whole, and leaves no temp file.
  r = ddpm('export', '--run', dir, '--out', out, '--force', '--no-ema');
  assert.equal(r.code, 0, r.err);
  assert.equal(decodeOnnx(readFileSync(out)).metadata.preset, 'ddpm');
  assert.deepEqual(readdirSync(work).filter((f) => f.includes('.tmp-')), []);
});

// ------------------------------------------------------------------ the graph builder's refusals and forms

class Doubler extends Layer { forward(x: Tensor): Tensor { return x.mul(2); } }
class LeakyConv extends Conv2d { override forward(x: Tensor): Tensor { return super.forward(x).mul(0.5); } }

test('a layer with no ONNX lowering is refused, naming its module path and class; so is one that inherits a lowering but changes forward', () => {
  const net = new Sequential(new Conv2d(1, 4, 3, { padding: 1 }), new ReLU(), new Sequential(new ReLU(), new Doubler()));
  const g = new OnnxGraph(net);
  const x = g.input('x', 'float32', [null, 1, 8, 8]);
  assert.throws(() => g.lower(net, x), /ONNX export: module 2\.1 \(Doubler\) has no ONNX lowering; give Doubler an onnx\(g, \.\.\.inputs\) method beside its forward/);
  const leaky = new Sequential(new LeakyConv(1, 4, 3));
  const g2 = new OnnxGraph(leaky);
  assert.throws(() => g2.lower(leaky, g2.input('x', 'float32', [null, 1, 8, 8])),
    /ONNX export: module 0 \(LeakyConv\) overrides forward in LeakyConv but inherits the ONNX lowering of Conv2d; give LeakyConv its own onnx method/);
  net.dispose();
  leaky.dispose();
});

test('a model in training mode is refused', () => {
  const { model, config } = randomModel('dli02', 0, 3);
  model.train();
  assert.throws(() => modelToOnnx(model, config), /ONNX export: the model is in training mode; call model\.eval\(\) first/);
  model.dispose();
});

test('transposed convolutions as ConvTranspose or as Conv + DepthToSpace: the same predictions, and the form asked for', async () => {
  for (const preset of ['dli02', 'dli03'] as const) {
    const { model, config } = randomModel(preset, 0, 21);
    manualSeed(4);
    const x = randn([2, 1, 16, 16]);
    const expected = libtorchPrediction(model, x, tensor([3, 140], [2], { dtype: 'int64' }), null);
    for (const form of ['subPixel', 'convTranspose'] as const) {
      const data = modelToOnnx(model, config, { convTranspose: form });
      const ops = data.graph.nodes.map((n) => n.opType);
      assert.equal(ops.filter((o) => o === 'ConvTranspose').length, form === 'convTranspose' ? 2 : 0, `${preset} ${form}`);
      assert.equal(ops.filter((o) => o === 'DepthToSpace').length, form === 'subPixel' ? 2 : 0, `${preset} ${form}`);
      const ort = await OnnxRuntimeModel.open(encodeOnnx(data), { threads: 1 });
      const diff = maxAbsDiff(await ort.run(x.dataSync() as Float32Array, [3, 140]), expected);
      await ort.release();
      assert.ok(diff <= 1e-4, `${preset} as ${form}: max |ORT - libtorch| = ${diff}`);
    }
    x.dispose();
    model.dispose();
  }
});

test('each layer of nn/layers.ts lowers to the values of its forward, including those no preset uses', async () => {
  const ortNode = await import('onnxruntime-node');
  manualSeed(8);
  const cases: [string, Layer, number[]][] = [
    ['Linear on (B, L, F)', new Linear(6, 5), [3, 4, 6]],
    ['LayerNorm', new LayerNorm([4, 6]), [3, 4, 6]],
    ['BatchNorm2d, unfolded', new BatchNorm2d(3), [2, 3, 5, 5]],
    ['Dropout (eval), Flatten(2, 3), Unflatten', new Sequential(new Dropout(0.3), new Flatten(2, 3), new Unflatten(2, [5, 5])), [2, 3, 5, 5]],
    ['MaxPool2d 3 stride 2, GELU, SiLU, Identity', new Sequential(new MaxPool2d(3, 2), new GELU(), new SiLU(), new Identity()), [2, 3, 9, 9]],
    ['Conv2d stride 2, dilation 2, groups 3, no bias', new Conv2d(3, 6, 3, { stride: 2, padding: 2, dilation: 2, groups: 3, bias: false }), [2, 3, 9, 9]],
    ['ConvTranspose2d, groups 3 (no sub-pixel form)', new ConvTranspose2d(3, 6, 3, { stride: 2, padding: 1, outputPadding: 1, groups: 3 }), [2, 3, 5, 5]],
    ['ConvTranspose2d kernel 4, stride 3, padding 2 (sub-pixel)', new ConvTranspose2d(3, 2, 4, { stride: 3, padding: 2 }), [2, 3, 5, 5]],
    // Padding beyond the kernel: the sub-pixel form crops the input first, and its output after.
    ['ConvTranspose2d kernel 3, stride 2, padding 3 (sub-pixel with crops)', new ConvTranspose2d(3, 2, 3, { stride: 2, padding: 3 }), [2, 3, 5, 5]],
  ];
  for (const [what, layer, shape] of cases) {
    layer.eval();
    if (layer instanceof BatchNorm2d) noGrad(() => { layer.runningMean.copy_(randn([3])); layer.runningVar.copy_(rand([3]).add(0.5)); });
    const x = randn(shape);
    const expected = noGrad(() => tidy(() => layer.forward(x).dataSync() as Float32Array));
    const g = new OnnxGraph(layer);
    g.output(g.lower(layer, g.input('x', 'float32', [null, ...shape.slice(1)])), 'y');
    const bytes = encodeOnnx({ irVersion: 8, opset: 17, producerName: 'test', producerVersion: '', graph: g.build(what), metadata: {} });
    const session = await ortNode.InferenceSession.create(bytes);
    const out = await session.run({ x: new ortNode.Tensor('float32', x.dataSync() as Float32Array, shape) });
    await session.release();
    assert.equal(out.y!.dims.join(), noGrad(() => tidy(() => layer.forward(x).shape.join())), `${what}: output shape`);
    const diff = maxAbsDiff(out.y!.data as Float32Array, expected);
    assert.ok(diff <= 1e-5, `${what}: max |ORT - libtorch| = ${diff}`);
    x.dispose();
    layer.dispose();
  }
});
