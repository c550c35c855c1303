// Bad configurations and damaged run folders are refused, naming what was wrong and where, and a
// refused checkpoint changes nothing. (Module-level loadStateDict cases: errors.test.ts; schedule
// T = 0 and single bad betas: schedule.test.ts; image size 18: dli02.test.ts; `ddpm sample` on a
// folder without config.json: cli.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ArgumentError, Generator, manualSeed, zeros } from '../src/tensor/index.js';
import { Adam } from '../src/nn/index.js';
import { makeSchedule, scheduleFromBetas, type ScheduleConfig, type LinearScheduleConfig } from '../src/diffusion/index.js';
import { createModel, type ModelConfig } from '../src/models/index.js';
import { BatchLoader } from '../src/data/loader.js';
import { RunFolder } from '../src/io/run.js';
import { readSafetensorsFile, writeSafetensorsFile, type RawTensor } from '../src/io/safetensors.js';
import { presetDefaults } from '../src/train/config.js';
import { checkpointFiles, loadRun, restoreTraining } from '../src/train/checkpoint.js';
import type { TrainingSession } from '../src/train/trainer.js';

const work = mkdtempSync(path.join(tmpdir(), 'ddpm-refusals-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

function refuses(fn: () => unknown, cls: new (...a: never[]) => Error, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    assert.match((e as Error).message, re);
    return true;
  });
}

// ------------------------------------------------------------------ schedule and model settings
test('a schedule config with 0, fractional or NaN timesteps, or betas leaving (0, 1), is refused naming the value', () => {
  const linear = (o: Partial<LinearScheduleConfig>): ScheduleConfig => ({ kind: 'linear', T: 150, betaStart: 1e-4, betaEnd: 0.02, ...o });
  refuses(() => makeSchedule(linear({ T: 0 })), ArgumentError, /^schedule: the number of timesteps T must be an integer >= 1, got 0$/);
  refuses(() => makeSchedule(linear({ T: 2.5 })), ArgumentError, /T must be an integer >= 1, got 2\.5/);
  refuses(() => makeSchedule(linear({ T: NaN })), ArgumentError, /T must be an integer >= 1, got NaN/);
  refuses(() => scheduleFromBetas([]), ArgumentError, /T must be an integer >= 1, got 0/);
  // The linear ramp reaches 1 at the last step: the message names that step, not just "bad config".
  refuses(() => makeSchedule(linear({ T: 5, betaStart: 0.5, betaEnd: 1 })), ArgumentError, /^schedule: beta at t=4 is 1; every beta must lie in \(0, 1\)$/);
  refuses(() => makeSchedule(linear({ betaStart: -1e-4 })), ArgumentError, /beta at t=0 is -0\.0001; every beta must lie in \(0, 1\)/);
  refuses(() => makeSchedule(linear({ betaEnd: NaN })), ArgumentError, /beta at t=0 is NaN/);
  refuses(() => scheduleFromBetas([0.1, 0.2, Infinity]), ArgumentError, /beta at t=2 is Infinity/);
  refuses(() => makeSchedule({ kind: 'quadratic', T: 10 } as unknown as ScheduleConfig), ArgumentError, /^schedule: unknown kind "quadratic"; expected one of linear, scaled-linear, cosine, sigmoid, custom$/);
  refuses(() => makeSchedule(linear({ betaStart: 0.02, betaEnd: 1e-4 })), ArgumentError, /^schedule: linear betas must not decrease, got betaStart 0\.02 > betaEnd 0\.0001$/);
  refuses(() => makeSchedule({ kind: 'custom', betas: [0.1, 0.3, 0.2] }), ArgumentError, /custom betas must not decrease, but beta at t=2 \(0\.2\) is below beta at t=1 \(0\.3\)/);
  refuses(() => makeSchedule({ kind: 'custom', betas: [0.1, 1] }), ArgumentError, /beta at t=1 is 1; every beta must lie in \(0, 1\)/);
  refuses(() => makeSchedule({ kind: 'cosine', T: 10, s: -1 }), ArgumentError, /cosine offset s must be a finite number >= 0, got -1/);
  refuses(() => makeSchedule({ kind: 'sigmoid', T: 10, start: 3, end: -3, tau: 1 }), ArgumentError, /sigmoid start must be below end/);
  refuses(() => makeSchedule({ kind: 'cosine', T: 1, s: 0.008, zeroTerminalSnr: true }), ArgumentError, /zero-terminal-SNR rescaling needs T >= 2, got 1/);
});

