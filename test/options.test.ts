// Options declared once (issue 16 §1): the words of a refusal come from the schema; each preset's
// defaults in --help are presetDefaults'; config.json is checked field by field when a run is opened;
// and the sampler defaults follow the run, on the command line and in the studio alike.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as z from 'zod';
import { ROOT } from './helpers.js';
import { trainTinyRun } from './tiny-run.js';
import { expected, fromText } from '../src/options/declare.js';
import { SAMPLER_OPTIONS, samplerDefaults, checkEta, checkSteps, checkCorrector, resolveSampling } from '../src/samplers/index.js';
import { RUN_OPTIONS } from '../src/samplers/run-options.js';
import { declared, positiveInt } from '../src/cli/args.js';
import { Diffusion, makeSchedule } from '../src/diffusion/index.js';
import { TRAIN_OPTIONS, checkConfigJson, presetDefaultWords } from '../src/train/options.js';
import { presetDefaults, runSampling, type RunConfig } from '../src/train/config.js';
import { loadRun } from '../src/train/checkpoint.js';
import { PRESETS } from '../src/models/index.js';
import { startStudio, type Studio } from '../src/studio/server.js';
import type { RunDetail } from '../src/studio/protocol.js';
import { parseGenerateRequest, parseTrainRequest } from '../src/studio/requests.js';

const BIN = path.join(ROOT, 'bin', 'ddpm.js');
const work = mkdtempSync(path.join(tmpdir(), 'ddpm-options-'));
const runs = path.join(work, 'runs');
let studio: Studio;

/** `own`: the tiny dli02 run as trained (its grids: DDPM over all 10 steps); `ddimrun`: the same weights, grids by DDIM 4 as the ddpm preset's are. */
before(async () => {
  await trainTinyRun(path.join(runs, 'own'));
  cpSync(path.join(runs, 'own'), path.join(runs, 'ddimrun'), { recursive: true });
  const file = path.join(runs, 'ddimrun', 'config.json');
  const c = JSON.parse(readFileSync(file, 'utf8')) as RunConfig;
  writeFileSync(file, JSON.stringify({ ...c, samples: { ...c.samples, sampler: 'ddim', steps: 4 } }));
  mkdirSync(path.join(work, 'public'));
  writeFileSync(path.join(work, 'public', 'index.html'), '<!doctype html>');
  studio = await startStudio({ runsDir: runs, port: 0, publicDir: path.join(work, 'public'), threads: 1 });
});
after(async () => {
  await studio?.close();
  rmSync(work, { recursive: true, force: true });
});

function ddpm(...args: string[]): { code: number; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
  return { code: r.status ?? -1, err: r.stderr };
}

test('a schema says in words what it accepts, and text is read as its type', () => {
  assert.equal(expected(z.int().min(1)), 'a positive integer');
  assert.equal(expected(z.int().min(0)), 'a non-negative integer');
  assert.equal(expected(z.int().min(1).max(150)), 'an integer in [1, 150]');
  assert.equal(expected(z.number().min(0).lt(1)), 'a number in [0, 1)');
  assert.equal(expected(z.number().gt(0)), 'a positive number');
  assert.equal(expected(z.number()), 'a finite number');
  assert.equal(expected(SAMPLER_OPTIONS.sampler.schema), 'one of ddpm, ddim, dpmpp2m, pc');
  assert.equal(expected(TRAIN_OPTIONS.channels.schema), 'one of 1, 3');
  assert.deepEqual(fromText(TRAIN_OPTIONS.channels.schema, '3', '--channels'), { value: 3 });
  // An integer is never rounded from "2.5" or "1e3", and a range refusal quotes the text as typed.
  assert.deepEqual(fromText(SAMPLER_OPTIONS.steps.schema, '2.5', '--steps'), { error: '--steps must be a positive integer, got "2.5"' });
  assert.deepEqual(fromText(SAMPLER_OPTIONS.steps.schema, '1e3', '--steps'), { error: '--steps must be a positive integer, got "1e3"' });
  assert.deepEqual(fromText(SAMPLER_OPTIONS.eta.schema, 'NaN', '--eta'), { error: '--eta must be a number in [0, 1], got "NaN"' });
});

