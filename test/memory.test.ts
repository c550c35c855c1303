// Memory discipline: tidy() scopes keep a long training loop flat (no handle or RSS growth),
// free what they should and keep what they return; disposal is idempotent and use-after-dispose
// fails loudly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Tensor, keep, liveTensors, ones, randn, tidy, manualSeed } from '../src/tensor/index.js';
import { mseLoss } from '../src/tensor/functional.js';
import { Adam, AdamW, BatchNorm2d, Conv2d, ReLU, Sequential } from '../src/nn/index.js';

// A full collection before each RSS reading, so V8's garbage does not pass for a native leak.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
function rssAfterGc(): number {
  gc();
  return process.memoryUsage().rss;
}

// The addon's tensor handles have basic Node-API finalizers (run during GC), so handles do not
// pile up even in a loop that never yields to the event loop; both variants below check that.

function trainingLoop(yieldEvery: number) {
  return async () => {
    manualSeed(0);
    const net = new Sequential(
      new Conv2d(1, 8, 3, { padding: 1 }), new BatchNorm2d(8), new ReLU(),
      new Conv2d(8, 8, 3, { padding: 1 }), new BatchNorm2d(8), new ReLU(),
      new Conv2d(8, 1, 3, { padding: 1 }),
    );
    const opt = new Adam(net.namedParameters(), { lr: 1e-3 });
    const x = keep(randn([4, 1, 8, 8])); // (B, C, H, W)
    const target = keep(tidy(() => x.mul(0.5).add(0.1)));
    const step = (): number => tidy(() => {
      opt.zeroGrad();
      const loss = mseLoss(net.forward(x), target);
      loss.backward();
      opt.step();
      return loss.item();
    });

    const STEPS = 2000;
    const WARMUP = 200; // Adam's moments exist after step 1; allocator and V8 heap settle by here
    const losses: number[] = [];
    let liveAfterWarmup = 0;
    let rssAfterWarmup = 0;
    for (let s = 1; s <= STEPS; s++) {
      losses.push(step());
      if (s === WARMUP) {
        liveAfterWarmup = liveTensors();
        rssAfterWarmup = rssAfterGc();
      }
      if (yieldEvery > 0 && s % yieldEvery === 0) await new Promise((r) => setImmediate(r));
    }
    const liveEnd = liveTensors();
    const rssEnd = rssAfterGc();
    try {
      assert.equal(liveEnd, liveAfterWarmup, `live tensors grew from ${liveAfterWarmup} after ${WARMUP} steps to ${liveEnd} after ${STEPS}`);
      // libtorch alone makes RSS ~220 MiB, so 10% would let ~12 KiB/step leak by: also bound the
      // absolute growth (measured here: +3 to +4.5 MiB of allocator warm-up when yielding, ~+21 MiB when not).
      const growth = rssEnd - rssAfterWarmup;
      const where = `from ${(rssAfterWarmup / 2 ** 20).toFixed(1)} MiB after ${WARMUP} steps to ${(rssEnd / 2 ** 20).toFixed(1)} MiB after ${STEPS}`;
      assert.ok(growth <= 0.1 * rssAfterWarmup, `RSS grew ${((100 * growth) / rssAfterWarmup).toFixed(1)}% (${where}); limit 10%`);
      assert.ok(growth <= 10 * 2 ** 20, `RSS grew ${(growth / 2 ** 20).toFixed(1)} MiB (${where}); limit 10 MiB`);
      assert.ok(losses.every(Number.isFinite), 'losses stay finite');
      assert.ok(losses[STEPS - 1]! < losses[0]!, `loss fell (${losses[0]} -> ${losses[STEPS - 1]})`);
    } finally {
      for (const t of opt.stateDict().tensors.values()) t.dispose();
      net.dispose();
      x.dispose();
      target.dispose();
    }
  };
}

test('2,000 Adam steps of a conv/BatchNorm/ReLU net in tidy, yielding as the trainer does: live tensors and RSS flat', trainingLoop(4));

test('the same 2,000 steps without ever yielding: live tensors and RSS flat', trainingLoop(0));

test('optimizer steps outside tidy leave no handles behind (Adam, Adam with weight decay, AdamW)', () => {
  const p = ones([3]).requiresGrad_(true);
  const grad = ones([3]);
  for (const [name, opt] of [
    ['Adam', new Adam([['p', p]])], ['Adam with weightDecay', new Adam([['p', p]], { weightDecay: 0.1 })], ['AdamW', new AdamW([['p', p]])],
  ] as const) {
    p.grad = grad;
    opt.step(); // creates the moments
    const before = liveTensors();
    for (let i = 0; i < 10; i++) opt.step();
    assert.equal(liveTensors(), before, `${name}: 10 steps left ${liveTensors() - before} handles`);
    for (const t of opt.stateDict().tensors.values()) t.dispose();
  }
  p.dispose();
  grad.dispose();
});

