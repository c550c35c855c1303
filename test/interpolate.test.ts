// Interpolation in DDIM's latent space: slerp against closed forms (norms, the midpoint, the
// parallel and opposite cases), the path's end frames against the plain samples of each seed (library
// and `ddpm sample`), and every flag that would make the path meaningless refused by message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Generator } from '../src/tensor/index.js';
import { loadRun } from '../src/train/checkpoint.js';
import { slerp, slerpWeights, frameAlphas, interpolateLatents, latentFromSeed, sample, checkInterpolationSampler } from '../src/samplers/index.js';
import { decodePng } from '../src/io/png.js';
import { program } from '../src/cli/main.js';
import { trainTinyRun } from './tiny-run.js';
import { ROOT, maxAbsDiff } from './helpers.js';

const BIN = path.join(ROOT, 'bin', 'ddpm.js');
const work = mkdtempSync(path.join(tmpdir(), 'ddpm-interp-'));
const run = path.join(work, 'run');
before(async () => { await trainTinyRun(run); });
after(() => rmSync(work, { recursive: true, force: true }));

function ddpm(...args: string[]): { code: number; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
  return { code: r.status ?? -1, err: r.stderr };
}

const norm = (x: ArrayLike<number>): number => Math.sqrt(Array.from(x).reduce((s, v) => s + v * v, 0));
const frame = (all: Float32Array, i: number, d: number): Float32Array => all.subarray(i * d, (i + 1) * d);
/** Seeded vectors with entries in [-1, 1) (an LCG: independent of the code under test). */
function vec(d: number, seed: number): Float64Array {
  let s = seed;
  return Float64Array.from({ length: d }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 31) - 1);
}

test('slerp: the ends exactly, norms kept between equal-norm ends, the midpoint (a + b) / (2 cos(theta / 2)), theta = pi / 2 for orthogonal ends', () => {
  const d = 64;
  const a = vec(d, 1);
  const raw = vec(d, 2);
  // b: raw rescaled to |a|, so both ends have one norm.
  const b = raw.map((v) => (v * norm(a)) / norm(raw));
  const alphas = frameAlphas(9);
  const path9 = slerp(a, b, alphas);
  assert.deepEqual(Array.from(frame(path9, 0, d)), Array.from(Float32Array.from(a)), 'alpha 0 is a, to the bit');
  assert.deepEqual(Array.from(frame(path9, 8, d)), Array.from(Float32Array.from(b)), 'alpha 1 is b, to the bit');
  for (let i = 0; i < 9; i++) assert.ok(Math.abs(norm(frame(path9, i, d)) / norm(a) - 1) < 1e-6, `frame ${i}: norm ${norm(frame(path9, i, d))}, expected ${norm(a)}`);
  // A straight line would shrink: the midpoint of lerp has norm |a| cos(theta / 2) < |a|.
  const { theta } = slerpWeights(a, b, [0.5]);
  const mid = frame(slerp(a, b, [0.5]), 0, d);
  const expected = a.map((v, i) => (v + b[i]!) / (2 * Math.cos(theta / 2)));
  assert.ok(maxAbsDiff(mid, expected) < 1e-6, `midpoint off by ${maxAbsDiff(mid, expected)}`);
  // Orthogonal unit vectors: theta = pi / 2 and the path is (cos(alpha pi / 2), sin(alpha pi / 2)).
  const e = slerpWeights([1, 0], [0, 1], [0.25]);
  assert.ok(Math.abs(e.theta - Math.PI / 2) < 1e-15);
  assert.ok(maxAbsDiff(slerp([1, 0], [0, 1], [0.25]), [Math.cos(Math.PI / 8), Math.sin(Math.PI / 8)]) < 1e-7);
});

test('slerp of parallel ends is the straight line; opposite, zero or mismatched ends and too few frames are refused by message', () => {
  const a = [1, -2, 3];
  const b = a.map((v) => 2 * v);
  const out = slerp(a, b, [0, 0.25, 1]);
  assert.ok(maxAbsDiff(out, [...a, ...a.map((v) => 1.25 * v), ...b]) < 1e-6, `parallel path ${Array.from(out).join(', ')}`);
  assert.throws(() => slerp(a, a.map((v) => -v), [0.5]), /opposite directions \(theta = pi\)/);
  assert.throws(() => slerp([0, 0], [1, 0], [0.5]), /a latent is zero or not finite/);
  assert.throws(() => slerp([1, 0], [1, 0, 0], [0.5]), /have 2 and 3 values; expected the same shape/);
  assert.throws(() => frameAlphas(1), /frames must be an integer >= 2/);
  assert.throws(() => checkInterpolationSampler('ddpm', undefined), /needs the ddim sampler with eta 0, got ddpm/);
  assert.throws(() => checkInterpolationSampler('ddim', 0.5), /needs eta 0, got eta 0\.5/);
});

