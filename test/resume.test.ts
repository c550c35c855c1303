// Exact resume (issue: trust): K steps straight equal K/2 steps, a separate process that loads the
// checkpoint, and K/2 more, bit for bit: weights, optimizer moments, data position and generators.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from './helpers.js';
import { readSafetensorsFile } from '../src/io/safetensors.js';
import { trainTinyRun } from './tiny-run.js';

const BIN = path.join(ROOT, 'bin', 'ddpm.js');
const hasData = existsSync('/usr/share/datasets/fashion-mnist') || process.env.FASHION_MNIST_DIR !== undefined;
const work = mkdtempSync(path.join(tmpdir(), 'ddpm-resume-'));
after(() => rmSync(work, { recursive: true, force: true }));
const COMMON = ['--limit', '512', '--batch-size', '32', '--epochs', '2', '--checkpoint-every', '8', '--threads', '2', '--no-sample-grids'];

function ddpm(...args: string[]): { code: number; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
  return { code: r.status ?? -1, err: r.stderr };
}

const TOOLBOX = ['--class-cond', '--objective', 'v', '--loss-weight', 'min-snr', '--ema-decay', '0.99', '--lr-schedule', 'cosine', '--warmup-steps', '5', '--min-lr', '1e-5', '--grad-clip', '1'];
for (const [tag, name, extra, files] of [
  ['notebook', 'the notebook settings', [], ['model.safetensors', 'optimizer.safetensors', 'state.json']],
  ['toolbox', 'EMA, LR warm-up + cosine, class conditioning, v objective, min-SNR and clipping', TOOLBOX, ['model.safetensors', 'ema.safetensors', 'optimizer.safetensors', 'state.json']],
  ['learned', 'a learned variance and the hybrid loss', ['--learn-variance'], ['model.safetensors', 'optimizer.safetensors', 'state.json']],
] as const) {
  test(`K steps straight equal K/2 steps + resume in a new process + K/2 steps, bit for bit (${name})`, { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
    const a = path.join(work, `straight-${tag}`);
    const b = path.join(work, `stopped-${tag}`);
    const straight = ddpm('train', ...COMMON, ...extra, '--out', a);
    assert.equal(straight.code, 0, straight.err);
    // 512 / 32 = 16 steps per epoch; stop mid-epoch 2 at step 20.
    const first = ddpm('train', ...COMMON, ...extra, '--out', b, '--max-steps', '20');
    assert.equal(first.code, 0, first.err);
    assert.ok(existsSync(path.join(b, 'checkpoints', 'step-20', 'state.json')));
    assert.ok(!existsSync(path.join(b, 'checkpoints', 'step-24')));
    const resumed = ddpm('train', '--resume', b, '--threads', '2', '--checkpoint-every', '8', '--no-sample-grids');
    assert.equal(resumed.code, 0, resumed.err);
    assert.match(resumed.err, /resuming at step 20/);
    for (const step of [24, 32]) {
      for (const f of files) {
        const x = readFileSync(path.join(a, 'checkpoints', `step-${step}`, f));
        const y = readFileSync(path.join(b, 'checkpoints', `step-${step}`, f));
        assert.ok(x.equals(y), `step-${step}/${f} differs between the straight and the resumed run`);
      }
    }
    // The state includes the generators, so the next random draws are equal too.
    const sa = JSON.parse(readFileSync(path.join(a, 'checkpoints', 'step-32', 'state.json'), 'utf8')) as { noiseGenerator: string; loader: { epochState: number[] }; ema?: { updates: number } };
    assert.ok(sa.noiseGenerator.length > 1000 && sa.loader.epochState.length > 1000);
    if (tag === 'toolbox') assert.equal(sa.ema?.updates, 32, 'the EMA was updated once per step and its count resumed');
  });
}

test('--resume of a path that does not exist is an error, never a fresh run', () => {
  const r = ddpm('train', '--resume', path.join(work, 'no-such-run'));
  assert.notEqual(r.code, 0);
  assert.match(r.err, /no-such-run: no such run or checkpoint folder \(a resume never starts a fresh run\)/);
  assert.ok(!existsSync(path.join(work, 'no-such-run')));
});