test('the samplers\' own checks and the flags refuse the same values: one range each', () => {
  const O = SAMPLER_OPTIONS;
  // Each value is refused by the declaration exactly when the library check refuses it.
  const refusedBoth = (schema: z.ZodType, check: (v: number) => unknown, values: number[]): void => {
    for (const v of values) {
      let threw = false;
      try { check(v); } catch { threw = true; }
      assert.equal(threw, !schema.safeParse(v).success, `value ${v}`);
    }
  };
  refusedBoth(O.eta.schema, checkEta, [-0.1, 0, 0.5, 1, 1.0001, NaN, Infinity]);
  refusedBoth(O.steps.schema.max(10), (k) => checkSteps('sample', k, 10), [0, 1, 2.5, 10, 11, -3]);
  refusedBoth(O.correctorSteps.schema, (n) => checkCorrector(n, 0.16), [-1, 0, 1, 1.5, 3]);
  refusedBoth(O.snr.schema, (r) => checkCorrector(1, r), [-1, 0, 1e-9, 0.16, Infinity, NaN]);
  // A library caller reads the option, the value, what was expected and why.
  assert.throws(() => checkEta(2), /ddim: eta must be a number in \[0, 1\], got 2 \(0: deterministic DDIM, 1: DDPM's posterior variance\)$/);
  assert.throws(() => checkSteps('sample (ddim)', 11, 10), /sample \(ddim\): the number of steps must be an integer in \[1, T = 10\], got 11 \(a sampler cannot visit more timesteps than the schedule has\)/);
  assert.throws(() => checkCorrector(-1, 0.16), /pc: correctorSteps must be a non-negative integer, got -1 \(Langevin steps per noise level\)/);
  assert.throws(() => checkCorrector(1, 0), /pc: snr must be a positive number, got 0 \(Song et al. use 0.16\)/);
  const d = new Diffusion(makeSchedule({ kind: 'linear', T: 10, betaStart: 1e-4, betaEnd: 0.02 }));
  try {
    assert.throws(() => resolveSampling({ model: () => { throw new Error('not called'); }, diffusion: d, objective: 'eps', shape: [1, 1, 4, 4], sampler: 'ddim', eta: 1.5 }), /eta must be a number in \[0, 1\], got 1.5/);
  } finally {
    d.dispose();
  }
});

test('flags shared by sample, eval, viz and the studio come from one declaration, and refuse in its words', () => {
  const parse = (o: ReturnType<typeof declared>, v: string): unknown => o.parseArg!(v, undefined);
  assert.equal(parse(declared(RUN_OPTIONS.n), '8'), 8);
  assert.throws(() => parse(declared(RUN_OPTIONS.n), '0'), /-n must be a positive integer, got "0"$/);
  assert.throws(() => parse(declared(RUN_OPTIONS.seed), '-1'), /--seed must be a non-negative integer, got "-1"/);
  assert.throws(() => parse(declared(RUN_OPTIONS.threads), '2.5'), /--threads must be a positive integer, got "2.5"/);
  assert.throws(() => parse(declared(RUN_OPTIONS.scale), '1e3'), /--scale must be a positive integer, got "1e3"/);
  // A command's own flags are refused in the same words.
  assert.throws(() => positiveInt('--rows')('0'), /--rows must be a positive integer, got "0"/);
  // A switch takes no parser: commander sets it.
  assert.equal(declared(RUN_OPTIONS.ema).parseArg, undefined);
  // Help: the declaration's words with its default.
  assert.equal(declared(RUN_OPTIONS.checkpoint).description, 'a checkpoints/step-N folder or model.safetensors (default: the latest)');
});

test('sampler defaults follow the run: its preset\'s own grid sampler, or the chosen sampler\'s own defaults', () => {
  const of = (p: (typeof PRESETS)[number], sampler?: 'ddpm' | 'ddim' | 'pc'): ReturnType<typeof samplerDefaults> => samplerDefaults(runSampling(presetDefaults(p)), sampler);
  // dli02/dli03: DDPM over all 150 steps with the notebook's variance (DDIM eta 0 gives checkered textures there).
  for (const p of ['dli02', 'dli03'] as const) assert.deepEqual([of(p).sampler, of(p).steps, of(p).variance, of(p).eta], ['ddpm', 150, 'notebook', null]);
  // ddpm preset: DDIM with 50 steps and eta 0, trailing spacing; v-prediction, so x0 is clipped.
  assert.deepEqual([of('ddpm').sampler, of('ddpm').steps, of('ddpm').eta, of('ddpm').spacing, of('ddpm').x0Processing], ['ddim', 50, 0, 'trailing', 'clip']);
  // Naming another sampler gives that sampler's defaults, not the run's grid steps.
  assert.deepEqual([of('dli02', 'ddim').steps, of('dli02', 'ddim').spacing], [50, 'trailing']);
  assert.deepEqual([of('ddpm', 'ddpm').steps, of('ddpm', 'ddpm').variance], [1000, 'notebook']);
  assert.deepEqual([of('ddpm', 'pc').variance, of('ddpm', 'pc').correctorSteps, of('ddpm', 'pc').snr], ['beta', 1, 0.16]);
});

test('--help gives each preset\'s defaults as presetDefaults has them', () => {
  assert.equal(presetDefaultWords(TRAIN_OPTIONS.epochs.config!, presetDefaults), '3 for dli02/dli03, 2 for ddpm');
  assert.equal(presetDefaultWords(TRAIN_OPTIONS.objective.config!, presetDefaults), 'eps for dli02/dli03, v for ddpm');
  assert.equal(presetDefaultWords(TRAIN_OPTIONS.batchSize.config!, presetDefaults), '128');
  const help = spawnSync(process.execPath, [BIN, 'train', '--help'], { encoding: 'utf8' }).stdout.replace(/\s+/g, ' ');
  assert.match(help, /--ema-decay <x> EMA decay of the weights, 0 for none; sampling uses the EMA \(default: 0 for dli02\/dli03, 0\.995 for ddpm\)/);
  assert.match(help, /--timesteps <n> diffusion steps T \(default: 150 for dli02\/dli03, 1000 for ddpm\)/);
  // Every declared option is a flag of `ddpm train`.
  for (const o of Object.values(TRAIN_OPTIONS)) assert.ok(help.includes(o.flag), `${o.flag} missing from ddpm train --help`);
  const sampleHelp = spawnSync(process.execPath, [BIN, 'sample', '--help'], { encoding: 'utf8' }).stdout.replace(/\s+/g, ' ');
  for (const o of Object.values(SAMPLER_OPTIONS)) assert.ok(sampleHelp.includes(o.flag), `${o.flag} missing from ddpm sample --help`);
});

test('config.json is checked when a run is opened, naming the file, the field, the value and what was expected', () => {
  for (const p of PRESETS) checkConfigJson(presetDefaults(p), 'config.json');
  const base = presetDefaults('dli02');
  const cases: [unknown, RegExp][] = [
    [{ ...base, train: { ...base.train, batchSize: 0 } }, /x\/config\.json: train\.batchSize must be a positive integer, got 0; it was not written by `ddpm train`, or was edited or damaged since$/],
    [{ ...base, train: { ...base.train, emaDecay: 1 } }, /train\.emaDecay must be a number in \[0, 1\), got 1/],
    [{ ...base, model: { ...base.model, preset: 'unet' } }, /model\.preset must be one of dli02, dli03, ddpm, got "unet"/],
    [{ ...base, samples: { ...base.samples, sampler: 'euler' } }, /samples\.sampler must be one of ddpm, ddim, dpmpp2m, pc, got "euler"/],
    [{ ...base, objective: 'score' }, /objective must be one of eps, x0, v, got "score"/],
    [{ ...base, train: { ...base.train, lr: '0.001' } }, /train\.lr must be a positive number, got "0\.001"/],
    [{ version: 1, model: base.model, schedule: base.schedule, samples: base.samples }, /x\/config\.json is not a run config: it has no train object/],
    [[1, 2], /x\/config\.json is not a run config: it has no model, schedule, train objects/],
    [{ ...base, version: 2 }, /x\/config\.json: version must be 1, got 2/],
    [{ ...base, samples: undefined }, /x\/config\.json: samples is missing \(expected an object\)/],
  ];
  for (const [c, re] of cases) assert.throws(() => checkConfigJson(c, 'x/config.json'), re);
  // Through loadRun, as `ddpm sample` and `ddpm eval` open a run: the run's own file is named.
  const bad = path.join(work, 'bad-run');
  cpSync(path.join(runs, 'own'), bad, { recursive: true });
  const c = JSON.parse(readFileSync(path.join(bad, 'config.json'), 'utf8')) as RunConfig;
  writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...c, model: { ...c.model, imageSize: -16 } }));
  assert.throws(() => loadRun(bad), new RegExp(`${path.join(bad, 'config.json').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: model\\.imageSize must be a positive integer, got -16`));
  const r = ddpm('sample', '--run', bad, '-n', '1', '--grid', path.join(work, 'x.png'));
  assert.notEqual(r.code, 0);
  assert.match(r.err, /model\.imageSize must be a positive integer, got -16/);
});

