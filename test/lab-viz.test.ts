// The learning lab's pictures (docs/learning-lab.md): `ddpm viz forward --chain` (the Markov chain
// q(x_t | x_{t-1}) beside the closed form q(x_t | x_0), seeds/000 Q2 and Q4) and `ddpm viz denoise`
// (a model as a denoiser from x_t, seeds/000 Q17): their noise statistics, an oracle model that must
// recover x_0 exactly, picture sizes, and refusals.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Generator, rand, randn, tidy, tensor, type Tensor } from '../src/tensor/index.js';
import { Diffusion, makeSchedule } from '../src/diffusion/index.js';
import { trainTinyRun } from './tiny-run.js';
import { decodePng } from '../src/io/png.js';
import { makeGrid } from '../src/viz/grid.js';
import { forwardStrip, markovChainStrip, forwardNoiseCheck } from '../src/viz/forward.js';
import { denoiseFrom, denoiseTiles } from '../src/viz/denoise.js';
import { ROOT } from './helpers.js';

const BIN = path.join(ROOT, 'bin', 'ddpm.js');
const work = mkdtempSync(path.join(tmpdir(), 'ddpm-lab-'));
after(() => rmSync(work, { recursive: true, force: true }));
const run = path.join(work, 'tiny');
const hasData = existsSync('/usr/share/datasets/fashion-mnist') || process.env.FASHION_MNIST_DIR !== undefined;
const d = new Diffusion(makeSchedule({ kind: 'linear', T: 150, betaStart: 1e-4, betaEnd: 0.02 }));

function ddpm(...args: string[]): { code: number; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
  return { code: r.status ?? -1, err: r.stderr };
}

before(async () => { await trainTinyRun(run); });

test('markovChainStrip: one x_t per asked t, at the closed form\'s scale; unordered or out-of-range t refused', () => tidy(() => {
  const x0 = rand([1, 16, 16]).mul(2).sub(1); // (C, H, W)
  const ts = [0, 50, 149];
  const chain = markovChainStrip(d, x0, ts, 3);
  assert.deepEqual(chain.shape, [3, 1, 16, 16]);
  assert.deepEqual(forwardStrip(d, x0, ts, 3).shape, chain.shape);
  // At t = 0 the chain has taken one step: x_0 = sqrt(1 - beta_0) x0 + sqrt(beta_0) z, within a few sigma of x0.
  const diff = chain.select(0, 0).sub(x0).abs().max().item();
  assert.ok(diff < 6 * Math.sqrt(d.terms.beta[0]!) + 1e-3, `t=0 differs from x0 by ${diff}`);
  assert.throws(() => markovChainStrip(d, x0, [10, 5]), /markovChainStrip: timesteps must be strictly ascending, got \[10, 5\]/);
  assert.throws(() => markovChainStrip(d, x0, [0, 150]), /markovChainStrip: timestep 150 is outside \[0, 149\] \(T = 150\)/);
}));

test('forwardNoiseCheck: chain and closed form both have noise std sqrt(1 - alphabar_t) and mean 0 (eq. 4)', () => tidy(() => {
  const x0 = rand([1, 16, 16]).mul(2).sub(1);
  const rows = forwardNoiseCheck(d, x0, [0, 40, 149], 512, 1);
  assert.deepEqual(rows.map((r) => r.t), [0, 40, 149]);
  for (const r of rows) {
    // 131,072 values each: the std is known to well under 1%; 3% leaves room.
    assert.ok(Math.abs(r.closedFormStd / r.expectedStd - 1) < 0.03, `t=${r.t}: closed-form std ${r.closedFormStd} vs ${r.expectedStd}`);
    assert.ok(Math.abs(r.chainStd / r.expectedStd - 1) < 0.03, `t=${r.t}: chain std ${r.chainStd} vs ${r.expectedStd}`);
    assert.ok(Math.abs(r.closedFormMean) < 0.02 && Math.abs(r.chainMean) < 0.02, `t=${r.t}: means ${r.closedFormMean}, ${r.chainMean}`);
  }
  assert.throws(() => forwardNoiseCheck(d, x0, [1], 1), /forwardNoiseCheck: draws must be an integer >= 2, got 1/);
}));

