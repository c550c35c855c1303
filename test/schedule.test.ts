// Schedule terms against an independent float64 computation (tools/reference/dli02_golden.py, numpy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linearBetas, scheduleFromBetas, makeSchedule, type ScheduleTerms, type ScheduleConfig } from '../src/diffusion/index.js';
import { readFileSync } from 'node:fs';
import { fixtureTensors } from './helpers.js';

const TERMS: [keyof ScheduleTerms, string][] = [
  ['beta', 'beta'], ['alpha', 'alpha'], ['alphaBar', 'alpha_bar'], ['alphaBarPrev', 'alpha_bar_prev'],
  ['sqrtAlphaBar', 'sqrt_alpha_bar'], ['sqrtOneMinusAlphaBar', 'sqrt_one_minus_alpha_bar'], ['sqrtRecipAlpha', 'sqrt_recip_alpha'],
  ['predNoiseCoeff', 'pred_noise_coeff'], ['posteriorVariance', 'posterior_variance'],
  ['posteriorLogVarianceClipped', 'posterior_log_variance_clipped'], ['posteriorMeanCoef1', 'posterior_mean_coef1'],
  ['posteriorMeanCoef2', 'posterior_mean_coef2'],
];

test('linear schedule terms equal numpy float64 at t = 0, 74, 149 (and everywhere) to 1e-12 relative', () => {
  const s = makeSchedule({ kind: 'linear', T: 150, betaStart: 1e-4, betaEnd: 0.02 });
  const ref = fixtureTensors('dli02_golden.safetensors');
  for (const [ours, theirs] of TERMS) {
    const expected = ref.get(`schedule.${theirs}`)!.toArray();
    const actual = s[ours] as Float64Array;
    for (const t of [0, 74, 149, ...Array.from({ length: 150 }, (_, i) => i)]) {
      const e = expected[t]!;
      const d = Math.abs(actual[t]! - e);
      assert.ok(d <= 1e-12 * Math.max(1, Math.abs(e)), `${ours}[${t}] = ${actual[t]} vs numpy ${e} (|diff| ${d.toExponential(2)})`);
    }
  }
});

test('closed-form checks: alpha-bar is the running product; posterior variance is 0 at t = 0; coefficients recombine', () => {
  const s = scheduleFromBetas(linearBetas(150));
  assert.equal(s.posteriorVariance[0], 0);
  assert.equal(s.posteriorLogVarianceClipped[0], Math.log(s.posteriorVariance[1]!));
  for (let t = 1; t < 150; t++) {
    assert.ok(Math.abs(s.alphaBar[t]! - s.alphaBar[t - 1]! * s.alpha[t]!) < 1e-15);
    // The posterior mean weights satisfy coef1 * sqrt(abar) + coef2 * sqrt(alpha) * ... : check eq. 7 via x0 = 1, xt = sqrt(abar_t)
    assert.ok(Math.abs(s.sqrtAlphaBar[t]! ** 2 + s.sqrtOneMinusAlphaBar[t]! ** 2 - 1) < 1e-12);
  }
});

test('bad schedules are refused with the offending value named', () => {
  assert.throws(() => linearBetas(0), /T must be an integer >= 1, got 0/);
  assert.throws(() => scheduleFromBetas([0.1, 1.5]), /beta at t=1 is 1.5; every beta must lie in \(0, 1\)/);
  assert.throws(() => scheduleFromBetas([0, 0.1]), /beta at t=0 is 0/);
});

// ------------------------------------------------------------------ every schedule kind against numpy
interface GoldenCase { config: ScheduleConfig; t: number[]; terms: Record<string, (number | string)[]> }
const golden = JSON.parse(readFileSync(new URL('../../test/fixtures/schedules_golden.json', import.meta.url), 'utf8')) as { cases: GoldenCase[] };

function close(actual: number, expected: number | string, what: string): void {
  const e = typeof expected === 'string' ? Number(expected) : expected;
  if (!Number.isFinite(e)) { assert.equal(actual, e, what); return; }
  const tol = 1e-9 * Math.max(1, Math.abs(e));
  assert.ok(Math.abs(actual - e) <= tol, `${what}: ${actual} vs numpy ${e}`);
}

for (const c of golden.cases) {
  const name = `${c.config.kind}${'T' in c.config ? ` T=${c.config.T}` : ''}${c.config.zeroTerminalSnr ? ' zero-terminal-SNR' : ''}${'tau' in c.config ? ` tau=${c.config.tau}` : ''}`;
  test(`schedule ${name}: terms at t = ${c.t.join(', ')} equal the independent float64 numpy computation`, () => {
    const s = makeSchedule(c.config);
    for (const [term, values] of Object.entries(c.terms)) {
      const ours = s[term as keyof ScheduleTerms] as Float64Array;
      assert.ok(ours instanceof Float64Array, `term ${term} exists`);
      c.t.forEach((t, i) => close(ours[t]!, values[i]!, `${name} ${term}[${t}]`));
    }
  });
}

test('zero-terminal-SNR rescaling: alphabar_{T-1} = 0 exactly, alphabar_0 unchanged, the last beta is 1', () => {
  const base = makeSchedule({ kind: 'cosine', T: 100, s: 0.008 });
  const z = makeSchedule({ kind: 'cosine', T: 100, s: 0.008, zeroTerminalSnr: true });
  assert.equal(z.alphaBar[99], 0);
  assert.equal(z.beta[99], 1);
  assert.ok(Math.abs(z.alphaBar[0]! - base.alphaBar[0]!) < 1e-15);
  assert.equal(z.logSnr[99], -Infinity);
  for (let t = 1; t < 100; t++) assert.ok(z.alphaBar[t]! < z.alphaBar[t - 1]!, `alphabar decreases at t=${t}`);
});

test('the cosine schedule clips its betas at 0.999 and SNR decreases monotonically for every kind', () => {
  const cos = makeSchedule({ kind: 'cosine', T: 1000, s: 0.008 });
  assert.equal(Math.max(...cos.beta), 0.999);
  for (const cfg of [cos, makeSchedule({ kind: 'sigmoid', T: 300, start: -3, end: 3, tau: 1 }), makeSchedule({ kind: 'scaled-linear', T: 300, betaStart: 0.00085, betaEnd: 0.012 })]) {
    for (let t = 1; t < cfg.T; t++) assert.ok(cfg.snr[t]! < cfg.snr[t - 1]!, `snr decreases at t=${t}`);
  }
});
