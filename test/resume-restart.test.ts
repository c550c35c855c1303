// No dead ends (issue 16 §8): a run killed before its first checkpoint leaves config.json, a log and
// perhaps a half-written checkpoint folder. `--resume` of it starts it again from step 0 with its saved
// configuration, says so, and ends where a run that never stopped ends, bit for bit.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, readdirSync, existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from './helpers.js';
import { RunFolder } from '../src/io/run.js';
import { parseLossLog } from '../src/viz/plot.js';

const BIN = path.join(ROOT, 'bin', 'ddpm.js');
const hasData = existsSync('/usr/share/datasets/fashion-mnist') || process.env.FASHION_MNIST_DIR !== undefined;
const work = mkdtempSync(path.join(tmpdir(), 'ddpm-restart-'));
after(() => rmSync(work, { recursive: true, force: true }));
// 64 images in batches of 32: one epoch of two steps, a second or two on one thread.
const FLAGS = ['--limit', '64', '--batch-size', '32', '--epochs', '1', '--timesteps', '20', '--threads', '1', '--no-sample-grids'];

function ddpm(...args: string[]): { code: number; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
  return { code: r.status ?? -1, err: r.stderr };
}

/** What a run killed during its first epoch leaves: its config.json, some log lines and a checkpoint temp folder. */
function killedRun(dir: string, config: unknown): void {
  mkdirSync(path.join(dir, 'checkpoints', '.step-2.tmp-999999-0123456789ab'), { recursive: true });
  writeFileSync(path.join(dir, 'checkpoints', '.step-2.tmp-999999-0123456789ab', 'model.safetensors'), 'torn');
  mkdirSync(path.join(dir, 'samples'), { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  writeFileSync(path.join(dir, 'log.jsonl'), '{"step":1,"epoch":0,"loss":0.9,"lr":0.001,"imagesPerSecond":100,"time":"2026-01-01T00:00:00.000Z"}\n');
}

for (const how of ['--resume DIR', '--resume latest --out DIR'] as const) {
  test(`${how} of a run with config.json and no checkpoint trains it from step 0 with its saved config, as a run that never stopped`, { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
    const straight = path.join(work, `straight-${how.length}`);
    const s = ddpm('train', ...FLAGS, '--seed', '3', '--out', straight);
    assert.equal(s.code, 0, s.err);
    const config = JSON.parse(readFileSync(path.join(straight, 'config.json'), 'utf8')) as { train: { seed: number } };
    assert.equal(config.train.seed, 3);

    const killed = path.join(work, `killed-${how.length}`);
    killedRun(killed, config);
    // Without a resume the folder is still refused: a fresh run never overwrites one.
    const fresh = ddpm('train', ...FLAGS, '--out', killed);
    assert.notEqual(fresh.code, 0);
    assert.match(fresh.err, /already holds a run \(config\.json exists\)/);

    const args = how === '--resume DIR' ? ['--resume', killed] : ['--resume', 'latest', '--out', killed];
    const r = ddpm('train', ...args, '--threads', '1', '--no-sample-grids');
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /has no checkpoint yet \(the run stopped before its first one\): starting it from step 0 with its saved config\.json/);
    assert.doesNotMatch(r.err, /resuming at step/);
    // Same saved config (seed 3, 20 timesteps) as the straight run: the same weights, byte for byte.
    for (const f of ['model.safetensors', 'optimizer.safetensors', 'state.json']) {
      const a = readFileSync(path.join(straight, 'checkpoints', 'step-2', f));
      const b = readFileSync(path.join(killed, 'checkpoints', 'step-2', f));
      assert.ok(a.equals(b), `step-2/${f} differs from the run that never stopped`);
    }
    assert.deepEqual(JSON.parse(readFileSync(path.join(killed, 'config.json'), 'utf8')), config);
    // The stale temp folder is gone; the stopped attempt's log is kept beside a clean new one.
    assert.deepEqual(readdirSync(path.join(killed, 'checkpoints')), ['step-2']);
    const logs = readdirSync(killed).filter((n) => /^log.*\.jsonl$/.test(n)).sort();
    assert.equal(logs.length, 2, logs.join());
    const aside = logs.find((n) => n !== 'log.jsonl')!;
    assert.match(readFileSync(path.join(killed, aside), 'utf8'), /"loss":0.9/);
    const losses = (dir: string): unknown[] => readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => {
      const e = JSON.parse(l) as { step: number; loss: number };
      return [e.step, e.loss];
    });
    assert.deepEqual(losses(killed), losses(straight));
  });
}

test('a restarted run still refuses a changed run-defining flag', { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
  const killed = path.join(work, 'killed-refuse');
  const straight = path.join(work, 'straight-refuse');
  const s = ddpm('train', ...FLAGS, '--max-steps', '1', '--out', straight);
  assert.equal(s.code, 0, s.err);
  killedRun(killed, JSON.parse(readFileSync(path.join(straight, 'config.json'), 'utf8')));
  const r = ddpm('train', '--resume', killed, '--lr', '0.5');
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--lr 0.5 differs from the resumed run's 0.001/);
  assert.ok(!existsSync(path.join(killed, 'checkpoints', 'step-2')));
});

test('a log line torn by a killed run is cut before a resume appends, and readers skip it meanwhile', () => {
  const dir = path.join(work, 'torn');
  mkdirSync(dir, { recursive: true });
  const run = new RunFolder(dir);
  const whole = '{"step":1,"epoch":0,"loss":0.5}\n{"step":2,"epoch":0,"loss":0.4}\n';
  writeFileSync(run.logPath, `${whole}{"step":3,"epo`);
  // `ddpm viz loss` and the studio read the complete lines; the fragment is not yet a record.
  assert.deepEqual(parseLossLog(readFileSync(run.logPath, 'utf8'), run.logPath).map((r) => r.step), [1, 2]);
  assert.equal(run.dropTornLogLine(), true);
  assert.equal(readFileSync(run.logPath, 'utf8'), whole);
  assert.equal(run.dropTornLogLine(), false);
  run.appendLog({ step: 3, epoch: 0, loss: 0.3 });
  assert.deepEqual(parseLossLog(readFileSync(run.logPath, 'utf8'), run.logPath).map((r) => r.step), [1, 2, 3]);
  // A bad line inside the log is still refused, naming it.
  assert.throws(() => parseLossLog(`{oops\n${whole}`, 'log.jsonl'), /log\.jsonl line 1 is not JSON/);
});
