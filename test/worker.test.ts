// The addon in worker_threads: each worker loads it, trains a tiny net with Adam and posts its
// losses back; two workers can train at once. The worker is an inline ESM module (a data: URL)
// importing the compiled sources by absolute file URL, so no helper file lands in dist/test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { ones, tidy } from '../src/tensor/index.js';

const url = (rel: string): string => new URL(rel, import.meta.url).href; // from dist/test
const WORKER_SOURCE = `
import { parentPort, workerData, threadId } from 'node:worker_threads';
import { Generator, keep, randn, tidy } from '${url('../src/tensor/index.js')}';
import { mseLoss } from '${url('../src/tensor/functional.js')}';
import { Adam, Linear, ReLU, Sequential } from '${url('../src/nn/index.js')}';

// A per-worker generator for the data: the default generator is one per process, shared by threads.
const g = new Generator(workerData.seed);
const net = new Sequential(new Linear(4, 16), new ReLU(), new Linear(16, 1));
const opt = new Adam(net.namedParameters(), { lr: 0.05 });
const x = keep(randn([32, 4], { generator: g }));                           // (N, 4)
const y = keep(tidy(() => x.matmul(randn([4, 1], { generator: g })).tanh())); // (N, 1)
const losses = [];
for (let i = 0; i < workerData.steps; i++) {
  losses.push(tidy(() => {
    opt.zeroGrad();
    const loss = mseLoss(net.forward(x), y);
    loss.backward();
    opt.step();
    return loss.item();
  }));
}
net.dispose();
x.dispose();
y.dispose();
parentPort.postMessage({ threadId, losses });
`;
const WORKER_URL = new URL(`data:text/javascript,${encodeURIComponent(WORKER_SOURCE)}`);

interface Result { threadId: number; losses: number[] }

function train(seed: number, steps: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER_URL, { workerData: { seed, steps } });
    let result: Result | undefined;
    w.once('message', (m: Result) => { result = m; });
    w.once('error', reject);
    w.once('exit', (code) => {
      if (code !== 0) reject(new Error(`worker (seed ${seed}) exited with code ${code}`));
      else if (!result) reject(new Error(`worker (seed ${seed}) exited without posting its losses`));
      else resolve(result);
    });
  });
}

function assertLearns(r: Result, steps: number, who: string): void {
  assert.equal(r.losses.length, steps, `${who}: one loss per step`);
  assert.ok(r.losses.every(Number.isFinite), `${who}: losses are finite: ${r.losses.join(', ')}`);
  const [first, last] = [r.losses[0]!, r.losses[steps - 1]!];
  assert.ok(last < 0.5 * first, `${who}: loss should at least halve in ${steps} Adam steps, went ${first} -> ${last}`);
}

test('a worker thread loads the addon and trains a tiny net with Adam; losses fall', async () => {
  const r = await train(1, 30);
  assert.ok(r.threadId > 0, 'ran off the main thread');
  assertLearns(r, 30, 'worker');
});

test('two workers train at once, independently', async () => {
  const [a, b] = await Promise.all([train(2, 30), train(3, 30)]);
  assert.notEqual(a.threadId, b.threadId);
  assertLearns(a, 30, 'worker A');
  assertLearns(b, 30, 'worker B');
  assert.notDeepEqual(a.losses, b.losses, 'different seeds, different runs');
});

test('the main thread still computes after workers have come and gone', () => {
  assert.equal(tidy(() => ones([2, 2]).sum().item()), 4);
});
