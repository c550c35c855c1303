import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArgumentError } from '../src/tensor/index.js';
import { CONSTANT_LR, type LrSchedule, lrAt, validateLrSchedule } from '../src/train/lr-schedule.js';

/**
 * transformers.optimization, as written there (v4.40+): _get_cosine_schedule_with_warmup_lr_lambda
 * with num_cycles 0.5 and min_lr_rate, and the constant one; LambdaLR gives base_lr * lambda(step).
 */
function transformersLambda(kind: 'constant' | 'cosine', step: number, warmup: number, total: number, minLrRate: number): number {
  if (step < warmup) return step / Math.max(1, warmup);
  if (kind === 'constant') return 1;
  const progress = (step - warmup) / Math.max(1, total - warmup);
  let factor = 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress));
  factor = factor * (1 - minLrRate) + minLrRate;
  return Math.max(0, factor);
}

const cosine: LrSchedule = { kind: 'cosine', warmupSteps: 10, totalSteps: 110, minLr: 1e-4 };
const argError = (re: RegExp) => (e: unknown): true => (e instanceof ArgumentError && re.test(e.message) ? true : assert.fail(`wrong error: ${String(e)}`));
const near = (a: number, e: number, what: string): void => assert.ok(Math.abs(a - e) <= 1e-15 + 1e-12 * Math.abs(e), `${what}: ${a}, expected ${e}`);

test('cosine with warm-up: values at chosen steps from the closed form', () => {
  near(lrAt(1e-3, 0, cosine), 0, 'step 0 (the first optimizer step runs at 0 during warm-up)');
  near(lrAt(1e-3, 1, cosine), 1e-4, 'step 1');
  near(lrAt(1e-3, 5, cosine), 5e-4, 'step 5');
  near(lrAt(1e-3, 10, cosine), 1e-3, 'end of warm-up');
  near(lrAt(1e-3, 35, cosine), 1e-3 * (0.1 + 0.9 * 0.5 * (1 + Math.SQRT1_2)), 'a quarter of the cosine');
  near(lrAt(1e-3, 60, cosine), 5.5e-4, 'half way: (base + minLr) / 2');
  near(lrAt(1e-3, 110, cosine), 1e-4, 'totalSteps');
  near(lrAt(1e-3, 111, cosine), 1e-4, 'past totalSteps: held at minLr');
  near(lrAt(1e-3, 10_000, cosine), 1e-4, 'far past totalSteps');
});

test('matches transformers\' lambda step for step up to totalSteps (where transformers\' cosine would rise again)', () => {
  for (const [w, total, base, minLr] of [[10, 110, 1e-3, 1e-4], [0, 50, 2e-4, 0], [7, 7, 1e-3, 1e-5], [1, 3, 0.5, 0.25]] as const) {
    const s: LrSchedule = { kind: 'cosine', warmupSteps: w, totalSteps: total, minLr };
    for (let step = 0; step <= total; step++) {
      assert.equal(lrAt(base, step, s), base * transformersLambda('cosine', step, w, total, minLr / base), `cosine W=${w} T=${total} step ${step}`);
    }
    const past = transformersLambda('cosine', total + Math.max(1, total - w), w, total, minLr / base);
    assert.ok(past * base >= lrAt(base, total + Math.max(1, total - w), s), 'transformers rises past totalSteps; we do not');
  }
  for (const w of [0, 1, 4]) {
    const s: LrSchedule = { kind: 'constant', warmupSteps: w, totalSteps: 20, minLr: 0 };
    for (let step = 0; step <= 40; step++) assert.equal(lrAt(3e-4, step, s), 3e-4 * transformersLambda('constant', step, w, 20, 0), `constant W=${w} step ${step}`);
  }
});

test('constant: warm-up then the base rate; CONSTANT_LR is the notebook\'s fixed rate', () => {
  const s: LrSchedule = { kind: 'constant', warmupSteps: 4, totalSteps: 100, minLr: 0 };
  assert.deepEqual([0, 1, 2, 3, 4, 99, 100, 5000].map((k) => lrAt(1e-3, k, s)), [0, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3, 1e-3]);
  assert.deepEqual([0, 1, 1e6].map((k) => lrAt(1e-3, k, CONSTANT_LR)), [1e-3, 1e-3, 1e-3]);
  const noWarmup: LrSchedule = { kind: 'cosine', warmupSteps: 0, totalSteps: 10, minLr: 0 };
  assert.equal(lrAt(1e-3, 0, noWarmup), 1e-3);
  assert.equal(lrAt(1e-3, 10, noWarmup), 0);
});

test('refuses schedules that cannot be followed, naming the field', () => {
  const bad = (patch: Partial<LrSchedule>, base = 1e-3): (() => unknown) => () => lrAt(base, 0, { ...cosine, ...patch });
  assert.throws(bad({ warmupSteps: -1 }), argError(/^lr schedule: warmupSteps must be an integer >= 0, got -1$/));
  assert.throws(bad({ warmupSteps: 2.5 }), argError(/warmupSteps must be an integer >= 0, got 2\.5/));
  assert.throws(bad({ warmupSteps: 200 }), argError(/warmupSteps 200 is more than totalSteps 110; lower the warm-up or train for longer/));
  assert.throws(bad({ totalSteps: 0, warmupSteps: 0 }), argError(/totalSteps must be an integer >= 1, got 0/));
  assert.throws(bad({ totalSteps: Number.POSITIVE_INFINITY }), argError(/totalSteps must be an integer >= 1, got Infinity/));
  assert.throws(bad({ minLr: 2e-3 }), argError(/minLr 0\.002 is above the base lr 0\.001; expected minLr <= lr/));
  assert.throws(bad({ minLr: -1e-5 }), argError(/minLr must be a finite number >= 0, got -0\.00001/));
  assert.throws(bad({ minLr: Number.NaN }), argError(/minLr must be a finite number >= 0, got NaN/));
  assert.throws(bad({}, Number.NaN), argError(/base lr must be a finite number >= 0, got NaN/));
  assert.throws(bad({}, Number.POSITIVE_INFINITY), argError(/base lr must be a finite number >= 0, got Infinity/));
  assert.throws(bad({ kind: 'linear' as 'cosine' }), argError(/kind must be 'constant' or 'cosine', got "linear"/));
  // Every problem at once, so one run of the CLI shows them all.
  assert.throws(bad({ warmupSteps: -2, minLr: Number.NaN }), argError(/warmupSteps must be .*; minLr must be/));
  assert.throws(() => lrAt(1e-3, -1, cosine), argError(/step must be an integer >= 0, got -1/));
  assert.throws(() => lrAt(1e-3, 0.5, cosine), argError(/step must be an integer >= 0, got 0\.5/));
  assert.throws(() => validateLrSchedule(1e-3, { ...cosine, warmupSteps: -1 }, '--lr-schedule'), argError(/^--lr-schedule: warmupSteps/));
  validateLrSchedule(1e-3, cosine);
});
