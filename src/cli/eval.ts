// `ddpm eval`: sample quality of a run (or of a folder of PNGs) against the Fashion-MNIST test set,
// with the shipped feature network: FID, KID, precision/recall, the Inception-Score analogue and the
// class histogram, as a table and as JSON. With --nll or --loss-by-t: the run's likelihood bound or
// its loss per timestep on test images instead (likelihood.ts).
import { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { Generator, setNumThreads, checkDevice, type Tensor, type Device } from '../tensor/index.js';
import { loadRun } from '../train/checkpoint.js';
import { runObjective, runNumClasses, runSampling, runLearnVariance, type RunConfig } from '../train/config.js';
import { type DiffusionUNet, inferencePredictor } from '../models/index.js';
import type { Diffusion } from '../diffusion/index.js';
import { sample, modelOn, DEVICE_OPTION, assertFinite, samplerDefaults, learnedVarianceNote, SAMPLER_OPTIONS as O, VARIANCES, type SamplerName, type Variance } from '../samplers/index.js';
import { RUN_OPTIONS as R } from '../samplers/run-options.js';
import { locateFashionMnist } from '../data/fashion-mnist.js';
import { loadImageFolder, imageFolderTensors } from '../data/image-folder.js';
import { writeFileAtomic } from '../io/atomic.js';
import {
  DEFAULT_FEATURE_NET_PATH, loadFeatureNet, referenceStats, disposeReference, defaultCacheDir, quantize8, evaluateSamples,
  MIN_EVAL_SAMPLES, type EvalMetrics,
} from '../eval/index.js';
import { declared, defaultThreads, positiveInt } from './args.js';
import { runNll, runLossByT } from './likelihood.js';
import { classList } from './sample.js';
import { checkClassifierFlags, openClassifier } from './classifier-guidance.js';

interface EvalFlags {
  run?: string; samples?: string; checkpoint?: string; ema: boolean; n?: number; seed: number; batchSize?: number; threads: number; device: string;
  sampler?: SamplerName; steps?: number; eta?: number; guidance?: number;
  class?: number[]; classifier?: string; classifierScale?: number;
  json?: string; data?: string; features?: string; cache?: string | false;
  nll?: boolean; lossByT?: boolean; out?: string; points?: number; variance?: Variance; clip: boolean;
}

const DEFAULT_N = 1000;
/** Test images of --nll (improved-diffusion reports the bound on the whole test set; 1,000 gives about +-0.02 bits/dim here) and of --loss-by-t. */
const DEFAULT_NLL_N = 1000;
const DEFAULT_LOSS_BY_T_N = 256;

export function evalCommand(): Command {
  return new Command('eval')
    .description('score samples against the Fashion-MNIST test set: FID, KID, precision/recall (k = 5), a classifier Inception Score and the class histogram')
    .addOption(declared(R.run, { help: `${R.run.help}: draw the samples from its model` }))
    .option('--samples <dir>', 'or: a folder of grey PNG/JPEG samples (all one size; searched recursively, sorted by name)')
    .addOption(declared(R.checkpoint, { help: `--run only: ${R.checkpoint.help}` }))
    .addOption(declared(R.ema, { help: `--run only: ${R.ema.help}` }))
    .addOption(declared(R.n, { help: 'number of samples', defaultHelp: `${DEFAULT_N} from --run; every image of --samples` }))
    .addOption(declared(R.seed, { help: `${R.seed.help} and of the KID and precision/recall subsets`, default: 0 }))
    .addOption(declared(R.batchSize, { help: `--run only: ${R.batchSize.help}` }))
    .addOption(declared(R.threads, { default: defaultThreads() }))
    .addOption(declared(DEVICE_OPTION, { help: `--run only: ${DEVICE_OPTION.help}` }).default('cpu'))
    .addOption(declared(O.sampler, { help: `--run only: ${O.sampler.help}` }))
    .addOption(declared(O.steps, { help: `--run only: ${O.steps.help}` }))
    .addOption(declared(O.eta, { help: `--run only: ${O.eta.help}` }))
    .addOption(declared(O.guidance, { help: `--run only: ${O.guidance.help}` }))
    .option('--class <c>', '--run only: the classes to draw, a class index or a comma list, interleaved (class-conditional runs, or --classifier; default: every class of a conditional run)', classList)
    .addOption(declared(R.classifier, { help: `--run only: ${R.classifier.help}` }))
    .addOption(declared(O.classifierScale, { help: `--run only: ${O.classifierScale.help}` }))
    .option('--json <file>', 'also write every figure, with the sample count, sampler, steps, checkpoint and timings, as JSON')
    .option('--data <dir>', 'Fashion-MNIST folder (default: $FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist)')
    .option('--features <file>', 'feature network weights (default: the shipped assets/fmnist-features.safetensors)')
    .option('--cache <dir>', 'where the test set\'s features and statistics are cached (default: $DDPM_CACHE, else ~/.cache/ddpm-ts)')
    .option('--no-cache', 'compute the test set\'s statistics afresh and cache nothing')
    .option('--nll', `instead: negative log-likelihood of test images in bits/dim from the variational bound (-n default ${DEFAULT_NLL_N})`)
    .addOption(declared(O.variance, { help: `--nll only: reverse variance, ${VARIANCES.join(', ')}`, defaultHelp: 'the run\'s samples.variance; posterior = "fixed small", beta = "fixed large"' }))
    .option('--no-clip', '--nll only: do not clamp the predicted x_0 to [-1, 1] (improved-diffusion clips)')
    .option('--loss-by-t', `instead: the run's training loss and the eps-MSE at evenly spaced t on test images (-n default ${DEFAULT_LOSS_BY_T_N})`)
    .option('--out <file>', '--loss-by-t only: chart to write (.svg or .png)')
    .option('--points <k>', '--loss-by-t only: timesteps evaluated (default: all T when T <= 200, else 100)', positiveInt('--points'))
    .action((f: EvalFlags, cmd: Command) => runEval(f, cmd));
}

function fail(msg: string): never { throw new Error(`eval: ${msg}`); }

/** The flags that only one mode reads, refused in the others so nothing is silently ignored. */
function checkModeFlags(f: EvalFlags, given: (name: string) => boolean): void {
  const mode = f.nll ? '--nll' : f.lossByT ? '--loss-by-t' : null;
  if (f.nll && f.lossByT) fail('give --nll or --loss-by-t, not both (run eval twice)');
  if (mode !== null) {
    if (f.samples !== undefined) fail(`${mode} needs --run: it measures a model on test images, and --samples holds only images`);
    const fidOnly = [['sampler', '--sampler'], ['steps', '--steps'], ['eta', '--eta'], ['guidance', '--guidance'], ['class', '--class'], ['classifier', '--classifier'], ['classifierScale', '--classifier-scale'], ['features', '--features'], ['cache', '--cache/--no-cache']] as const;
    for (const [key, flag] of fidOnly) if (given(key)) fail(`${flag} applies to sample scoring (FID and friends), not to ${mode}, which draws no samples`);
  }
  if (!f.nll) for (const [key, flag] of [['variance', '--variance'], ['clip', '--no-clip']] as const) if (given(key)) fail(`${flag} applies to --nll only`);
  if (!f.lossByT) for (const [key, flag] of [['out', '--out'], ['points', '--points']] as const) if (given(key)) fail(`${flag} applies to --loss-by-t only${key === 'out' ? ' (use --json FILE for the figures of sample scoring)' : ''}`);
}

/** Every refusal that needs no model, data or image: made before anything slow starts. */
function checkFlags(f: EvalFlags, cmd: Command): void {
  const given = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
  checkModeFlags(f, given);
  if (f.run === undefined && f.samples === undefined) fail('say what to score: --run DIR (sample from a trained run) or --samples DIR (a folder of PNGs)');
  if (f.run !== undefined && f.samples !== undefined) fail('give --run or --samples, not both');
  if (f.samples !== undefined) {
    const runOnly = [['checkpoint', '--checkpoint'], ['ema', '--no-ema'], ['batchSize', '--batch-size'], ['device', '--device'], ['sampler', '--sampler'], ['steps', '--steps'], ['eta', '--eta'], ['guidance', '--guidance'], ['class', '--class'], ['classifier', '--classifier'], ['classifierScale', '--classifier-scale']] as const;
    for (const [key, flag] of runOnly) if (given(key)) fail(`${flag} applies to --run only; --samples scores images that already exist`);
    if (!existsSync(f.samples) || !statSync(f.samples).isDirectory()) fail(`--samples ${f.samples} is not a folder`);
  } else {
    checkDevice(f.device, '--device');
    if (!existsSync(f.run!) || !statSync(f.run!).isDirectory()) fail(`--run ${f.run} is not a folder (expected a run folder written by \`ddpm train\`)`);
    if (f.eta !== undefined && f.sampler !== undefined && f.sampler !== 'ddim') fail(`--eta applies to --sampler ddim only; ${f.sampler} has no eta`);
    checkClassifierFlags('eval', f, f.class !== undefined);
  }
  if (!f.nll && !f.lossByT && f.n !== undefined && f.n < MIN_EVAL_SAMPLES) fail(`-n ${f.n} is too few: the metrics need at least ${MIN_EVAL_SAMPLES} samples (FID and KID want 1,000 or more to mean much)`);
  if (f.json !== undefined) {
    const dir = path.dirname(path.resolve(f.json));
    if (!existsSync(dir) || !statSync(dir).isDirectory()) fail(`--json ${f.json}: the folder ${dir} does not exist`);
    if (existsSync(f.json) && statSync(f.json).isDirectory()) fail(`--json ${f.json} is a folder; give a file name`);
  }
  if (f.features !== undefined && (!existsSync(f.features) || !statSync(f.features).isFile())) fail(`--features ${f.features} does not exist (the shipped network is ${DEFAULT_FEATURE_NET_PATH})`);
  if (typeof f.cache === 'string' && existsSync(f.cache) && !statSync(f.cache).isDirectory()) fail(`--cache ${f.cache} is a file, not a folder`);
  // Refuses a missing data set now, naming where it looked, rather than after minutes of sampling.
  locateFashionMnist(f.data !== undefined ? { dir: f.data } : {});
}

interface Drawn {
  images: Tensor;
  resolution: number;
  labels?: number[];
  record: Record<string, unknown>;
}

function drawFromRun(f: EvalFlags): Drawn {
  const { config, model, diffusion, checkpoint, step } = loadRun(f.run!, f.checkpoint, { ema: f.ema });
  try {
    return sampleRun(f, config, model, diffusion, checkpoint, step);
  } finally {
    model.dispose();
  }
}

function sampleRun(f: EvalFlags, config: RunConfig, model: DiffusionUNet, diffusion: Diffusion, checkpoint: string, step: number | null): Drawn {
  const { imageChannels: c, imageSize: s } = config.model;
  if (c !== 1) fail(`${f.run} makes ${c}-channel images; the Fashion-MNIST feature network scores grey (1-channel) images only`);
  if (config.train.dataset === 'folder') process.stderr.write(`eval: note: ${f.run} was trained on an image folder, and is scored against Fashion-MNIST\n`);
  const objective = runObjective(config);
  const numClasses = runNumClasses(config);
  const T = diffusion.T;
  // The defaults follow the run: the sampler of its own epoch grids unless --sampler names another.
  const def = samplerDefaults(runSampling(config, step), f.sampler);
  const sampler = def.sampler;
  if (f.eta !== undefined && sampler !== 'ddim') fail(`--eta applies to --sampler ddim only; ${sampler} has no eta (it is the run's own sampler; add --sampler ddim)`);
  if (f.steps !== undefined && f.steps > T) fail(`--steps ${f.steps} exceeds the run's T = ${T} timesteps; a sampler visits at most T of them`);
  if (f.guidance !== undefined && numClasses === 0) fail(`--guidance needs a class-conditional run (it mixes conditional and unconditional outputs), and ${f.run} was trained without classes`);
  const n = f.n ?? DEFAULT_N;
  const note = runLearnVariance(config) ? learnedVarianceNote(sampler, f.eta) : null;
  if (note) process.stderr.write(`eval: note: ${note}\n`);
  const steps = f.steps ?? def.steps;
  const clip = def.x0Processing;
  const clf = openClassifier(f, config, f.run!, f.device as Device);
  const classCount = numClasses > 0 ? numClasses : clf?.numClasses ?? 0;
  if (f.class !== undefined && classCount === 0) fail(`--class needs a class-conditional run or --classifier, and ${f.run} was trained without classes`);
  const outside = f.class?.find((k) => k >= classCount);
  if (outside !== undefined) {
    clf?.dispose();
    fail(`--class ${outside} is outside the ${numClasses > 0 ? "run's" : "classifier's"} classes 0..${classCount - 1}`);
  }
  // Balanced classes, interleaved: every split of the Inception Score sees each class equally.
  const classes = f.class ?? (numClasses > 0 ? Array.from({ length: numClasses }, (_, i) => i) : undefined);
  const labels = classes ? Array.from({ length: n }, (_, i) => classes[i % classes.length]!) : undefined;
  if (f.device !== 'cpu') model.to(f.device as Device);
  setNumThreads(f.threads);
  const predictor = inferencePredictor(model);
  const t0 = performance.now();
  let x: Tensor;
  try {
    x = sample({
      model: modelOn((xt, t, cond) => predictor.forward(xt, t, cond), f.device as Device),
      diffusion, objective, shape: [n, c, s, s], sampler, steps, x0Processing: clip,
      generator: new Generator(f.seed), batchSize: f.batchSize ?? Math.min(n, 500),
      ...(f.eta !== undefined ? { eta: f.eta } : {}),
      ...(def.spacing !== null ? { spacing: def.spacing } : {}),
      ...(def.variance !== null ? { variance: def.variance } : {}),
      ...(runLearnVariance(config) ? { learnVariance: true } : {}),
      ...(labels && numClasses > 0 ? { numClasses, labels, guidance: f.guidance ?? 0 } : {}),
      ...(clf && labels ? { classifier: clf.guidance(labels) } : {}),
    });
  } finally {
    predictor.dispose();
    clf?.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  try {
    assertFinite(x, `samples of ${checkpoint}`);
  } catch (e) {
    x.dispose();
    throw e;
  }
  process.stderr.write(`sampled ${n} images in ${seconds.toFixed(1)} s (${sampler}, ${steps} steps${clf ? `, classifier scale ${clf.scale}` : ''}) from ${checkpoint}\n`);
  // Scored as the 8-bit images `ddpm sample --out-dir` would write: the same numbers as --samples on those PNGs.
  const images = quantize8(x);
  x.dispose();
  return {
    images, resolution: s, ...(labels ? { labels } : {}),
    record: {
      source: 'run', run: path.resolve(f.run!), checkpoint: path.resolve(checkpoint), step, preset: config.model.preset, sampler, steps,
      eta: sampler === 'ddim' ? f.eta ?? 0 : null, guidance: numClasses > 0 ? f.guidance ?? 0 : null, x0Processing: clip,
      classConditional: numClasses > 0, classes: classes ?? null,
      classifier: clf ? { run: path.resolve(f.classifier!), checkpoint: path.resolve(clf.checkpoint), scale: clf.scale } : null, emaWeights: path.basename(checkpoint) === 'ema.safetensors', samplingSeconds: seconds,
    },
  };
}

function readSamples(f: EvalFlags): Drawn {
  const folder = loadImageFolder(f.samples!);
  if (folder.channels !== 1) fail(`--samples ${f.samples} holds colour images; the Fashion-MNIST feature network scores grey images (save them as 8-bit grey PNGs)`);
  if (f.n !== undefined && f.n > folder.n) fail(`-n ${f.n} asks for more samples than the ${folder.n} images in --samples ${f.samples}`);
  const n = f.n ?? folder.n;
  if (n < MIN_EVAL_SAMPLES) fail(`--samples ${f.samples} holds ${n} images; the metrics need at least ${MIN_EVAL_SAMPLES} (FID and KID want 1,000 or more to mean much)`);
  const { images, labels } = imageFolderTensors(folder, n);
  labels?.dispose();
  return { images, resolution: folder.size, record: { source: 'samples', samplesDir: folder.dir, sampler: null, steps: null } };
}

const fmt = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : String(v));

export function formatTable(m: EvalMetrics, head: string): string {
  const rows: [string, string][] = [
    ['FID', fmt(m.fid, 3)],
    [`KID x 1000 (${m.kid.subsets} subsets of ${m.kid.subsetSize})`, `${fmt(1000 * m.kid.mean, 3)} +- ${fmt(1000 * m.kid.std, 3)}`],
    [`precision (k = ${m.k})`, fmt(m.precision, 4)],
    [`recall (k = ${m.k}, ${m.prRealCount} real)`, fmt(m.recall, 4)],
    [`Inception Score, classifier (${m.inceptionScore.splits} splits)`, `${fmt(m.inceptionScore.mean, 3)} +- ${fmt(m.inceptionScore.std, 3)}   (test set: ${fmt(m.realInceptionScore.mean, 3)})`],
    ...(m.conditionalAccuracy !== undefined ? [['classified as their class', fmt(m.conditionalAccuracy, 4)] as [string, string]] : []),
  ];
  const total = m.classHistogram.counts.reduce((a, b) => a + b, 0);
  m.classHistogram.names.forEach((name, i) => {
    const c = m.classHistogram.counts[i]!;
    rows.push([i === 0 ? `class histogram: ${name}` : `                 ${name}`, `${String(c).padStart(5)}  (${fmt((100 * c) / total, 1)}%)`]);
  });
  // Intra-class diversity (eval/diversity.ts): samples / test images, overall and per predicted class.
  const d = m.diversity;
  const ratio = (r: number | null, g: number | null, re: number | null): string => (r === null ? '-  (fewer than 2 samples)' : `${fmt(r, 3)}  (${fmt(g!, 2)} / ${fmt(re!, 2)})`);
  rows.push(['intra-class diversity, samples / test set', ratio(d.ratio, d.generated, d.real)]);
  m.classHistogram.names.forEach((name, i) => {
    const c = d.perClass[i]!;
    rows.push([`                 ${name}`, ratio(c.ratio, c.generated, c.real)]);
  });
  const w = Math.max(...rows.map(([k]) => k.length));
  return `${head}\n${rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n')}\n`;
}

async function runEval(f: EvalFlags, cmd: Command): Promise<void> {
  checkFlags(f, cmd);
  const common = { run: f.run!, ema: f.ema, threads: f.threads, seed: f.seed, batchSize: f.batchSize ?? 256, ...(f.checkpoint !== undefined ? { checkpoint: f.checkpoint } : {}), ...(f.data !== undefined ? { data: f.data } : {}), ...(f.json !== undefined ? { json: f.json } : {}) };
  if (f.nll) return runNll({ ...common, n: f.n ?? DEFAULT_NLL_N, clip: f.clip, ...(f.variance !== undefined ? { variance: f.variance } : {}) });
  if (f.lossByT) return runLossByT({ ...common, n: f.n ?? DEFAULT_LOSS_BY_T_N, ...(f.out !== undefined ? { out: f.out } : {}), ...(f.points !== undefined ? { points: f.points } : {}) });
  const t0 = performance.now();
  // Sampling sets the threads itself; the feature network runs on the same count.
  if (f.run === undefined) setNumThreads(f.threads);
  const net = loadFeatureNet(f.features ?? DEFAULT_FEATURE_NET_PATH);
  let drawn: Drawn | undefined;
  try {
    drawn = f.run !== undefined ? drawFromRun(f) : readSamples(f);
    setNumThreads(f.threads);
    const n = drawn.images.shape[0]!;
    const t1 = performance.now();
    const cacheDir = f.cache === false ? null : f.cache ?? defaultCacheDir();
    const ref = referenceStats({
      net, resolution: drawn.resolution, cacheDir, ...(f.data !== undefined ? { dataDir: f.data } : {}), log: (l) => process.stderr.write(`${l}\n`),
    });
    const refSeconds = (performance.now() - t1) / 1000;
    let metrics: EvalMetrics;
    const t2 = performance.now();
    try {
      metrics = evaluateSamples(drawn.images, {
        net, reference: ref, seed: f.seed, ...(drawn.labels ? { labels: drawn.labels } : {}),
      });
    } finally {
      disposeReference(ref);
    }
    const metricSeconds = (performance.now() - t2) / 1000;
    const total = (performance.now() - t0) / 1000;
    const r = drawn.record;
    const what = r.source === 'run'
      ? `${n} samples of ${r.checkpoint as string} (${r.sampler as string}, ${r.steps as number} steps${r.eta ? `, eta ${r.eta as number}` : ''}${r.guidance ? `, guidance ${r.guidance as number}` : ''}${r.classifier ? `, classifier scale ${(r.classifier as { scale: number }).scale}` : ''})`
      : `${n} images of ${r.samplesDir as string}`;
    const head = `ddpm eval: ${what} at ${drawn.resolution}x${drawn.resolution}, against the ${ref.count} Fashion-MNIST test images${drawn.resolution !== 28 ? ` brought to ${drawn.resolution}x${drawn.resolution}` : ''}`;
    process.stdout.write(formatTable(metrics, head));
    if (f.json !== undefined) {
      const { classHistogram, ...rest } = metrics;
      const report = {
        version: 1, command: 'ddpm eval', date: new Date().toISOString(),
        ...r, samples: n, resolution: drawn.resolution, seed: f.seed,
        featureNetwork: { path: net.path, sha256: net.sha256, testAccuracy: Number(net.metadata.testAccuracy ?? NaN) },
        reference: { dataset: ref.key.dataset, split: ref.key.split, count: ref.count, resolution: ref.key.resolution, dataSha256: ref.key.data, cacheFile: ref.cacheFile, fromCache: ref.fromCache },
        metrics: {
          ...rest, classHistogram: Object.fromEntries(classHistogram.names.map((name, i) => [name, classHistogram.counts[i]!])),
          diversity: { ...rest.diversity, perClass: Object.fromEntries(classHistogram.names.map((name, i) => [name, rest.diversity.perClass[i]!])) },
        },
        seconds: { sampling: (r.samplingSeconds as number | undefined) ?? null, reference: refSeconds, metrics: metricSeconds, total },
      };
      delete (report as Record<string, unknown>).samplingSeconds;
      writeFileAtomic(f.json, `${JSON.stringify(report, null, 2)}\n`);
      process.stderr.write(`wrote ${f.json}\n`);
    }
  } finally {
    drawn?.images.dispose();
    net.net.dispose();
  }
}
