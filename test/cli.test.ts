// The `ddpm` command end to end: a short real training run, sampling, the forward strip, --help and
// refusals of bad input. This is the one real training run of `npm test`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, readdirSync, existsSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodePng } from '../src/io/png.js';
import { ROOT } from './helpers.js';

const BIN = path.join(ROOT, 'bin', 'ddpm.js');
const work = mkdtempSync(path.join(tmpdir(), 'ddpm-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));
const run = path.join(work, 'run');
const hasData = existsSync('/usr/share/datasets/fashion-mnist') || process.env.FASHION_MNIST_DIR !== undefined;

function ddpm(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function png(file: string): { width: number; height: number; channels: number } {
  return decodePng(readFileSync(file), file);
}

before(() => {
  if (!hasData) return;
  // 4,096 images, batch 64, 4 epochs = 256 Adam steps.
  const r = ddpm('train', '--limit', '4096', '--epochs', '4', '--batch-size', '64', '--seed', '0', '--threads', '2', '--out', run);
  assert.equal(r.code, 0, `ddpm train failed:\n${r.err}`);
});

test('ddpm train: the loss falls below 0.45 within 256 steps and the run folder has the layout the README shows (What the demo writes)', { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
  const log = readFileSync(path.join(run, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  for (const key of ['step', 'epoch', 'loss', 'lr', 'imagesPerSecond']) assert.ok(key in log[0]!, `log.jsonl lines need "${key}"`);
  assert.ok('time' in log[0]!);
  const first = log[0]!.loss!;
  const last = log[log.length - 1]!.loss!;
  assert.equal(log[log.length - 1]!.step, 256);
  assert.ok(first > 0.6, `first logged loss ${first} should be near the untrained value (~1)`);
  assert.ok(last < 0.45, `last logged loss ${last} should be below 0.45 after 256 steps`);
  const config = JSON.parse(readFileSync(path.join(run, 'config.json'), 'utf8')) as { model: { preset: string }; train: { limit: number } };
  assert.equal(config.model.preset, 'dli02');
  assert.equal(config.train.limit, 4096);
  assert.deepEqual(readdirSync(path.join(run, 'checkpoints')).sort(), ['step-128', 'step-192', 'step-256', 'step-64']);
  for (const f of ['model.safetensors', 'optimizer.safetensors', 'state.json']) assert.ok(existsSync(path.join(run, 'checkpoints', 'step-256', f)));
  const grids = readdirSync(path.join(run, 'samples')).sort();
  assert.deepEqual(grids, ['epoch-001.png', 'epoch-002.png', 'epoch-003.png', 'epoch-004.png']);
  // 64 images of 16x16 in an 8x8 grid with 2-pixel padding, upscaled 4x: (8 * 18 + 2) * 4 = 584.
  assert.deepEqual(png(path.join(run, 'samples', 'epoch-004.png')), { ...png(path.join(run, 'samples', 'epoch-004.png')), width: 584, height: 584, channels: 1 });
});

test('ddpm sample: one 8-bit PNG per image, a grid and a trajectory, from finite samples', { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
  const out = path.join(work, 'imgs');
  const r = ddpm('sample', '--run', run, '-n', '6', '--seed', '1', '--out-dir', out, '--grid', path.join(work, 'grid.png'), '--trajectory', path.join(work, 'traj.png'), '--scale', '1');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(readdirSync(out).sort(), ['00000.png', '00001.png', '00002.png', '00003.png', '00004.png', '00005.png']);
  const img = decodePng(readFileSync(path.join(out, '00000.png')), 'sample');
  assert.equal(img.width, 16);
  assert.equal(img.channels, 1);
  // Not blank: a trained model's sample has both dark and light pixels.
  const values = new Set(img.data);
  assert.ok(values.size > 8, `sample 0 has only ${values.size} distinct grey levels`);
  assert.equal(png(path.join(work, 'grid.png')).width, 3 * 18 + 2);
  // 6 rows (one per image) by 10 columns (x_t at evenly spaced t).
  const traj = png(path.join(work, 'traj.png'));
  assert.equal(traj.width, 10 * 18 + 2);
  assert.equal(traj.height, 6 * 18 + 2);
});

test('ddpm sample with the same seed writes the same images; other variances run', { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
  const a = path.join(work, 'a.png');
  const b = path.join(work, 'b.png');
  assert.equal(ddpm('sample', '--run', run, '-n', '4', '--seed', '3', '--grid', a).code, 0);
  assert.equal(ddpm('sample', '--run', run, '-n', '4', '--seed', '3', '--grid', b).code, 0);
  assert.ok(readFileSync(a).equals(readFileSync(b)), 'the same seed must give the same grid');
  for (const v of ['beta', 'posterior']) assert.equal(ddpm('sample', '--run', run, '-n', '2', '--variance', v, '--grid', path.join(work, `${v}.png`)).code, 0);
});

test('ddpm viz forward writes the noising strip of a dataset image', { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
  const f = path.join(work, 'forward.png');
  const r = ddpm('viz', 'forward', '--index', '3', '--steps', '8', '--out', f, '--scale', '1');
  assert.equal(r.code, 0, r.err);
  assert.equal(png(f).width, 8 * 18 + 2);
  assert.match(r.err, /image 3 \(.+\) at t = 0, 21, .*, 149/);
});

test('--help lists every option with its default', () => {
  const top = ddpm('--help');
  for (const c of ['train', 'sample', 'viz', 'data']) assert.match(top.out, new RegExp(`\\b${c}\\b`));
  const t = ddpm('train', '--help').out;
  for (const o of ['--preset', '--epochs', '--batch-size', '--lr', '--seed', '--threads', '--limit', '--data', '--out']) assert.match(t, new RegExp(o));
  const words = t.replace(/\s+/g, ' '); // commander wraps help at 80 columns
  assert.match(words, /--epochs <n> passes over the data \(a resume may raise it\) \(default: 3 for dli02\/dli03, 2 for ddpm\)/);
  assert.match(words, /--lr <x> Adam learning rate \(default: 0.001\)/);
  const s = ddpm('sample', '--help').out;
  for (const o of ['--run', '--checkpoint', '-n', '--seed', '--batch-size', '--threads', '--grid', '--out-dir', '--trajectory', '--variance']) assert.match(s, new RegExp(o));
  assert.match(s, /\(default: 64\)/);
});

test('bad options are refused with a message naming the option and the value', () => {
  const cases: [string[], RegExp][] = [
    [['train', '--out', path.join(work, 'x'), '--epochs', '0'], /--epochs must be a positive integer, got "0"/],
    [['train', '--out', path.join(work, 'x'), '--lr', 'fast'], /--lr must be a positive number, got "fast"/],
    [['train', '--out', path.join(work, 'x'), '--batch-size', '-3'], /--batch-size|unknown option '-3'/],
    [['train', '--out', path.join(work, 'x'), '--preset', 'huge'], /--preset must be one of dli02, dli03, ddpm, got "huge"/],
    [['train', '--out', path.join(work, 'x'), '--frobnicate'], /unknown option '--frobnicate'/],
    [['train'], /required option '--out <dir>' not specified/],
    [['sample', '--run', path.join(work, 'nope'), '--grid', 'g.png'], /nope is not a run folder: .*config.json is missing/],
    [['sample', '--run', run], /nothing to write; give --grid FILE, --out-dir DIR and\/or --trajectory FILE/],
    [['sample', '--run', run, '-n', '2.5', '--grid', 'x.png'], /-n must be a positive integer, got "2.5"/],
    [['sample', '--run', run, '--variance', 'huge', '--grid', 'x.png'], /--variance must be one of notebook, beta, posterior, learned, got "huge"/],
    [['train', '--out', path.join(work, 'y'), '--data', path.join(work, 'empty')], /missing|not found|does not exist/i],
  ];
  for (const [args, re] of cases) {
    const r = ddpm(...args);
    assert.notEqual(r.code, 0, `ddpm ${args.join(' ')} should fail`);
    assert.match(r.err, re, `ddpm ${args.join(' ')}:\n${r.err}`);
  }
});

test('training into an existing run folder is refused and leaves it untouched', { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
  const before = statSync(path.join(run, 'config.json')).mtimeMs;
  const r = ddpm('train', '--limit', '256', '--epochs', '1', '--out', run);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /already holds a run \(config.json exists\); choose another --out/);
  assert.equal(statSync(path.join(run, 'config.json')).mtimeMs, before);
});

test('a cut checkpoint is refused with the file named, and nothing is written', { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
  const good = readFileSync(path.join(run, 'checkpoints', 'step-256', 'model.safetensors'));
  const cut = path.join(work, 'cut.safetensors');
  writeFileSync(cut, good.subarray(0, good.length - 1));
  const r = ddpm('sample', '--run', run, '--checkpoint', cut, '--grid', path.join(work, 'never.png'));
  assert.notEqual(r.code, 0);
  assert.match(r.err, /cut\.safetensors/);
  assert.ok(!existsSync(path.join(work, 'never.png')));
});