test('a model config the U-Net cannot build (image size not a multiple of 4, T < 1, unknown preset) is refused', () => {
  const model = (o: Partial<ModelConfig>): ModelConfig => ({ ...presetDefaults('dli02').model, ...o });
  for (const size of [30, 2, 0, 6.5]) {
    refuses(() => createModel(model({ imageSize: size })), ArgumentError,
      new RegExp(`^dli02: image size ${size} cannot be halved twice by the U-Net's two max-pools; use a multiple of 4 \\(the notebook uses 16\\)$`));
  }
  refuses(() => createModel(model({ T: 0 })), ArgumentError, /^dli02: T must be an integer >= 1, got 0$/);
  refuses(() => createModel(model({ preset: 'unet2' as 'dli02' })), ArgumentError, /^unknown preset "unet2"; expected one of dli02, dli03, ddpm$/);
  createModel(model({ imageSize: 28 })).dispose();
});

// ------------------------------------------------------------------ run folders and checkpoints
function session(seed: number): TrainingSession {
  const config = presetDefaults('dli02');
  manualSeed(seed);
  const model = createModel(config.model);
  return {
    model,
    optimizer: new Adam(model.namedParameters(), { lr: 1e-3 }),
    loader: new BatchLoader(zeros([8, 1, 16, 16]), null, { batchSize: 4, seed: seed + 1 }),
    noiseGen: new Generator(seed + 2),
    ema: null,
    step: 0,
  };
}

function snapshot(s: TrainingSession): Record<string, unknown> {
  const opt = s.optimizer.stateDict();
  return {
    weights: new Map([...s.model.stateDict()].map(([k, t]) => [k, t.toArray()])),
    moments: new Map([...opt.tensors].map(([k, t]) => [k, t.toArray()])),
    step: s.step, optStep: opt.step, lr: opt.lr,
    loader: s.loader.position(), loaderGen: Array.from(s.loader.generator.getState()), noise: Array.from(s.noiseGen.getState()),
  };
}

/** A run folder with config.json and one complete checkpoint, step-3, of a seed-0 model. */
function makeRun(name: string): { run: RunFolder; ckpt: string } {
  const run = new RunFolder(path.join(work, name));
  run.create();
  run.writeConfig(presetDefaults('dli02'));
  const s = session(0);
  // Three batches and one Adam step in: the checkpoint has moments and a loader position to restore.
  for (let i = 0; i < 3; i++) s.loader.next();
  for (const p of s.model.parameters()) p.grad = zeros(p.shape).add(0.01);
  s.optimizer.step();
  s.step = 3;
  const ckpt = run.writeCheckpoint(3, checkpointFiles(s, 0.1));
  s.model.dispose();
  return { run, ckpt };
}

/** Rewrites a checkpoint's model.safetensors (or another file) after `edit`. */
function tamper(ckpt: string, edit: (t: Map<string, RawTensor>) => void, name = 'model.safetensors'): string {
  const file = path.join(ckpt, name);
  const parsed = readSafetensorsFile(file);
  const tensors = new Map([...parsed.tensors].map(([k, t]) => [k, { ...t, data: t.data.slice() }]));
  edit(tensors);
  writeSafetensorsFile(file, Object.fromEntries(tensors), parsed.metadata);
  return file;
}

const CASES: [string, (t: Map<string, RawTensor>) => void, RegExp][] = [
  ['missing', (t) => t.delete('down1.model.0.bias'), /missing 1 tensor\(s\): down1\.model\.0\.bias/],
  ['extra', (t) => t.set('head.weight', { dtype: 'F32', shape: [1], data: new Uint8Array(4) }), /unexpected 1 tensor\(s\): head\.weight/],
  // Same bytes, another shape: only the shape check can catch it.
  ['wrong shape', (t) => t.set('down0.0.weight', { ...t.get('down0.0.weight')!, shape: [16, 1, 9] }),
    /down0\.0\.weight: shape \[16, 1, 9\] in \S+model\.safetensors, model expects \[16, 1, 3, 3\]/],
];