test('a resumed run refuses changed hyper-parameters', { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
  const r = ddpm('train', '--resume', path.join(work, 'stopped-notebook'), '--lr', '0.5');
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--lr 0.5 differs from the resumed run's 0.001/);
  const o = ddpm('train', '--resume', path.join(work, 'stopped-toolbox'), '--objective', 'eps');
  assert.notEqual(o.code, 0);
  assert.match(o.err, /--objective eps differs from the resumed run's v/);
  const lv = ddpm('train', '--resume', path.join(work, 'stopped-notebook'), '--learn-variance');
  assert.notEqual(lv.code, 0);
  assert.match(lv.err, /--learn-variance true differs from the resumed run's false/);
  const e = ddpm('train', '--resume', path.join(work, 'stopped-toolbox'), '--ema-decay', '0.99', '--epochs', '3', '--max-steps', '33', '--no-sample-grids');
  assert.equal(e.code, 0, `flags equal to the saved ones are accepted:\n${e.err}`);
});

test('SIGKILL during checkpointing leaves only complete checkpoints, and --resume latest continues', { skip: !hasData && 'Fashion-MNIST not installed' }, async () => {
  const run = path.join(work, 'killed');
  const steps = (): number[] => (existsSync(path.join(run, 'checkpoints')) ? readdirSync(path.join(run, 'checkpoints')) : [])
    .map((d) => /^step-(\d+)$/.exec(d)).filter((m) => m !== null).map((m) => Number(m[1]));
  // Checkpoint every step, so a kill a few milliseconds after a new checkpoint appears lands while
  // the next one is being written.
  for (const delayMs of [5, 40, 90]) {
    const args = existsSync(path.join(run, 'config.json'))
      ? ['train', '--resume', 'latest', '--out', run, '--checkpoint-every', '1', '--keep', '3', '--no-sample-grids']
      : ['train', '--limit', '512', '--batch-size', '32', '--epochs', '2', '--threads', '2', '--no-sample-grids', '--checkpoint-every', '1', '--keep', '3', '--out', run];
    const before = Math.max(0, ...steps());
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    let alive = true;
    void exited.then(() => { alive = false; });
    const deadline = Date.now() + 120_000;
    while (alive && Math.max(0, ...steps()) < before + 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.ok(alive, `training exited before it was killed:\n${err}`);
    await new Promise((r) => setTimeout(r, delayMs));
    child.kill('SIGKILL');
    await exited;
    for (const d of steps()) {
      // Every folder with a final name is complete and parses; temp folders are the only partial ones.
      for (const f of ['model.safetensors', 'optimizer.safetensors']) readSafetensorsFile(path.join(run, 'checkpoints', `step-${d}`, f));
      JSON.parse(readFileSync(path.join(run, 'checkpoints', `step-${d}`, 'state.json'), 'utf8'));
    }
  }
  const r = ddpm('train', '--resume', 'latest', '--out', run, '--no-sample-grids');
  assert.equal(r.code, 0, r.err);
  assert.ok(existsSync(path.join(run, 'checkpoints', 'step-32')), 'the resumed run reaches the end');
  assert.ok(!readdirSync(path.join(run, 'checkpoints')).some((d) => d.includes('.tmp-')), 'stale temp folders are cleaned on resume');
});

test('ddpm train-classifier: K steps straight equal K/2 steps + resume in a new process + K/2 steps, bit for bit', { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
  // The diffusion run only lends its schedule, size and data: two steps of a T = 20 dli02 run.
  const r = path.join(work, 'clf-of');
  const made = ddpm('train', '--preset', 'dli02', '--timesteps', '20', '--limit', '64', '--batch-size', '32', '--epochs', '1', '--threads', '2', '--no-sample-grids', '--out', r);
  assert.equal(made.code, 0, made.err);
  const CLF = ['--limit', '128', '--batch-size', '16', '--epochs', '2', '--checkpoint-every', '4', '--threads', '2'];
  const a = path.join(work, 'clf-straight');
  const b = path.join(work, 'clf-stopped');
  const straight = ddpm('train-classifier', '--run', r, ...CLF, '--out', a);
  assert.equal(straight.code, 0, straight.err);
  // 128 / 16 = 8 steps per epoch; stop mid-epoch 2 at step 10.
  const first = ddpm('train-classifier', '--run', r, ...CLF, '--out', b, '--max-steps', '10');
  assert.equal(first.code, 0, first.err);
  assert.ok(existsSync(path.join(b, 'checkpoints', 'step-10', 'state.json')));
  const changed = ddpm('train-classifier', '--resume', b, '--lr', '0.5');
  assert.notEqual(changed.code, 0);
  assert.match(changed.err, /--lr 0.5 differs from the resumed classifier's 0.0003/);
  const wrongCommand = ddpm('train', '--resume', b, '--no-sample-grids');
  assert.notEqual(wrongCommand.code, 0);
  assert.match(wrongCommand.err, /describes a noise-aware classifier .*continue it with `ddpm train-classifier --resume`/);
  const resumed = ddpm('train-classifier', '--resume', b, '--threads', '2', '--checkpoint-every', '4');
  assert.equal(resumed.code, 0, resumed.err);
  assert.match(resumed.err, /resuming at step 10/);
  for (const step of [12, 16]) {
    for (const f of ['model.safetensors', 'optimizer.safetensors', 'state.json']) {
      const x = readFileSync(path.join(a, 'checkpoints', `step-${step}`, f));
      const y = readFileSync(path.join(b, 'checkpoints', `step-${step}`, f));
      assert.ok(x.equals(y), `step-${step}/${f} differs between the straight and the resumed classifier run`);
    }
  }
  const other = ddpm('train-classifier', '--resume', r);
  assert.notEqual(other.code, 0);
  assert.match(other.err, /is a diffusion model's run; continue it with `ddpm train --resume`/);
});

test('ddpm distill: stopped mid-round, at a round\'s end and mid-round again, each resumed in a new process, equals the straight distillation bit for bit', { skip: !hasData && 'Fashion-MNIST not installed' }, async () => {
  const teacher = path.join(work, 'distill-teacher');
  await trainTinyRun(teacher);
  // T = 10: from 8 teacher steps to 2, rounds of 4 and 2 steps, 6 iterations each; an EMA, so the next teacher is the EMA's.
  const args = ['--steps', '2', '--iterations', '6', '--limit', '64', '--batch-size', '16', '--ema-decay', '0.9', '--checkpoint-every', '2', '--threads', '2', '--no-sample-grids'];
  const a = path.join(work, 'distill-straight');
  const b = path.join(work, 'distill-stopped');
  const straight = ddpm('distill', '--run', teacher, '--out', a, ...args);
  assert.equal(straight.code, 0, straight.err);
  const first = ddpm('distill', '--run', teacher, '--out', b, ...args, '--max-steps', '3');
  assert.equal(first.code, 0, first.err);
  for (const stop of [6, 9]) {
    const r = ddpm('distill', '--resume', b, '--threads', '2', '--checkpoint-every', '2', '--no-sample-grids', '--max-steps', String(stop));
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /resuming at step \d+/);
  }
  const last = ddpm('distill', '--resume', b, '--threads', '2', '--checkpoint-every', '2', '--no-sample-grids');
  assert.equal(last.code, 0, last.err);
  for (const step of [4, 6, 8, 10, 12]) {
    for (const f of ['model.safetensors', 'ema.safetensors', 'optimizer.safetensors', 'teacher.safetensors', 'state.json']) {
      const x = readFileSync(path.join(a, 'checkpoints', `step-${step}`, f));
      const y = readFileSync(path.join(b, 'checkpoints', `step-${step}`, f));
      assert.ok(x.equals(y), `step-${step}/${f} differs between the straight and the resumed distillation`);
    }
  }
  // Round 2's teacher is round 1's final EMA (step 6), weight for weight, not the run's teacher.
  const ema6 = readSafetensorsFile(path.join(a, 'checkpoints', 'step-6', 'ema.safetensors')).tensors;
  const teacher8 = readSafetensorsFile(path.join(a, 'checkpoints', 'step-8', 'teacher.safetensors')).tensors;
  const teacher4 = readSafetensorsFile(path.join(a, 'checkpoints', 'step-4', 'teacher.safetensors')).tensors;
  assert.deepEqual([...teacher8.keys()].sort(), [...ema6.keys()].sort());
  for (const [k, t] of ema6) assert.ok(Buffer.from(t.data).equals(Buffer.from(teacher8.get(k)!.data)), `round 2's teacher ${k} is round 1's EMA`);
  assert.ok([...teacher4].some(([k, t]) => !Buffer.from(t.data).equals(Buffer.from(teacher8.get(k)!.data))), 'the teacher changed between the rounds');
});
