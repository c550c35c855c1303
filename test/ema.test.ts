import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  type Tensor, ArgumentError, keep, liveTensors, manualSeed, noGrad, randn, tensor, tidy, zeros,
} from '../src/tensor/index.js';
import { BatchNorm2d, Conv2d, Module, Sequential } from '../src/nn/index.js';
import { loadTensors, serializeTensors } from '../src/io/tensors.js';
import { EMA } from '../src/train/ema.js';

/** A float32 and a float64 parameter, a frozen one, and an int64 buffer: every path of update(). */
class Toy extends Module {
  readonly w: Tensor;
  readonly v: Tensor;
  readonly frozen: Tensor;
  readonly count: Tensor;
  constructor() {
    super();
    this.w = this.registerParameter('w', tensor([1, 2, 3]));
    this.v = this.registerParameter('v', tensor([10, -10], [2], { dtype: 'float64' }));
    this.frozen = this.registerParameter('frozen', tensor([5]));
    this.frozen.requiresGrad_(false);
    this.count = this.registerBuffer('count', zeros([], { dtype: 'int64' }));
  }
  set(w: number[], v: number[], frozen: number, count: number): void {
    tidy(() => noGrad(() => {
      this.w.copy_(tensor(w));
      this.v.copy_(tensor(v, [2], { dtype: 'float64' }));
      this.frozen.copy_(tensor([frozen]));
      this.count.copy_(tensor([count], [], { dtype: 'int64' }));
    }));
  }
}

const values = (ema: EMA, name: string): number[] => ema.stateDict().get(name)!.toArray();
const close = (what: string, a: number[], e: number[], tol = 1e-5): void =>
  a.forEach((x, i) => assert.ok(Math.abs(x - e[i]!) <= tol * Math.max(1, Math.abs(e[i]!)), `${what}[${i}] = ${x}, expected ${e[i]}`));
const argError = (re: RegExp) => (e: unknown): true => (e instanceof ArgumentError && re.test(e.message) ? true : assert.fail(`wrong error: ${String(e)}`));

function convNet(): Sequential {
  manualSeed(0);
  return new Sequential(new Conv2d(1, 4, 3, { padding: 1 }), new BatchNorm2d(4));
}
const snapshot = (m: Module): Map<string, number[]> => new Map([...m.stateDict()].map(([k, t]) => [k, t.toArray()]));

test('decay warms up as min(decay, (1 + step) / (10 + step))', () => {
  const m = new Toy();
  const ema = new EMA(m);
  assert.equal(ema.decay, 0.9999);
  assert.equal(ema.decayAt(0), 0.1);
  assert.equal(ema.decayAt(1), 2 / 11);
  assert.equal(ema.decayAt(9), 10 / 19);
  assert.equal(ema.decayAt(990), 991 / 1000);
  assert.equal(ema.decayAt(89990), 0.9999); // (1 + t) / (10 + t) reaches 0.9999 at t = 89990
  assert.equal(ema.decayAt(10 ** 7), 0.9999);
  const half = new EMA(m, { decay: 0.5 });
  assert.equal(half.decayAt(100), 0.5);
  half.dispose();
  assert.throws(() => ema.decayAt(-1), argError(/step must be a non-negative integer, got -1/));
  assert.throws(() => ema.decayAt(1.5), argError(/got 1\.5/));
  assert.throws(() => new EMA(m, { decay: 1.5 }), argError(/decay must be a number in \[0, 1\], got 1\.5/));
  assert.throws(() => new EMA(m, { decay: Number.NaN }), argError(/got NaN/));
  ema.dispose();
  m.dispose();
});

test('update: shadow <- d shadow + (1 - d) param in float32, frozen parameters and buffers copied', () => {
  const m = new Toy();
  const ema = new EMA(m);
  assert.equal(ema.stateDict().get('v')!.dtype, 'float32'); // float64 parameter, float32 shadow
  assert.deepEqual([...ema.stateDict().keys()], ['w', 'v', 'frozen', 'count']);
  m.set([2, 4, 6], [20, 0], 7, 3);
  assert.equal(ema.update(m, 0), 0.1);
  close('w after 1', values(ema, 'w'), [0.1 * 1 + 0.9 * 2, 0.1 * 2 + 0.9 * 4, 0.1 * 3 + 0.9 * 6]);
  close('v after 1', values(ema, 'v'), [0.1 * 10 + 0.9 * 20, 0.1 * -10 + 0.9 * 0]);
  assert.deepEqual(values(ema, 'frozen'), [7]);
  assert.deepEqual(values(ema, 'count'), [3]);
  const w1 = values(ema, 'w');
  m.set([0, 0, 0], [1, 1], 8, 4);
  assert.equal(ema.update(m, 5), 6 / 15);
  close('w after 2', values(ema, 'w'), w1.map((s) => 0.4 * s));
  assert.deepEqual([values(ema, 'frozen'), values(ema, 'count')], [[8], [4]]);
  assert.deepEqual(ema.meta(), { decay: 0.9999, updates: 2 });
  assert.equal(JSON.stringify({ ema }), '{"ema":{"decay":0.9999,"updates":2}}');
  // The model's own weights are never touched by update().
  assert.deepEqual(m.w.toArray(), [0, 0, 0]);
  ema.dispose();
  m.dispose();
});