test('a checkpoint with a tensor missing, extra or of the wrong shape: loadRun names the file and the tensor', () => {
  for (const [what, edit, re] of CASES) {
    const { run, ckpt } = makeRun(`load-${what.replace(' ', '-')}`);
    const file = tamper(ckpt, edit);
    refuses(() => loadRun(run.root), ArgumentError,
      new RegExp(`^cannot load ${esc(file)} into Dli02UNet: .*${re.source}`));
  }
});

test('restoreTraining from a checkpoint with a bad tensor or a state.json that is not JSON leaves the session untouched', () => {
  const cases: [string, (ckpt: string) => void, RegExp][] = [
    ...CASES.map(([what, edit, re]): [string, (ckpt: string) => void, RegExp] => [`model: ${what}`, (c) => tamper(c, edit), re]),
    // Refused after the weights would have loaded: those must be put back.
    ['optimizer: missing moment', (c) => tamper(c, (t) => t.delete('down0.0.bias.exp_avg_sq'), 'optimizer.safetensors'),
      /^cannot load \S+optimizer\.safetensors: missing moments of down0\.0\.bias$/],
    ['optimizer: wrong shape', (c) => tamper(c, (t) => t.set('down0.0.bias.exp_avg', { dtype: 'F32', shape: [4], data: new Uint8Array(16) }), 'optimizer.safetensors'),
      /down0\.0\.bias\.exp_avg: shape \[4\], parameter has \[16\]/],
    ['state: generator state of the wrong size', (c) => {
      const f = path.join(c, 'state.json');
      writeFileSync(f, JSON.stringify({ ...JSON.parse(readFileSync(f, 'utf8')) as object, noiseGenerator: 'AAAA' }));
    }, /generatorSetState: Expected .* but found the input RNG state size to be 3/],
  ];
  for (const [what, damage, re] of cases) {
    const { ckpt } = makeRun(`restore-${what.replace(/\W+/g, '-')}`);
    damage(ckpt);
    const s = session(1); // other weights, moments and positions than the checkpoint's: a partial load would show
    for (const p of s.model.parameters()) p.grad = zeros(p.shape).add(-0.02);
    s.optimizer.step();
    s.model.zeroGrad();
    s.loader.next();
    const before = snapshot(s);
    refuses(() => restoreTraining(s, ckpt), Error, re);
    assert.deepEqual(snapshot(s), before, `${what}: the session changed after a refused restore`);
    s.model.dispose();
  }

  const { ckpt } = makeRun('restore-state');
  const s = session(1);
  const before = snapshot(s);
  const state = path.join(ckpt, 'state.json');
  writeFileSync(state, '{"step": 3, "epoch": 0,');
  refuses(() => restoreTraining(s, ckpt), Error, new RegExp(`^${esc(state)} is not valid JSON: `));
  writeFileSync(state, '{"step": 3}\n');
  refuses(() => restoreTraining(s, ckpt), Error, /state\.json is not a ddpm-ts training state \(step, epoch, loader, noiseGenerator, optimizer expected\)$/);
  rmSync(state);
  refuses(() => restoreTraining(s, ckpt), Error, /^checkpoint \S+step-3 is incomplete: state\.json is missing$/);
  assert.deepEqual(snapshot(s), before);
  s.model.dispose();

  // The untampered checkpoint of the same kind loads: the refusals above were about the damage.
  const good = makeRun('restore-good');
  const t = session(1);
  restoreTraining(t, good.ckpt);
  assert.equal(t.step, 3);
  t.model.dispose();
});

test('loadRun of a folder without config.json, or with a config.json that is not JSON, says so and how to fix it', () => {
  const empty = path.join(work, 'not-a-run');
  mkdirSync(empty);
  refuses(() => loadRun(empty), Error,
    new RegExp(`^${esc(empty)} is not a run folder: ${esc(path.join(empty, 'config.json'))} is missing \\(train one with \`ddpm train --out ${esc(empty)}\`\\)$`));
  const { run } = makeRun('bad-config');
  writeFileSync(run.configPath, '{"version": 1, "model": {"preset": "dli02",\n');
  refuses(() => loadRun(run.root), Error, new RegExp(`^${esc(run.configPath)} is not valid JSON: `));
  refuses(() => run.readConfig(), Error, /config\.json is not valid JSON: .*(JSON|position|end)/i);
});
