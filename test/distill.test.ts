// Progressive distillation (Salimans & Ho 2022, Algorithm 2): the target against closed forms with an
// exact denoiser, the rounds and their timesteps against the DDIM sampler's own grid, a one-round
// distillation of a tiny run, and `ddpm distill` from the command line (refusals, sampling its run).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { noGrad, rand, randn, tensor, tidy, type Tensor } from '../src/tensor/index.js';
import {
  Diffusion, makeSchedule, distillationTarget, distillationWeight, distillationLoss, epsFromX0, vFromEpsX0,
} from '../src/diffusion/index.js';
import { ddimStep, spacedTimesteps, type PlannedStep } from '../src/samplers/index.js';
import { distillRounds, largestPowerOfTwo, twoStepTimesteps } from '../src/train/distill-plan.js';
import { distill, distilledConfig } from '../src/train/distill.js';
import { readRunConfig } from '../src/train/config.js';
import { RunFolder } from '../src/io/run.js';
import { trainTinyRun } from './tiny-run.js';
import { ROOT, assertClose } from './helpers.js';

const work = mkdtempSync(path.join(tmpdir(), 'ddpm-distill-'));
after(() => rmSync(work, { recursive: true, force: true }));
const BIN = path.join(ROOT, 'bin', 'ddpm.js');
const hasData = existsSync('/usr/share/datasets/fashion-mnist') || process.env.FASHION_MNIST_DIR !== undefined;
function ddpm(...args: string[]): { code: number; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
  return { code: r.status ?? -1, err: r.stderr };
}

// The tiny runs' schedule (test/tiny-run.ts): T = 10, so the first teacher samples with 8 steps.
const diffusion = new Diffusion(makeSchedule({ kind: 'linear', T: 10, betaStart: 1e-3, betaEnd: 0.2 }));
const ab = (t: number): number => (t < 0 ? 1 : diffusion.terms.alphaBar[t]!);

// Data x_0 ~ N(mu, s^2) per pixel: the exact denoiser E[x_0 | z_t] = mu + a s^2 / (a^2 s^2 + sigma^2) (z_t - a mu) is affine.
const MU = 0.3;
function exactX0(z: number, abT: number, s: number): number {
  const a = Math.sqrt(abT);
  return MU + ((a * s * s) / (abT * s * s + 1 - abT)) * (z - a * MU);
}
/** DDIM (eta 0) in plain float64: alpha_to x_hat + (sigma_to / sigma) (z - alpha x_hat). */
function ddim64(z: number, abFrom: number, abTo: number, s: number): number {
  const x = exactX0(z, abFrom, s);
  return Math.sqrt(abTo) * x + (Math.sqrt(1 - abTo) / Math.sqrt(1 - abFrom)) * (z - Math.sqrt(abFrom) * x);
}
const col = (v: number, b: number): Tensor => tensor(new Float32Array(b).fill(v), [b, 1, 1, 1]); // (B, 1, 1, 1)