test('BatchNorm running statistics follow the model at each update', () => {
  const net = convNet();
  const ema = new EMA(net, { decay: 0.999 });
  tidy(() => noGrad(() => { net.forward(randn([8, 1, 5, 5]).mul(3).add(2)); }));
  assert.notDeepEqual(net.stateDict().get('1.running_mean')!.toArray(), values(ema, '1.running_mean'));
  ema.update(net, 100);
  for (const k of ['1.running_mean', '1.running_var', '1.num_batches_tracked']) {
    assert.deepEqual(values(ema, k), net.stateDict().get(k)!.toArray(), k);
  }
  assert.equal(ema.stateDict().get('1.num_batches_tracked')!.dtype, 'int64');
  ema.dispose();
  net.dispose();
});

test('stateDict and meta round-trip through safetensors into a fresh EMA', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ddpm-ema-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const net = convNet();
  const ema = new EMA(net, { decay: 0.99 });
  for (let s = 0; s < 3; s++) {
    tidy(() => noGrad(() => { for (const p of net.parameters()) p.add_(randn(p.shape)); net.forward(randn([2, 1, 4, 4])); }));
    ema.update(net, s);
  }
  const file = join(dir, 'ema.safetensors');
  writeFileSync(file, serializeTensors(ema.stateDict()));
  const meta = JSON.parse(JSON.stringify(ema)) as ReturnType<EMA['meta']>;
  const { tensors } = loadTensors(file);
  const twin = convNet();
  const other = new EMA(twin, { decay: 0.99 });
  other.loadStateDict(tensors, meta, file);
  assert.deepEqual(other.meta(), { decay: 0.99, updates: 3 });
  for (const [k, v] of ema.stateDict()) assert.deepEqual(values(other, k), v.toArray(), k);
  for (const x of tensors.values()) x.dispose();
  for (const e of [ema, other]) e.dispose();
  for (const m of [net, twin]) m.dispose();
});

test('loadStateDict is all or nothing: names, shapes, dtypes and meta checked before any copy', () => {
  const net = convNet();
  const ema = new EMA(net);
  const before = new Map([...ema.stateDict()].map(([k, v]) => [k, v.toArray()]));
  const good = (): Map<string, Tensor> => tidy(() => new Map([...ema.stateDict()].map(([k, v]) => [k, v.add(1)])));
  const cases: [string, (s: Map<string, Tensor>) => void, RegExp, { decay: number; updates: number } | undefined][] = [
    ['a wrong shape', (s) => s.set('0.weight', keep(zeros([4, 1, 2, 2]))), /0\.weight: shape \[4, 1, 2, 2\] in saved EMA, expected \[4, 1, 3, 3\]/, undefined],
    ['a missing tensor', (s) => s.delete('1.running_var'), /missing 1 tensor\(s\): 1\.running_var/, undefined],
    ['an extra tensor', (s) => s.set('2.weight', keep(zeros([1]))), /unexpected 1 tensor\(s\): 2\.weight/, undefined],
    ['an integer parameter', (s) => s.set('0.bias', keep(zeros([4], { dtype: 'int64' }))), /0\.bias: dtype int64 in saved EMA, expected a floating dtype/, undefined],
    ['a float buffer counter', (s) => s.set('1.num_batches_tracked', keep(zeros([]))), /1\.num_batches_tracked: dtype float32 in saved EMA, expected int64/, undefined],
    ['another decay', () => undefined, /decay 0\.999 in saved EMA, this EMA has 0\.9999/, { decay: 0.999, updates: 5 }],
    ['a negative update count', () => undefined, /updates must be a non-negative integer, got -1/, { decay: 0.9999, updates: -1 }],
  ];
  for (const [what, spoil, re, meta] of cases) {
    const state = good();
    const made = [...state.values()];
    spoil(state);
    assert.throws(() => ema.loadStateDict(state, meta, 'saved EMA'), argError(new RegExp(`cannot load saved EMA into the EMA: .*${re.source}`)), what);
    for (const [k, v] of ema.stateDict()) assert.deepEqual(v.toArray(), before.get(k), `${what}: ${k} changed`);
    assert.equal(ema.updates, 0, what);
    for (const v of new Set([...made, ...state.values()])) v.dispose();
  }
  const state = good();
  ema.loadStateDict(state, { decay: 0.9999, updates: 7 });
  assert.equal(ema.updates, 7);
  assert.deepEqual(values(ema, '0.bias'), before.get('0.bias')!.map((x) => Math.fround(x + 1)));
  for (const v of state.values()) v.dispose();
  ema.dispose();
  net.dispose();
});

