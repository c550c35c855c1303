// `ddpm eval` end to end: a folder of PNGs and a run (unconditional and class-conditional, untrained
// weights: the pipeline is under test, not the model), the JSON it writes, the cache it reuses, the
// same figures for a run and for the PNGs `ddpm sample` writes of it, and every bad option refused
// by message before anything slow starts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { manualSeed } from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import { presetDefaults } from '../src/train/config.js';
import { serializeTensors } from '../src/io/tensors.js';
import { writePng } from '../src/io/png.js';
import { program } from '../src/cli/main.js';
import { ROOT } from './helpers.js';

const BIN = path.join(ROOT, 'bin', 'ddpm.js');
const hasData = existsSync('/usr/share/datasets/fashion-mnist') || process.env.FASHION_MNIST_DIR !== undefined;
const skip = !hasData && 'Fashion-MNIST not installed';
const work = mkdtempSync(path.join(tmpdir(), 'ddpm-eval-'));
const cache = path.join(work, 'cache');
after(() => rmSync(work, { recursive: true, force: true }));

function ddpm(...args: string[]): { code: number; out: string; err: string } {
  // DDPM_CACHE too, so that no test writes to ~/.cache even where --cache is not given.
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1', DDPM_CACHE: cache } });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** A dli02 run folder holding one checkpoint of freshly initialised weights. */
function makeRun(dir: string, numClasses: number): void {
  const config = presetDefaults('dli02');
  config.model.numClasses = numClasses;
  mkdirSync(path.join(dir, 'checkpoints', 'step-7'), { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  manualSeed(numClasses);
  const model = createModel(config.model);
  const ck = path.join(dir, 'checkpoints', 'step-7');
  writeFileSync(path.join(ck, 'model.safetensors'), serializeTensors(model.stateDict()));
  writeFileSync(path.join(ck, 'optimizer.safetensors'), serializeTensors(new Map()));
  writeFileSync(path.join(ck, 'state.json'), '{}');
  model.dispose();
}

/** n grey PNGs of seeded noise, size x size. */
function makePngs(dir: string, n: number, size: number, channels: 1 | 3 = 1): void {
  mkdirSync(dir, { recursive: true });
  let s = 12345;
  for (let i = 0; i < n; i++) {
    const data = Uint8Array.from({ length: size * size * channels }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16) & 255);
    writePng(path.join(dir, `${String(i).padStart(3, '0')}.png`), { width: size, height: size, channels, data });
  }
}

const uncond = path.join(work, 'run-uncond');
const cond = path.join(work, 'run-cond');
const pngs = path.join(work, 'pngs');
before(() => {
  makeRun(uncond, 0);
  makeRun(cond, 10);
  makePngs(pngs, 12, 16);
  makePngs(path.join(work, 'colour'), 12, 16, 3);
  mkdirSync(path.join(work, 'empty'));
});

interface Report {
  source: string; samples: number; resolution: number; sampler: string | null; steps: number | null; checkpoint?: string; step?: number;
  guidance?: number | null; eta?: number | null; seed: number; classConditional?: boolean;
  reference: { count: number; fromCache: boolean; cacheFile: string; resolution: number };
  metrics: {
    fid: number; kid: { mean: number; std: number; subsets: number; subsetSize: number }; precision: number; recall: number; k: number;
    inceptionScore: { mean: number; std: number; splits: number }; classHistogram: Record<string, number>; conditionalAccuracy?: number;
    diversity: { ratio: number; generated: number; real: number; perClass: Record<string, { count: number; generated: number | null; real: number | null; ratio: number | null }> };
  };
  seconds: { sampling: number; reference: number; metrics: number; total: number };
  featureNetwork: { sha256: string };
}
const readReport = (f: string): Report => JSON.parse(readFileSync(f, 'utf8')) as Report;

test('ddpm eval --samples DIR prints the table and writes the same figures as JSON; a second call reads the cached statistics', { skip }, () => {
  const json = path.join(work, 'pngs.json');
  const r = ddpm('eval', '--samples', pngs, '--json', json, '--cache', cache, '--threads', '2');
  assert.equal(r.code, 0, r.err);
  for (const row of [/FID +\d+\.\d{3}/, /KID x 1000 \(100 subsets of 12\)/, /precision \(k = 5\)/, /recall \(k = 5, 12 real\)/, /Inception Score, classifier \(10 splits\)/, /class histogram: T-shirt\/top/, /Ankle boot/]) {
    assert.match(r.out, row);
  }
  assert.match(r.out, /12 images of .*pngs at 16x16, against the 10000 Fashion-MNIST test images brought to 16x16/);
  const rep = readReport(json);
  assert.equal(rep.source, 'samples');
  assert.equal(rep.samples, 12);
  assert.equal(rep.resolution, 16);
  assert.equal(rep.sampler, null);
  assert.equal(rep.reference.count, 10000);
  assert.equal(rep.reference.resolution, 16);
  assert.equal(rep.reference.fromCache, false);
  assert.ok(existsSync(rep.reference.cacheFile) && rep.reference.cacheFile.startsWith(cache), 'cached under --cache');
  const m = rep.metrics;
  assert.ok(m.fid > 0 && Number.isFinite(m.fid));
  assert.ok(Number.isFinite(m.kid.mean) && m.kid.subsetSize === 12 && m.kid.subsets === 100);
  assert.ok(m.precision >= 0 && m.precision <= 1 && m.recall >= 0 && m.recall <= 1 && m.k === 5);
  assert.ok(m.inceptionScore.mean >= 1 && m.inceptionScore.mean <= 10);
  assert.equal(Object.values(m.classHistogram).reduce((x, y) => x + y, 0), 12);
  assert.equal(Object.keys(m.classHistogram).length, 10);
  assert.match(rep.featureNetwork.sha256, /^[0-9a-f]{64}$/);
  assert.ok(rep.seconds.total > 0);
  // The table shows the JSON's numbers.
  assert.match(r.out, new RegExp(`FID +${m.fid.toFixed(3)}`));
  // Intra-class diversity: per class by name, the overall ratio their count-weighted figures give.
  const per = m.diversity.perClass;
  assert.deepEqual(Object.keys(per), Object.keys(m.classHistogram));
  assert.deepEqual(Object.values(per).map((c) => c.count), Object.values(m.classHistogram));
  const rated = Object.values(per).filter((c) => c.ratio !== null);
  assert.ok(rated.length > 0 && rated.every((c) => c.generated! > 0 && c.real! > 0 && Math.abs(c.ratio! - c.generated! / c.real!) < 1e-12));
  const weighted = (k: 'generated' | 'real'): number => rated.reduce((s, c) => s + c.count * c[k]!, 0);
  assert.ok(Math.abs(m.diversity.ratio - weighted('generated') / weighted('real')) < 1e-12);
  assert.match(r.out, new RegExp(`intra-class diversity, samples / test set +${m.diversity.ratio.toFixed(3)}`));

  const again = path.join(work, 'pngs2.json');
  assert.equal(ddpm('eval', '--samples', pngs, '--json', again, '--cache', cache).code, 0);
  const rep2 = readReport(again);
  assert.equal(rep2.reference.fromCache, true);
  assert.deepEqual(rep2.metrics, rep.metrics, 'the same samples and seed give the same figures from the cache');
});

test('ddpm eval --run scores the same 8-bit images that `ddpm sample --out-dir` writes: equal figures either way', { skip }, () => {
  const json = path.join(work, 'run.json');
  const r = ddpm('eval', '--run', uncond, '-n', '20', '--sampler', 'ddim', '--steps', '4', '--seed', '2', '--json', json);
  assert.equal(r.code, 0, r.err);
  const rep = readReport(json);
  assert.equal(rep.source, 'run');
  assert.equal(rep.samples, 20);
  assert.equal(rep.sampler, 'ddim');
  assert.equal(rep.steps, 4);
  assert.equal(rep.eta, 0);
  assert.equal(rep.step, 7);
  assert.match(rep.checkpoint!, /step-7[/\\]model\.safetensors$/);
  assert.equal(rep.reference.fromCache, true, 'the 16x16 statistics of the first test are reused through $DDPM_CACHE');
  assert.ok(rep.seconds.sampling > 0);

  const out = path.join(work, 'sampled');
  assert.equal(ddpm('sample', '--run', uncond, '-n', '20', '--sampler', 'ddim', '--steps', '4', '--seed', '2', '--out-dir', out).code, 0);
  const viaPngs = path.join(work, 'sampled.json');
  assert.equal(ddpm('eval', '--samples', out, '--seed', '2', '--json', viaPngs).code, 0);
  assert.deepEqual(readReport(viaPngs).metrics, rep.metrics);
});

test('ddpm eval of a class-conditional run draws balanced classes, applies --guidance and reports how often the classifier agrees', { skip }, () => {
  const json = path.join(work, 'cond.json');
  const r = ddpm('eval', '--run', cond, '-n', '20', '--sampler', 'dpmpp2m', '--steps', '3', '--guidance', '1.5', '--json', json);
  assert.equal(r.code, 0, r.err);
  const rep = readReport(json);
  assert.equal(rep.classConditional, true);
  assert.equal(rep.guidance, 1.5);
  assert.equal(rep.eta, null);
  const acc = rep.metrics.conditionalAccuracy;
  assert.ok(acc !== undefined && acc >= 0 && acc <= 1);
  assert.match(r.out, /classified as their class/);
  assert.match(r.out, /guidance 1\.5/);
});

/** Runs `ddpm eval ARGS` in this process (the same program() the binary runs); returns what it refused with. */
async function refusal(args: string[]): Promise<string> {
  const p = program();
  let err = '';
  for (const c of [p, ...p.commands]) c.configureOutput({ writeErr: (t) => { err += t; }, writeOut: () => {} });
  try {
    await p.parseAsync(['node', 'ddpm', 'eval', ...args]);
  } catch (e) {
    return `${err}${(e as Error).message}`;
  }
  return assert.fail(`ddpm eval ${args.join(' ')} should fail`);
}

test('ddpm eval refuses each bad option with a message naming it, and writes nothing', { skip }, async () => {
  const json = path.join(work, 'never.json');
  const cases: [string[], RegExp][] = [
    [[], /say what to score: --run DIR .* or --samples DIR/],
    [['--run', uncond, '--samples', pngs], /give --run or --samples, not both/],
    [['--samples', pngs, '-n', '0'], /-n must be a positive integer, got "0"/],
    [['--samples', pngs, '-n', 'many'], /-n must be a positive integer, got "many"/],
    [['--samples', pngs, '-n', '5'], /-n 5 is too few: the metrics need at least 10 samples/],
    [['--samples', pngs, '--steps', '10'], /--steps applies to --run only/],
    [['--samples', pngs, '--sampler', 'ddim'], /--sampler applies to --run only/],
    [['--samples', pngs, '--guidance', '2'], /--guidance applies to --run only/],
    [['--samples', pngs, '--no-ema'], /--no-ema applies to --run only/],
    [['--samples', pngs, '--checkpoint', 'x'], /--checkpoint applies to --run only/],
    [['--samples', pngs, '--batch-size', '50'], /--batch-size applies to --run only/],
    [['--run', uncond, '--sampler', 'euler'], /--sampler must be one of ddpm, ddim, dpmpp2m, pc, got "euler"/],
    [['--run', uncond, '--eta', '0.5'], /--eta applies to --sampler ddim only; ddpm has no eta/],
    [['--run', uncond, '--sampler', 'ddim', '--eta', '2'], /--eta must be a number in \[0, 1\], got "2"/],
    [['--run', uncond, '--sampler', 'ddim', '--eta', 'x'], /--eta must be a number in \[0, 1\], got "x"/],
    [['--run', uncond, '--steps', '1000'], /--steps 1000 exceeds the run's T = 150 timesteps/],
    [['--run', uncond, '--guidance', '1'], /--guidance needs a class-conditional run/],
    [['--run', uncond, '--batch-size', '0'], /--batch-size must be a positive integer, got "0"/],
    [['--run', uncond, '--checkpoint', path.join(work, 'nope')], /checkpoint .*nope does not exist/],
    [['--run', path.join(work, 'nope')], /--run .*nope is not a folder/],
    [['--run', pngs], /is not a run folder: .*config\.json is missing/],
    [['--samples', path.join(work, 'nope')], /--samples .*nope is not a folder/],
    [['--samples', path.join(work, 'empty')], /has no images/],
    [['--samples', path.join(work, 'colour')], /holds colour images/],
    [['--samples', pngs, '-n', '50'], /-n 50 asks for more samples than the 12 images/],
    [['--samples', pngs, '--json', path.join(work, 'no', 'such', 'dir', 'x.json')], /--json .*: the folder .*dir does not exist/],
    [['--samples', pngs, '--json', work], /--json .* is a folder; give a file name/],
    [['--samples', pngs, '--features', path.join(work, 'none.safetensors')], /--features .*none\.safetensors does not exist/],
    [['--samples', pngs, '--data', path.join(work, 'empty')], /Fashion-MNIST not found in .*empty/],
    [['--samples', pngs, '--cache', path.join(uncond, 'config.json')], /--cache .* is a file, not a folder/],
    [['--samples', pngs, '--threads', 'two'], /--threads must be a positive integer, got "two"/],
    [['--samples', pngs, '--seed', '1.5'], /--seed must be a non-negative integer, got "1.5"/],
    [['--samples', pngs, '--frobnicate'], /unknown option '--frobnicate'/],
    [['--run', uncond, '--nll', '--loss-by-t'], /give --nll or --loss-by-t, not both/],
    [['--samples', pngs, '--nll'], /--nll needs --run: it measures a model on test images/],
    [['--samples', pngs, '--loss-by-t'], /--loss-by-t needs --run/],
    [['--run', uncond, '--nll', '--sampler', 'ddim'], /--sampler applies to sample scoring \(FID and friends\), not to --nll, which draws no samples/],
    [['--run', uncond, '--loss-by-t', '--steps', '5'], /--steps applies to sample scoring .*not to --loss-by-t/],
    [['--run', uncond, '--variance', 'beta'], /--variance applies to --nll only/],
    [['--run', uncond, '--loss-by-t', '--no-clip'], /--no-clip applies to --nll only/],
    [['--run', uncond, '--out', path.join(work, 'x.svg')], /--out applies to --loss-by-t only/],
    [['--run', uncond, '--nll', '--points', '5'], /--points applies to --loss-by-t only/],
    [['--run', uncond, '--loss-by-t', '--out', path.join(work, 'x.gif')], /--out .*x\.gif: the file must end in \.svg or \.png, got "\.gif"/],
  ];
  for (const [args, re] of cases) {
    const full = [...args, ...(args.includes('--json') ? [] : ['--json', json])];
    assert.match(await refusal(full), re, `ddpm eval ${full.join(' ')}`);
    assert.ok(!existsSync(json), `ddpm eval ${args.join(' ')} wrote ${json}`);
  }
  // The binary itself: a non-zero exit and the message on stderr.
  const r = ddpm('eval', '--samples', pngs, '-n', '5');
  assert.equal(r.code, 1);
  assert.match(r.err, /^ddpm: eval: -n 5 is too few/);
});