for (const s of [0.5, 0]) {
  test(`the two-step target with an exact denoiser (data N(${MU}, ${s}^2)): closed form, and one student DDIM step lands where two teacher steps land`, () => noGrad(() => tidy(() => {
    const N = 4;
    for (const p of twoStepTimesteps(10, N)) {
      const b = 6;
      const z = randn([b, 1, 2, 2]); // (B, 1, 2, 2)
      const k = {
        a: col(Math.sqrt(ab(p.t)), b), s: col(Math.sqrt(1 - ab(p.t)), b), aMid: col(Math.sqrt(ab(p.mid)), b),
        sMid: col(Math.sqrt(1 - ab(p.mid)), b), aNext: col(Math.sqrt(ab(p.next)), b), sNext: col(Math.sqrt(1 - ab(p.next)), b),
      };
      const exact = (x: Tensor, abT: number): Tensor => tensor(Float32Array.from(x.toArray() as ArrayLike<number>, (v) => exactX0(v, abT, s)), x.shape);
      const target = distillationTarget((x, mid) => exact(x, ab(mid ? p.mid : p.t)), z, k);
      // The closed form in float64: z'' from two DDIM steps, then Algorithm 2's x~.
      const r = Math.sqrt(1 - ab(p.next)) / Math.sqrt(1 - ab(p.t));
      const closed = Array.from(z.toArray() as ArrayLike<number>, (v) => {
        const zNext = ddim64(ddim64(v, ab(p.t), ab(p.mid), s), ab(p.mid), ab(p.next), s);
        return (zNext - r * v) / (Math.sqrt(ab(p.next)) - r * Math.sqrt(ab(p.t)));
      });
      assertClose(`x~ at t = ${p.t}`, target, closed, 1e-5, 1e-5);
      // A point mass is its own denoiser's answer everywhere: the target is the data point.
      if (s === 0) assertClose(`x~ of a point mass at t = ${p.t}`, target, new Array<number>(b * 4).fill(MU), 1e-5);
      // The samplers' own DDIM step (samplers/ddim.ts): two teacher steps, then one student step from x~.
      const plan = (from: number, to: number): PlannedStep => ({ t: from, tPrev: to, abT: ab(from), abPrev: ab(to), abPrevPrev: 1 });
      const step = (x: Tensor, from: number, to: number, x0: Tensor): Tensor => {
        const eps = epsFromX0(x, x0, Math.sqrt(ab(from)), Math.sqrt(1 - ab(from)));
        return ddimStep(plan(from, to), eps, x0, 0, () => { throw new Error('eta 0 draws no noise'); }).x;
      };
      const zMid = step(z, p.t, p.mid, exact(z, ab(p.t)));
      const teacher = step(zMid, p.mid, p.next, exact(zMid, ab(p.mid)));
      const student = step(z, p.t, p.next, target);
      assertClose(`one student step vs two teacher steps from t = ${p.t} to ${p.next}`, student, teacher, 2e-5, 1e-5);
    }
  })));
}

test('the weights: max(SNR, 1), and SNR + 1 on the x_0 error is the MSE of v', () => noGrad(() => tidy(() => {
  assert.equal(distillationWeight(0.25, 'truncated-snr'), 1);
  assert.equal(distillationWeight(4, 'truncated-snr'), 4);
  assert.equal(distillationWeight(4, 'snr-plus-one'), 5);
  assert.throws(() => distillationWeight(1, 'snr' as never), /loss weighting must be one of truncated-snr, snr-plus-one, got "snr"/);
  // ||v_hat - v~||^2 from objectives.ts's own conversions, against (SNR + 1) ||x_hat - x~||^2.
  const abT = 0.3;
  const a = Math.sqrt(abT);
  const s = Math.sqrt(1 - abT);
  const z = randn([3, 1, 4, 4]);
  const xHat = randn([3, 1, 4, 4]);
  const xTarget = randn([3, 1, 4, 4]);
  const v = (x: Tensor): Tensor => vFromEpsX0(epsFromX0(z, x, a, s), x, a, s);
  const vMse = v(xHat).sub(v(xTarget)).square().mean().item();
  const weighted = distillationLoss(xHat, xTarget, tensor([1, 1, 1].map(() => distillationWeight(abT / (1 - abT), 'snr-plus-one')), [3])).item();
  assert.ok(Math.abs(vMse - weighted) <= 1e-5 * vMse, `v MSE ${vMse} vs (SNR + 1) x MSE ${weighted}`);
})));

test("each round's timesteps are the DDIM sampler's trailing grid, nested in the teacher's", () => {
  for (const [T, N] of [[150, 64], [150, 4], [1000, 256], [10, 4], [10, 1]] as const) {
    const plan = twoStepTimesteps(T, N);
    assert.deepEqual(plan.map((p) => p.t).reverse(), spacedTimesteps(T, N, 'trailing'), `T = ${T}, N = ${N}: the student's timesteps`);
    const teacher = spacedTimesteps(T, 2 * N, 'trailing');
    assert.deepEqual(plan.flatMap((p) => [p.mid, p.t]).reverse(), teacher, `T = ${T}, N = ${N}: t and midpoints make the teacher's grid`);
    assert.equal(plan[0]!.next, -1, 'the first student step goes to the clean image');
    for (let k = 1; k < N; k++) assert.equal(plan[k]!.next, plan[k - 1]!.t);
  }
  assert.throws(() => twoStepTimesteps(10, 8), /a 8-step student needs a 16-step teacher, more steps than T = 10/);
});