test('ddpm sample and ddpm eval start from the run\'s own sampler', () => {
  const own = ddpm('sample', '--run', path.join(runs, 'own'), '-n', '2', '--threads', '1', '--grid', path.join(work, 'own.png'));
  assert.equal(own.code, 0, own.err);
  assert.match(own.err, /\(.*img\/s; ddpm, 10 steps\)/);
  const ddim = ddpm('sample', '--run', path.join(runs, 'ddimrun'), '-n', '2', '--threads', '1', '--grid', path.join(work, 'ddim.png'));
  assert.equal(ddim.code, 0, ddim.err);
  assert.match(ddim.err, /\(.*img\/s; ddim, 4 steps\)/);
  // Another sampler named: its own default steps (DDIM 50, capped at T = 10), not the run's 4.
  const named = ddpm('sample', '--run', path.join(runs, 'ddimrun'), '--sampler', 'dpmpp2m', '-n', '2', '--threads', '1', '--grid', path.join(work, 'named.png'));
  assert.equal(named.code, 0, named.err);
  assert.match(named.err, /dpmpp2m, 10 steps/);
  // --eta is refused for a run whose own sampler has none, naming it.
  const eta = ddpm('sample', '--run', path.join(runs, 'own'), '--eta', '0.5', '-n', '2', '--grid', path.join(work, 'e.png'));
  assert.notEqual(eta.code, 0);
  assert.match(eta.err, /--eta applies to --sampler ddim only; ddpm has no eta/);
  const range = ddpm('sample', '--run', path.join(runs, 'own'), '--sampler', 'ddim', '--eta', '2', '-n', '2', '--grid', path.join(work, 'e.png'));
  assert.match(range.err, /--eta must be a number in \[0, 1\], got "2"/);
});

