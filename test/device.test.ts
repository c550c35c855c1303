// --device: `--device cpu` is the default path exactly (same weights, same images, byte for byte), and
// a device this libtorch cannot compute on, or NCCL on CPU tensors, is refused before anything is
// written. The CUDA path itself needs a GPU: scripts/gpu-check.sh runs it there.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from './helpers.js';
import { cudaAvailable } from '../src/tensor/index.js';

const BIN = path.join(ROOT, 'bin', 'ddpm.js');
const work = mkdtempSync(path.join(tmpdir(), 'ddpm-device-'));
after(() => rmSync(work, { recursive: true, force: true }));

function ddpm(...args: string[]): { code: number; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' }, timeout: 180_000 });
  return { code: r.status ?? -1, err: r.stderr };
}

const TRAIN = ['train', '--preset', 'dli02', '--limit', '64', '--batch-size', '8', '--epochs', '1', '--max-steps', '3', '--seed', '5', '--no-sample-grids', '--threads', '1'];

function latestWeights(run: string): Buffer {
  const steps = readdirSync(path.join(run, 'checkpoints')).sort();
  return readFileSync(path.join(run, 'checkpoints', steps.at(-1)!, 'model.safetensors'));
}

test('--device cpu trains and samples exactly as the default', () => {
  const plain = path.join(work, 'plain');
  const cpu = path.join(work, 'cpu');
  const a = ddpm(...TRAIN, '--out', plain);
  assert.equal(a.code, 0, a.err);
  const b = ddpm(...TRAIN, '--device', 'cpu', '--out', cpu);
  assert.equal(b.code, 0, b.err);
  assert.ok(latestWeights(plain).equals(latestWeights(cpu)), 'the weights after 3 steps differ between the default and --device cpu');

  const gridA = path.join(work, 'a.png');
  const gridB = path.join(work, 'b.png');
  const sample = ['sample', '--run', plain, '-n', '4', '--sampler', 'ddim', '--steps', '4', '--threads', '1'];
  const sa = ddpm(...sample, '--grid', gridA);
  assert.equal(sa.code, 0, sa.err);
  const sb = ddpm(...sample, '--device', 'cpu', '--grid', gridB);
  assert.equal(sb.code, 0, sb.err);
  assert.ok(readFileSync(gridA).equals(readFileSync(gridB)), 'the sample grid differs between the default and --device cpu');
});

test('--device cuda without a CUDA libtorch is refused, saying how to get one, before anything is written', { skip: cudaAvailable() && 'this libtorch has CUDA' }, () => {
  const out = path.join(work, 'cuda');
  const r = ddpm(...TRAIN, '--device', 'cuda', '--out', out);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--device cuda: the addon was built against libtorch \S+ without CUDA.*LIBTORCH=.*npm run build:native.*pip install torch/);
  assert.equal(existsSync(out), false, 'a refused run must leave no folder');
  const dp = ddpm(...TRAIN, '--device', 'cuda:1', '--nproc-per-node', '2', '--out', out);
  assert.match(dp.err, /--device cuda:1: the addon was built against libtorch/);
  assert.equal(existsSync(out), false);
  const s = ddpm('sample', '--run', out, '--device', 'cuda', '--grid', path.join(work, 'c.png'));
  assert.match(s.err, /--device cuda: the addon was built against libtorch/);
  assert.equal(existsSync(path.join(work, 'c.png')), false);
});

test('--backend nccl with --device cpu, and a device that is not one, are refused', () => {
  const out = path.join(work, 'nccl');
  const r = ddpm(...TRAIN, '--nproc-per-node', '2', '--backend', 'nccl', '--out', out);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--backend nccl moves CUDA tensors, but --device is cpu; use --backend gloo, or --device cuda/);
  assert.equal(existsSync(out), false);
  const bad = ddpm(...TRAIN, '--device', 'gpu', '--out', out);
  assert.match(bad.err, /--device must be cpu, cuda or cuda:N, got "gpu"/);
  assert.equal(existsSync(out), false);
  const e = ddpm('eval', '--run', out, '--device', 'gpu0');
  assert.match(e.err, /--device must be cpu, cuda or cuda:N, got "gpu0"/);
});