test('the rounds halve from the largest power of two <= T, and refuse what cannot be distilled', () => {
  assert.equal(largestPowerOfTwo(150), 128);
  assert.equal(largestPowerOfTwo(1000), 512);
  assert.equal(largestPowerOfTwo(128), 128);
  assert.deepEqual(distillRounds(128, 8, 'R'), [64, 32, 16, 8]);
  assert.deepEqual(distillRounds(8, 4, 'R'), [4]);
  assert.throws(() => distillRounds(128, 6, 'R'), /--steps must be a power of two \(each round halves the step count\), got 6; try --steps 4/);
  assert.throws(() => distillRounds(128, 128, 'the teacher R'), /--steps 128 leaves nothing to distill: the teacher R samples with 128 DDIM steps, and each round halves that; ask for at most 64/);
});

test('one round on a tiny run: the student starts from the teacher and its loss falls', async () => {
  const teacherDir = path.join(work, 'tiny-teacher');
  await trainTinyRun(teacherDir);
  const teacher = readRunConfig(new RunFolder(teacherDir));
  const latest = new RunFolder(teacherDir).latestCheckpoint()!;
  const config = distilledConfig(teacher, {
    teacherRun: teacherDir, teacherCheckpoint: path.join(latest.dir, 'model.safetensors'),
    steps: 4, iterations: 60, objective: 'v', weighting: 'truncated-snr', lr: 2e-3, emaDecay: 0, seed: 0, batchSize: 16,
  });
  assert.deepEqual(config.distill!.rounds, [4]);
  assert.equal(config.distill!.teacher.steps, 8);
  assert.equal(config.distill!.teacher.objective, 'eps');
  assert.deepEqual([config.samples.sampler, config.samples.steps, config.objective], ['ddim', 4, 'v']);
  const images = rand([32, 1, 16, 16]).mul(2).sub(1); // (32, 1, 16, 16)
  const dir = path.join(work, 'tiny-student');
  try {
    const summary = await distill({ ...config, train: { ...config.train, logEvery: 1 } }, new RunFolder(dir), {
      threads: 1, sampleGrids: false, dataset: { images, labels: null, classNames: null, dataDir: 'memory' },
    });
    assert.equal(summary.steps, 60);
  } finally {
    images.dispose();
  }
  const log = readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss: number; round: number; steps: number });
  assert.equal(log.length, 60);
  assert.ok(log.every((l) => l.round === 1 && l.steps === 4));
  const first = log.slice(0, 10).reduce((a, l) => a + l.loss, 0) / 10;
  const last = log.slice(-10).reduce((a, l) => a + l.loss, 0) / 10;
  assert.ok(last < 0.7 * first, `the distillation loss went from ${first.toFixed(4)} to ${last.toFixed(4)}: a fall below 70% expected`);
  const saved = new RunFolder(dir);
  assert.deepEqual(saved.listCheckpoints().map((c) => c.step), [60], 'a checkpoint at the end of the round');
  assert.ok(existsSync(path.join(saved.checkpointDir(60), 'teacher.safetensors')), 'the checkpoint holds its round\'s teacher');
});

