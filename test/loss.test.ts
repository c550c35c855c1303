// Training losses for each objective and weighting: an oracle that knows x_0 scores (nearly) zero
// whatever it is asked to predict; min-SNR-gamma weights follow their closed form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, randn, randint, randnLike, mseLoss, tidy, ArgumentError, type Tensor } from '../src/tensor/index.js';
import {
  Diffusion, makeSchedule, diffusionLoss, simpleLoss, minSnrWeight, objectiveTarget, epsFromX0, OBJECTIVES,
} from '../src/diffusion/index.js';

const d = new Diffusion(makeSchedule({ kind: 'cosine', T: 200, s: 0.008 }));

/** A model that knows x_0 and outputs the exact target of its objective. */
function oracle(x0: Tensor, objective: (typeof OBJECTIVES)[number]) {
  return (xt: Tensor, t: Tensor): Tensor => {
    const a = d.extract('sqrtAlphaBar', t);
    const s = d.extract('sqrtOneMinusAlphaBar', t);
    return objectiveTarget(objective, x0, epsFromX0(xt, x0, a, s), a, s);
  };
}

for (const objective of OBJECTIVES) {
  for (const weighting of ['simple', 'min-snr'] as const) {
    test(`${objective} objective, ${weighting} weighting: an oracle's loss is ~0 and a wrong model's is not`, () => {
      tidy(() => {
        const x0 = randn([8, 1, 4, 4], { generator: new Generator(1) });
        const o = { objective, weighting, generator: new Generator(2) };
        const perfect = diffusionLoss(d, oracle(x0, objective), x0, o).item();
        assert.ok(perfect < 1e-6, `oracle loss ${perfect}`);
        const zero = diffusionLoss(d, (xt) => xt.mul(0), x0, { ...o, generator: new Generator(2) }).item();
        assert.ok(zero > 1e-2, `a zero model's loss ${zero}`);
      });
    });
  }
}

test('simpleLoss is diffusionLoss with the eps objective and draws the same t and noise', () => {
  tidy(() => {
    const x0 = randn([4, 1, 4, 4], { generator: new Generator(3) });
    const model = (xt: Tensor): Tensor => xt.mul(0.5);
    const a = simpleLoss(d, model, x0, new Generator(9)).item();
    const b = diffusionLoss(d, model, x0, { objective: 'eps', generator: new Generator(9) }).item();
    assert.equal(a, b);
  });
});

test('min-SNR-gamma weights: min(SNR, gamma)/SNR for eps, min(SNR, gamma) for x0, min(SNR, gamma)/(SNR + 1) for v', () => {
  assert.equal(minSnrWeight(20, 'eps', 5), 0.25);
  assert.equal(minSnrWeight(2, 'eps', 5), 1);
  assert.equal(minSnrWeight(20, 'x0', 5), 5);
  assert.equal(minSnrWeight(2, 'x0', 5), 2);
  assert.equal(minSnrWeight(20, 'v', 5), 5 / 21);
  assert.equal(minSnrWeight(0, 'v', 5), 0);
});

test('min-SNR weighting equals the per-example weighted MSE computed by hand', () => {
  tidy(() => {
    const x0 = randn([6, 1, 3, 3], { generator: new Generator(4) });
    const model = (xt: Tensor): Tensor => xt.mul(0.3);
    // Replay the loss's draws: t first, then the noise.
    const g = new Generator(5);
    const ours = diffusionLoss(d, model, x0, { objective: 'v', weighting: 'min-snr', minSnrGamma: 5, generator: g }).item();
    const g2 = new Generator(5);

    const t = randint(0, d.T, [6], { generator: g2 });
    const noise = randnLike(x0, g2);
    const { xt } = d.qSample(x0, t, noise);
    const a = d.extract('sqrtAlphaBar', t);
    const s = d.extract('sqrtOneMinusAlphaBar', t);
    const target = objectiveTarget('v', x0, noise, a, s);
    const per = mseLoss(model(xt), target, 'none').mean([1, 2, 3]).toArray();
    const ts = t.toArray();
    const expected = per.reduce((acc, l, i) => acc + l * minSnrWeight(d.terms.snr[ts[i]!]!, 'v', 5), 0) / 6;
    assert.ok(Math.abs(ours - expected) < 1e-6 * Math.max(1, expected), `${ours} vs ${expected}`);
  });
});

test('offset noise changes the loss draws; a bad gamma is refused', () => {
  tidy(() => {
    const x0 = randn([4, 1, 4, 4], { generator: new Generator(6) });
    const model = (xt: Tensor): Tensor => xt.mul(0);
    const plain = diffusionLoss(d, model, x0, { generator: new Generator(7) }).item();
    const offset = diffusionLoss(d, model, x0, { generator: new Generator(7), offsetNoise: 0.5 }).item();
    assert.notEqual(plain, offset);
    assert.throws(() => diffusionLoss(d, model, x0, { weighting: 'min-snr', minSnrGamma: 0 }), (e: unknown) => e instanceof ArgumentError && /min-SNR gamma must be > 0, got 0/.test(e.message));
  });
});