test('the studio serves each run\'s sampler defaults, and a generation without a sampler uses the run\'s own', async () => {
  const get = async (p: string): Promise<RunDetail> => (await fetch(`http://127.0.0.1:${studio.port}${p}`)).json() as Promise<RunDetail>;
  const own = await get('/api/runs/own');
  assert.equal(own.sampling.own, 'ddpm');
  assert.deepEqual([own.sampling.bySampler['ddpm']!.steps, own.sampling.bySampler['ddpm']!.variance, own.sampling.bySampler['ddim']!.steps, own.sampling.bySampler['ddim']!.eta], [10, 'notebook', 10, 0]);
  const ddim = await get('/api/runs/ddimrun');
  assert.equal(ddim.sampling.own, 'ddim');
  assert.equal(ddim.sampling.bySampler['ddim']!.steps, 4);
  // The request check the server runs on POST /api/generate: no sampler means the run's own, with its steps.
  const { input } = parseGenerateRequest({ run: 'ddimrun', count: 1 }, runs);
  assert.deepEqual([input.sampler, input.steps, input.eta], ['ddim', 4, undefined]);
  const dli = parseGenerateRequest({ run: 'own', count: 1 }, runs).input;
  assert.deepEqual([dli.sampler, dli.steps, dli.variance], ['ddpm', 10, 'notebook']);
  const bad = await fetch(`http://127.0.0.1:${studio.port}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ run: 'own', count: 1, steps: 11 }) });
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: string }).error, /steps must be an integer in \[1, 10\], got 11/);
});

test('the studio trains learned-variance runs: learnVariance gives the config --learn-variance gives, and only a boolean is taken', () => {
  const { config } = parseTrainRequest({ name: 'lv-studio', preset: 'dli02', learnVariance: true }, runs);
  assert.deepEqual([config.model.learnVariance, config.samples.variance], [true, 'learned']);
  const plain = parseTrainRequest({ name: 'plain', preset: 'dli02', learnVariance: false }, runs).config;
  assert.deepEqual([plain.model.learnVariance, plain.samples.variance], [undefined, presetDefaults('dli02').samples.variance]);
  assert.throws(() => parseTrainRequest({ name: 'bad', preset: 'dli02', learnVariance: 'yes' }, runs), /learnVariance must be true or false, got "yes"/);
});