test('denoiseFrom: an oracle eps model gives x0_hat = x_0 and a reverse process that ends exactly at x_0', () => tidy(() => {
  const x0 = rand([2, 1, 8, 8], { generator: new Generator(4) }).mul(2).sub(1); // (N, C, H, W)
  // The true noise of x_t for this x_0: (x_t - sqrt(alphabar_t) x_0) / sqrt(1 - alphabar_t).
  const oracle = (xt: Tensor, t: Tensor): Tensor => {
    const i = t.toArray()[0]!;
    return xt.sub(x0.mul(d.terms.sqrtAlphaBar[i]!)).div(d.terms.sqrtOneMinusAlphaBar[i]!);
  };
  const rows = denoiseFrom({ model: oracle, diffusion: d, objective: 'eps', x0, ts: [5, 100], seed: 2 });
  assert.deepEqual(rows.map((r) => r.t), [5, 100]);
  for (const r of rows) {
    assert.ok(r.mse.x0Hat < 1e-9, `t=${r.t}: x0_hat mse ${r.mse.x0Hat}`);
    assert.ok(r.mse.reversed < 1e-9, `t=${r.t}: reversed mse ${r.mse.reversed}`);
    assert.ok(r.mse.xt > 1e-3, `t=${r.t}: x_t is noisy (mse ${r.mse.xt})`);
  }
  assert.ok(rows[1]!.mse.xt > rows[0]!.mse.xt, 'more noise at t = 100 than at t = 5');
  const tiles = denoiseTiles(x0.dataSync() as Float32Array, rows, 2, 64);
  assert.equal(tiles.length, 2 * 2 * 4 * 64);
  assert.deepEqual(Array.from(tiles.subarray(64 * 4, 64 * 5)), Array.from(x0.dataSync() as Float32Array).slice(64, 128), 'the second image starts with its x_0');
}));

test('denoiseFrom refuses start timesteps outside the schedule, a non-4-d x0, and eps at zero terminal SNR', () => tidy(() => {
  const zero = (xt: Tensor): Tensor => xt.mul(0);
  assert.throws(() => denoiseFrom({ model: zero, diffusion: d, objective: 'eps', x0: randn([1, 1, 4, 4]), ts: [150] }), /denoiseFrom: start timestep 150 is outside \[0, 149\] \(T = 150\)/);
  assert.throws(() => denoiseFrom({ model: zero, diffusion: d, objective: 'eps', x0: randn([1, 4, 4]), ts: [3] }), /denoiseFrom: x0 must be \(N, C, H, W\), got shape \[1, 4, 4\]/);
  assert.throws(() => denoiseFrom({ model: zero, diffusion: d, objective: 'eps', x0: tensor([1], [1, 1, 1, 1]), ts: [] }), /no start timesteps given/);
  const zt = new Diffusion(makeSchedule({ kind: 'linear', T: 10, betaStart: 1e-3, betaEnd: 0.2, zeroTerminalSnr: true }));
  assert.throws(() => denoiseFrom({ model: zero, diffusion: zt, objective: 'eps', x0: randn([1, 1, 4, 4]), ts: [9] }), /an eps model cannot denoise from t = 9, where alphabar = 0 .*start at t <= 8/);
  zt.dispose();
}));

test('ddpm viz forward --chain: two rows of x_t and a noise table on stderr', { skip: !hasData && 'no Fashion-MNIST' }, () => {
  const out = path.join(work, 'chain.png');
  const r = ddpm('viz', 'forward', '--chain', '--steps', '5', '--scale', '1', '--out', out);
  assert.equal(r.code, 0, r.err);
  const png = decodePng(readFileSync(out), out);
  const expected = makeGrid(new Float32Array(10 * 256), 10, 1, 16, 16, { nrow: 5, scale: 1 });
  assert.deepEqual([png.width, png.height], [expected.width, expected.height]);
  assert.match(r.err, /bottom row the chain q\(x_t \| x_\{t-1\}\)/);
  assert.equal(r.err.split('\n').filter((l) => /^\s+t=/.test(l)).length, 5, r.err);
});

test('ddpm viz denoise: one row per t, four tiles per image, errors to x_0 printed', { skip: !hasData && 'no Fashion-MNIST' }, () => {
  const out = path.join(work, 'denoise.png');
  const r = ddpm('viz', 'denoise', '--run', run, '--t', '2,9', '-n', '2', '--index', '5', '--scale', '1', '--threads', '1', '--out', out);
  assert.equal(r.code, 0, r.err);
  const png = decodePng(readFileSync(out), out);
  const expected = makeGrid(new Float32Array(16 * 256), 16, 1, 16, 16, { nrow: 8, scale: 1 });
  assert.deepEqual([png.width, png.height], [expected.width, expected.height]);
  assert.match(r.err, /test images 5\.\.6/);
  assert.match(r.err, /t=\s+2\s+alphabar \d\.\d{3}\s+x_t \d+\.\d{4}\s+x0_hat \d+\.\d{4}\s+reversed \d+\.\d{4}/);
});

test('ddpm viz denoise refuses a t outside the run\'s schedule and too many images', { skip: !hasData && 'no Fashion-MNIST' }, () => {
  const png = path.join(work, 'bad.png');
  let r = ddpm('viz', 'denoise', '--run', run, '--t', '10', '--out', png);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--t: 10 is not a timestep of .*tiny, whose T = 10; give integers in 0\.\.9/);
  r = ddpm('viz', 'denoise', '--run', run, '-n', '9', '--out', png);
  assert.match(r.err, /-n 9: at most 8 images fit a readable denoise picture/);
  assert.equal(existsSync(png), false, 'nothing written');
});