test('interpolateLatents: the end frames are the plain DDIM samples of each seed, and the frames in between differ from both', () => {
  const { model, diffusion, config } = loadRun(run);
  try {
    const [c, s] = [config.model.imageChannels, config.model.imageSize];
    const common = { model: (x: Parameters<typeof model.forward>[0], t: Parameters<typeof model.forward>[1]) => model.forward(x, t), diffusion, objective: 'eps' as const, steps: 10 };
    const { images, alphas, theta } = interpolateLatents({ ...common, imageShape: [c, s, s], seeds: [3, 8], frames: 5 });
    assert.deepEqual(alphas, [0, 0.25, 0.5, 0.75, 1]);
    assert.ok(theta > 1.3 && theta < 1.85, `two 256-d Gaussian latents are nearly orthogonal, got theta ${theta}`);
    const d = c * s * s;
    const got = Float32Array.from(images.dataSync() as Float32Array);
    images.dispose();
    // The plain sampling of each seed, with 4 images as a plain `ddpm sample` batch: its first image.
    for (const [seed, at] of [[3, 0], [8, 4]] as const) {
      const plain = sample({ ...common, sampler: 'ddim', eta: 0, shape: [4, c, s, s], generator: new Generator(seed) });
      const first = Float32Array.from((plain.dataSync() as Float32Array).subarray(0, d));
      plain.dispose();
      assert.ok(maxAbsDiff(frame(got, at, d), first) < 1e-5, `seed ${seed}: frame ${at} off by ${maxAbsDiff(frame(got, at, d), first)}`);
    }
    // x_T of a seed is the first image's noise of a batch of any size.
    const one = latentFromSeed(8, [c, s, s]);
    const batch = sample({ ...common, sampler: 'ddim', shape: [1, c, s, s], generator: new Generator(8), xT: one });
    one.dispose();
    assert.ok(maxAbsDiff(frame(got, 4, d), batch.dataSync() as Float32Array) < 1e-5);
    batch.dispose();
    assert.ok(maxAbsDiff(frame(got, 2, d), frame(got, 0, d)) > 1e-2 && maxAbsDiff(frame(got, 2, d), frame(got, 4, d)) > 1e-2, 'the middle frame is neither end');
    assert.throws(() => interpolateLatents({ ...common, imageShape: [c, s, s], seeds: [3, 3], frames: 5 }), /both seeds are 3/);
  } finally {
    model.dispose();
  }
});

test('ddpm sample --interpolate writes the strip, the frames and a GIF; its end frames are the PNGs of plain --seed sampling', () => {
  const strip = path.join(work, 'strip.png');
  const gif = path.join(work, 'path.gif');
  const frames = path.join(work, 'frames');
  const r = ddpm('sample', '--run', run, '--interpolate', '5,11', '--frames', '4', '--threads', '1', '--scale', '1', '--grid', strip, '--gif', gif, '--out-dir', frames);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /sampled 4 frames from seed 5 to seed 11 .*ddim, 10 steps, eta 0/);
  const png = decodePng(readFileSync(strip), strip);
  assert.equal(png.width, 4 * 16 + 5 * 2, 'one row of 4 frames, make_grid padding 2');
  assert.equal(png.height, 16 + 2 * 2);
  assert.equal(readFileSync(gif).subarray(0, 6).toString('latin1'), 'GIF89a');
  assert.deepEqual(readdirSync(frames), ['00000.png', '00001.png', '00002.png', '00003.png']);
  for (const [seed, file] of [[5, '00000.png'], [11, '00003.png']] as const) {
    const plain = path.join(work, `plain-${seed}`);
    const p = ddpm('sample', '--run', run, '--seed', String(seed), '-n', '2', '--sampler', 'ddim', '--threads', '1', '--out-dir', plain);
    assert.equal(p.code, 0, p.err);
    const want = decodePng(readFileSync(path.join(plain, '00000.png')), 'plain').data;
    const have = decodePng(readFileSync(path.join(frames, file)), file).data;
    assert.ok(maxAbsDiff(have, want) <= 1, `seed ${seed}: 8-bit values differ by ${maxAbsDiff(have, want)}`);
  }
});

/** The message `ddpm sample ARGS` fails with, run in this process (program() throws rather than exits). */
async function refusal(args: string[]): Promise<string> {
  const p = program();
  let err = '';
  for (const c of [p, ...p.commands]) c.configureOutput({ writeErr: (t) => { err += t; }, writeOut: () => {} });
  try {
    await p.parseAsync(['node', 'ddpm', 'sample', ...args]);
  } catch (e) {
    return `${err}${(e as Error).message}`;
  }
  return assert.fail(`ddpm sample ${args.join(' ')} should fail`);
}

test('ddpm sample --interpolate refuses samplers with noise, eta > 0 and flags without meaning on the path, writing nothing', async () => {
  const out = path.join(work, 'refused.png');
  const cases: [string[], RegExp][] = [
    [['--sampler', 'ddpm'], /interpolation needs the ddim sampler with eta 0, got ddpm; only a deterministic map/],
    [['--sampler', 'ddim', '--eta', '0.3'], /interpolation needs eta 0, got eta 0\.3/],
    [['-n', '4'], /-n does not apply to --interpolate: the number of images is --frames/],
    [['--seed', '2'], /--seed does not apply to --interpolate: the seeds are the two of --interpolate/],
    [['--variance', 'beta'], /--variance applies to --sampler ddpm and pc only/],
    [['--trajectory', path.join(work, 't.png')], /--trajectory does not apply to --interpolate/],
    [['--gif', path.join(work, 'x.png')], /--gif .*x\.png: the file must end in \.gif/],
    [['--frames', '1'], /--frames must be an integer in \[2, 64\], got "1"/],
  ];
  for (const [extra, re] of cases) assert.match(await refusal(['--run', run, '--interpolate', '1,2', '--grid', out, ...extra]), re, extra.join(' '));
  assert.match(await refusal(['--run', run, '--interpolate', '4,4', '--grid', out]), /names seed 4 twice/);
  assert.match(await refusal(['--run', run, '--interpolate', '4', '--grid', out]), /--interpolate must be two seeds, SEED_A,SEED_B/);
  assert.match(await refusal(['--run', run, '--interpolate', '1,2']), /writes nothing without --grid FILE/);
  assert.match(await refusal(['--run', run, '--frames', '5', '--grid', out]), /--frames applies to --interpolate A,B only/);
  assert.match(await refusal(['--run', run, '--gif', path.join(work, 'x.gif'), '--grid', out]), /--gif applies to --interpolate A,B only/);
  assert.equal(existsSync(out), false);
});