test('applyTo/restore and withWeights swap the EMA weights in and the exact original weights back', () => {
  const net = convNet();
  const ema = new EMA(net, { decay: 0.9 });
  tidy(() => noGrad(() => { for (const p of net.parameters()) p.add_(randn(p.shape)); net.forward(randn([2, 1, 4, 4])); }));
  ema.update(net, 50);
  tidy(() => noGrad(() => { for (const p of net.parameters()) p.mul_(1.37); net.forward(randn([2, 1, 4, 4])); }));
  const own = snapshot(net);
  const shadow = new Map([...ema.stateDict()].map(([k, v]) => [k, v.toArray()]));
  assert.notDeepEqual(own.get('0.weight'), shadow.get('0.weight'));

  ema.applyTo(net);
  assert.deepEqual(snapshot(net), shadow);
  assert.ok(net.parameters().every((p) => p.requiresGrad), 'parameters still require grad while swapped');
  assert.throws(() => ema.applyTo(net), argError(/already swapped in; call restore\(model\) first/));
  assert.throws(() => ema.update(net, 51), argError(/swapped into the model.*restore\(model\) first/));
  ema.restore(net);
  assert.deepEqual(snapshot(net), own); // bit for bit
  assert.throws(() => ema.restore(net), argError(/nothing to restore/));

  const seen = ema.withWeights(net, () => net.stateDict().get('0.weight')!.toArray());
  assert.deepEqual(seen, shadow.get('0.weight'));
  assert.deepEqual(snapshot(net), own);
  assert.throws(() => ema.withWeights(net, () => { throw new Error('sampling failed'); }), /sampling failed/);
  assert.deepEqual(snapshot(net), own, 'restored after fn threw');
  ema.dispose();
  net.dispose();
});

test('refuses a model that is not the one the EMA was made from, changing nothing', () => {
  const net = convNet();
  const ema = new EMA(net);
  const other = new Sequential(new Conv2d(1, 4, 5, { padding: 2 }), new BatchNorm2d(4));
  const before = new Map([...ema.stateDict()].map(([k, v]) => [k, v.toArray()]));
  assert.throws(() => ema.update(other, 0), argError(/EMA\.update: the model does not match.*0\.weight: shape \[4, 1, 5, 5\] in the model, \[4, 1, 3, 3\] in the EMA/));
  const toy = new Toy();
  assert.throws(() => ema.applyTo(toy), argError(/EMA\.applyTo: the model does not match.*the model has 3 parameters, the EMA 4.*parameter w is not in the EMA/));
  for (const [k, v] of ema.stateDict()) assert.deepEqual(v.toArray(), before.get(k), k);
  ema.dispose();
  assert.throws(() => ema.update(net, 0), argError(/EMA\.update: this EMA was disposed/));
  for (const m of [net, other, toy]) m.dispose();
});

test('live tensors stay flat over 100 updates and 100 swaps', () => {
  const net = convNet();
  const ema = new EMA(net);
  const x = keep(randn([2, 1, 4, 4])); // (B, C, H, W)
  const cycle = (s: number): void => {
    tidy(() => noGrad(() => { net.forward(x); for (const p of net.parameters()) p.add_(randn(p.shape), 0.01); }));
    ema.update(net, s);
    ema.withWeights(net, () => tidy(() => noGrad(() => net.forward(x).sum().item())));
  };
  cycle(0);
  const before = liveTensors();
  for (let s = 1; s <= 100; s++) cycle(s);
  assert.equal(liveTensors(), before, `live tensors went from ${before} to ${liveTensors()} over 100 updates`);
  const beforeDispose = liveTensors();
  ema.dispose();
  assert.equal(liveTensors(), beforeDispose - net.stateDict().size, 'dispose frees one shadow per parameter and buffer');
  x.dispose();
  net.dispose();
});