test('ddpm distill refuses what it cannot do, naming the flag and the fix', { skip: !hasData && 'Fashion-MNIST not installed' }, async () => {
  const teacher = path.join(work, 'tiny-teacher-cli');
  await trainTinyRun(teacher);
  const out = path.join(work, 'refused');
  const cases: [string[], RegExp][] = [
    [['--steps', '6'], /--steps must be a power of two \(each round halves the step count\), got 6; try --steps 4/],
    [['--steps', '8'], /--steps 8 leaves nothing to distill: the teacher .*tiny-teacher-cli samples with 8 DDIM steps, and each round halves that; ask for at most 4/],
    [['--objective', 'eps'], /--objective must be one of x0, v, got "eps"/],
    [['--teacher-steps', '6'], /--teacher-steps must be a power of two <= T = 10 \(the rounds halve it\), got 6; try --teacher-steps 4/],
    [['--teacher-steps', '16'], /--teacher-steps must be a power of two <= T = 10 \(the rounds halve it\), got 16; try --teacher-steps 8/],
    [['--loss-weight', 'snr'], /--loss-weight must be one of truncated-snr, snr-plus-one, got "snr"/],
    [['--iterations', '0'], /--iterations must be a positive integer, got "0"/],
  ];
  for (const [flags, message] of cases) {
    const r = ddpm('distill', '--run', teacher, '--out', out, ...flags);
    assert.notEqual(r.code, 0, flags.join(' '));
    assert.match(r.err, message);
    assert.ok(!existsSync(out), `${flags.join(' ')} left no run folder`);
  }
  const empty = path.join(work, 'no-checkpoints');
  new RunFolder(empty).create();
  new RunFolder(empty).writeConfig(readRunConfig(new RunFolder(teacher)));
  const r = ddpm('distill', '--run', empty, '--out', out);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /no-checkpoints has no complete checkpoint under checkpoints\//);
  const noRun = ddpm('distill', '--out', out);
  assert.match(noRun.err, /required option '--run <dir>' not specified: the teacher run to distil/);
  const trainResume = ddpm('distill', '--resume', teacher);
  assert.match(trainResume.err, /was written by `ddpm train`, not `ddpm distill`; continue it with `ddpm train --resume`/);
});

test('ddpm distill writes a run that ddpm sample draws with DDIM at its step count, and ddpm train will not resume', { skip: !hasData && 'Fashion-MNIST not installed' }, async () => {
  const teacher = path.join(work, 'tiny-teacher-sample');
  await trainTinyRun(teacher);
  const out = path.join(work, 'student-cli');
  const r = ddpm('distill', '--run', teacher, '--out', out, '--steps', '2', '--iterations', '2', '--limit', '64', '--batch-size', '16', '--threads', '1');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /2 rounds \(4, 2 steps\) of 2 iterations/);
  const config = readRunConfig(new RunFolder(out));
  assert.deepEqual(config.distill!.rounds, [4, 2]);
  assert.equal(config.distill!.teacher.run, teacher);
  assert.deepEqual(new RunFolder(out).listCheckpoints().map((c) => c.step), [2, 4], 'a checkpoint after each round');
  assert.ok(existsSync(path.join(out, 'samples', 'round-1-steps-004.png')) && existsSync(path.join(out, 'samples', 'round-2-steps-002.png')));
  const s = ddpm('sample', '--run', out, '-n', '4', '--grid', path.join(work, 'student.png'), '--threads', '1');
  assert.equal(s.code, 0, s.err);
  assert.match(s.err, /ddim, 2 steps, x0 clip/);
  // Round 1's checkpoint is a 4-step student, and samples as one.
  const r1 = ddpm('sample', '--run', out, '--checkpoint', path.join(out, 'checkpoints', 'step-2'), '-n', '4', '--grid', path.join(work, 'round1.png'), '--threads', '1');
  assert.equal(r1.code, 0, r1.err);
  assert.match(r1.err, /ddim, 4 steps, x0 clip/);
  const t = ddpm('train', '--resume', out);
  assert.notEqual(t.code, 0);
  assert.match(t.err, /was written by `ddpm distill`; continue it with `ddpm distill --resume/);
  const changed = ddpm('distill', '--resume', out, '--lr', '0.1');
  assert.match(changed.err, /--lr 0.1 differs from the resumed distillation's 0.0005; a resumed run keeps its config.json/);
});