test('tidy frees intermediates and keeps a returned tensor', () => {
  const before = liveTensors();
  let inner: Tensor | undefined;
  const out = tidy(() => {
    inner = ones([2, 2]);
    return inner.add(1).mul(2); // (2, 2): ones, add's result freed; mul's kept
  });
  assert.equal(liveTensors(), before + 1);
  assert.ok(inner!.isDisposed);
  assert.deepEqual(out.toArray(), [4, 4, 4, 4]);
  out.dispose();
  assert.equal(liveTensors(), before);
});

test('tidy keeps tensors reachable from returned arrays, plain objects and maps', () => {
  const before = liveTensors();
  const out = tidy(() => {
    const a = ones([1]);
    const b = a.add(1);
    const c = b.add(1);
    const d = c.add(1);
    a.add(100); // dropped: freed
    return { first: a, list: [b, { deep: c }], byName: new Map([['d', d]]) };
  });
  assert.equal(liveTensors(), before + 4);
  const kept = [out.first, out.list[0] as Tensor, (out.list[1] as { deep: Tensor }).deep, out.byName.get('d')!];
  assert.deepEqual(kept.map((t) => t.item()), [1, 2, 3, 4]);
  for (const t of kept) t.dispose();
  assert.equal(liveTensors(), before);
});

test('nested tidy: the inner result joins the outer scope and is freed there unless returned', () => {
  const before = liveTensors();
  let fromInner: Tensor | undefined;
  const out = tidy(() => {
    fromInner = tidy(() => ones([3]).mul(3));
    assert.ok(!fromInner.isDisposed);
    return fromInner.sum();
  });
  assert.ok(fromInner!.isDisposed);
  assert.equal(out.item(), 9);
  out.dispose();
  assert.equal(liveTensors(), before);
});

test('keep() takes a tensor out of tidy; a throwing fn still frees its tensors', () => {
  const before = liveTensors();
  let kept: Tensor | undefined;
  tidy(() => { kept = keep(ones([2])); ones([2]); });
  assert.ok(kept && !kept.isDisposed);
  kept.dispose();
  assert.throws(() => tidy(() => { ones([5]); throw new Error('boom'); }), /boom/);
  assert.equal(liveTensors(), before);
});

test('dispose twice is safe and releases the handle once', () => {
  const before = liveTensors();
  const t = ones([4]);
  assert.equal(liveTensors(), before + 1);
  t.dispose();
  t.dispose();
  assert.ok(t.isDisposed);
  assert.equal(liveTensors(), before);
});

test('using a disposed tensor throws a clear error', () => {
  const t = ones([2, 3]);
  const other = ones([2, 3]);
  t.dispose();
  const disposed = /disposed and cannot be used/;
  assert.throws(() => t.add(1), disposed);
  assert.throws(() => t.shape, disposed);
  assert.throws(() => t.dataSync(), disposed);
  assert.throws(() => other.add(t), disposed); // as an argument, too
  other.dispose();
});

test('Sequential frees each intermediate output once the next layer has it, keeping input, output and gradients', () => tidy(() => {
  manualSeed(0);
  const seq = new Sequential(new Conv2d(2, 4, 3, { padding: 1 }), new BatchNorm2d(4), new ReLU(), new Conv2d(4, 1, 1));
  const x = randn([3, 2, 5, 5]);
  const before = liveTensors();
  const y = seq.forward(x);
  // The Conv2d, BatchNorm2d and ReLU outputs are gone; the output and the 1 BatchNorm adds to its
  // step counter (freed with the scope) are left.
  assert.equal(liveTensors(), before + 2, 'only the output and the counter increment are left');
  assert.ok(!x.isDisposed, 'the input is the caller\'s');
  y.square().mean().backward();
  const grads = seq.parameters().map((p) => p.grad!.toArray());
  for (const p of seq.parameters()) p.grad = null;
  // The same layers chained by hand, nothing freed early: the same output and gradients.
  let h = x;
  for (const l of seq.layers) h = l.forward(h);
  assert.deepEqual(h.toArray(), y.toArray());
  h.square().mean().backward();
  seq.parameters().forEach((p, i) => assert.deepEqual(p.grad!.toArray(), grads[i], `gradient ${i}`));
  seq.dispose();
}));
