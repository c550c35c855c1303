// `ddpm sample`: generate images from a trained run with any of the samplers (src/samplers).
import { Command, InvalidArgumentError } from 'commander';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Generator, setNumThreads, tidy, keep, cat, stack, checkDevice, type Tensor, type Device } from '../tensor/index.js';
import { loadRun } from '../train/checkpoint.js';
import { inferencePredictor } from '../models/index.js';
import { runObjective, runNumClasses, runSampling, runLearnVariance } from '../train/config.js';
import {
  sample, modelOn, assertFinite, samplerDefaults, learnedVarianceNote, SAMPLER_OPTIONS as O, DEVICE_OPTION,
  type SamplerName, type Spacing, type Variance, type X0Processing, type StepResult,
} from '../samplers/index.js';
import { writePng } from '../io/png.js';
import { tensorTrajectoryGrid } from '../viz/tensor-grid.js';
import { makeGrid, toUint8Image, trajectorySteps } from '../viz/grid.js';
import { RUN_OPTIONS as R } from '../samplers/run-options.js';
import { declared, defaultThreads } from './args.js';
import { sampleOnnxModel } from './sample-onnx.js';
import { runInterpolate, DEFAULT_FRAMES, type InterpolateFlags } from './interpolate.js';
import { checkClassifierFlags, openClassifier } from './classifier-guidance.js';
import { CLASSIFIER_NEEDS_LIBTORCH } from '../samplers/onnx-model.js';

export interface SampleFlags {
  run: string; model?: string; checkpoint?: string; n: number; seed: number; batchSize?: number; threads: number; device: string; ema: boolean;
  grid?: string; outDir?: string; trajectory?: string; trajectoryX0?: boolean; scale: number;
  sampler?: SamplerName; steps?: number; eta?: number; spacing?: Spacing; variance?: Variance; clip?: X0Processing;
  guidance?: number; class?: number[]; correctorSteps?: number; snr?: number;
  interpolate?: string; frames?: number; gif?: string;
  classifier?: string; classifierScale?: number;
}

/** --class: one class index or a comma-separated list of distinct ones. */
export function classList(v: string): number[] {
  const parts = v.split(',').map((s) => s.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) throw new InvalidArgumentError(`--class must be a class index or a comma-separated list of them (e.g. 3 or 0,2,5), got "${v}"`);
  const list = parts.map(Number);
  if (new Set(list).size !== list.length) throw new InvalidArgumentError(`--class lists a class twice: "${v}"`);
  return list;
}

export function sampleCommand(): Command {
  return new Command('sample')
    .description('generate images from a trained run (DDPM ancestral, DDIM, DPM-Solver++(2M) or predictor-corrector sampling)')
    .addOption(declared(R.run))
    .option('--model <file>', 'an .onnx file written by `ddpm export`: sample on ONNX Runtime (no libtorch; Philox noise, so other images than --run for a seed)')
    .addOption(declared(R.checkpoint))
    .addOption(declared(R.ema))
    .addOption(declared(R.n, { help: 'number of images (a class grid without -n rounds 64 up to whole rows)', default: 64 }))
    .addOption(declared(R.seed, { default: 0 }))
    .addOption(declared(R.batchSize))
    .addOption(declared(R.threads, { default: defaultThreads() }))
    .addOption(declared(DEVICE_OPTION).default('cpu'))
    .addOption(declared(O.sampler))
    .addOption(declared(O.steps))
    .addOption(declared(O.eta))
    .addOption(declared(O.spacing))
    .addOption(declared(O.variance))
    .addOption(declared(O.x0Processing))
    .addOption(declared(O.guidance))
    .option('--class <c>', 'class-conditional runs, or --classifier: a class index or a comma list (default: one row per class)', classList)
    .addOption(declared(R.classifier))
    .addOption(declared(O.classifierScale))
    .addOption(declared(O.correctorSteps))
    .addOption(declared(O.snr))
    .option('--grid <file>', 'write all images as one grid PNG')
    .option('--out-dir <dir>', 'write one 8-bit PNG per image (00000.png, 00001.png, ...)')
    .option('--trajectory <file>', 'write rows of x_t from noise to image at 10 evenly spaced steps of the sampler (up to 8 images, or one per class)')
    .option('--trajectory-x0', 'in --trajectory, put the predicted x0 under each row of x_t')
    .addOption(declared(R.scale, { help: 'upscale grids by this integer factor (nearest)', default: 4 }))
    .addOption(declared(R.interpolate))
    .addOption(declared(R.frames, { default: DEFAULT_FRAMES }))
    .option('--gif <file>', '--interpolate: also write the frames as an animated GIF, seed A to seed B and back')
    .action((f: SampleFlags, cmd: Command) => {
      const nGiven = cmd.getOptionValueSource('n') !== 'default';
      const given = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
      if (f.interpolate !== undefined) {
        checkSamplerFlags(f, 'ddim');
        return runInterpolate(f as InterpolateFlags, given);
      }
      for (const [key, flag] of [['frames', '--frames'], ['gif', '--gif']] as const) if (given(key)) throw new Error(`sample: ${flag} applies to --interpolate A,B only (the path between two seeds)`);
      if (f.model !== undefined && f.run !== undefined) throw new Error('sample: give --run DIR (libtorch) or --model FILE.onnx (ONNX Runtime), not both');
      if (f.model === undefined && f.run === undefined) throw new Error('sample: nothing to sample from; give --run DIR (a run of `ddpm train`) or --model FILE.onnx (from `ddpm export`)');
      if (f.model !== undefined && f.device !== 'cpu') throw new Error(`sample: --device ${f.device} applies to --run (libtorch); ONNX Runtime in Node samples on the CPU`);
      checkDevice(f.device, '--device');
      if (f.model !== undefined && (f.classifier !== undefined || f.classifierScale !== undefined)) throw new Error(`sample: --classifier with --model: ${CLASSIFIER_NEEDS_LIBTORCH}`);
      checkClassifierFlags('sample', f, f.class !== undefined);
      return f.model !== undefined ? sampleOnnxModel(f, nGiven, { threadsGiven: cmd.getOptionValueSource('threads') !== 'default', emaGiven: cmd.getOptionValueSource('ema') !== 'default' }) : runSample(f, nGiven);
    });
}

/** Flags that belong to some samplers only: each refused elsewhere, with the reason. */
export function checkSamplerFlags(f: SampleFlags, s: SamplerName): void {
  if (f.eta !== undefined && s !== 'ddim') throw new Error(`sample: --eta applies to --sampler ddim only; ${s} has no eta (${s === 'dpmpp2m' ? 'it solves the ODE, without noise' : 'its noise is set by --variance'})`);
  if (f.variance !== undefined && s !== 'ddpm' && s !== 'pc') throw new Error(`sample: --variance applies to --sampler ddpm and pc only; ${s === 'ddim' ? "ddim's noise is set by --eta" : 'dpmpp2m adds no noise'}`);
  if (f.spacing !== undefined && s === 'dpmpp2m') throw new Error('sample: --spacing does not apply to dpmpp2m, which has its own timesteps (round(linspace(0, T - 1, K + 1)), as diffusers)');
  if ((f.correctorSteps !== undefined || f.snr !== undefined) && s !== 'pc') throw new Error(`sample: --corrector-steps and --snr apply to --sampler pc only, not ${s}`);
}

/**
 * Class labels per image and the grid's images per row. With classifier guidance (classifierClasses
 * > 0) the classes are the classifier's where the run itself has none.
 */
export function classLayout(f: SampleFlags, runClasses: number, nGiven: boolean, classifierClasses = 0): { n: number; labels?: number[]; perRow: number; trajectoryRows: number[] } {
  const firstRows = (n: number): number[] => Array.from({ length: Math.min(n, 8) }, (_, i) => i);
  if (runClasses === 0 && f.guidance !== undefined) throw new Error(`sample: --guidance needs a class-conditional run (it mixes conditional and unconditional outputs), and ${f.run ?? f.model} was trained without classes${classifierClasses > 0 ? '; --classifier-scale sets the strength of classifier guidance' : ''}`);
  const numClasses = runClasses > 0 ? runClasses : classifierClasses;
  if (numClasses === 0) {
    if (f.class) throw new Error(`sample: --class needs a class-conditional run or --classifier, and ${f.run ?? f.model} was trained without classes; drop --class`);
    return { n: f.n, perRow: Math.ceil(Math.sqrt(f.n)), trajectoryRows: firstRows(f.n) };
  }
  const bad = f.class?.find((c) => c >= numClasses);
  if (bad !== undefined) throw new Error(`sample: --class ${bad} is outside the ${runClasses > 0 ? "run's" : "classifier's"} classes 0..${numClasses - 1}`);
  const classes = f.class ?? Array.from({ length: numClasses }, (_, i) => i);
  if (classes.length === 1) return { n: f.n, labels: new Array<number>(f.n).fill(classes[0]!), perRow: Math.ceil(Math.sqrt(f.n)), trajectoryRows: firstRows(f.n) };
  // One row per class (notebook 04's grids).
  if (nGiven && f.n % classes.length !== 0) {
    throw new Error(`sample: -n ${f.n} does not make whole rows for ${classes.length} classes (one row per class); give a multiple of ${classes.length}, or one --class`);
  }
  const perRow = Math.ceil(f.n / classes.length);
  const n = perRow * classes.length;
  return { n, labels: Array.from({ length: n }, (_, i) => classes[Math.floor(i / perRow)]!), perRow, trajectoryRows: classes.map((_, r) => r * perRow).slice(0, 10) };
}

/** Refuses a sampling that writes nothing, and --trajectory-x0 without --trajectory. */
export function checkOutputs(f: SampleFlags): void {
  if (!f.grid && !f.outDir && !f.trajectory) {
    throw new Error('sample: nothing to write; give --grid FILE, --out-dir DIR and/or --trajectory FILE');
  }
  if (f.trajectoryX0 && !f.trajectory) throw new Error('sample: --trajectory-x0 adds rows to the --trajectory picture; give --trajectory FILE too');
}

/** --grid and --out-dir: the images (N C H W values in [-1, 1]) as one grid PNG and one 8-bit PNG each. */
export function writeImages(f: SampleFlags, data: Float32Array, [n, c, h, w]: [number, number, number, number], perRow: number): void {
  if (f.grid) {
    writePng(f.grid, makeGrid(data, n, c, h, w, { nrow: perRow, scale: f.scale }));
    process.stderr.write(`wrote ${f.grid}\n`);
  }
  if (f.outDir) {
    mkdirSync(f.outDir, { recursive: true });
    const size = c * h * w;
    for (let i = 0; i < n; i++) {
      writePng(path.join(f.outDir, `${String(i).padStart(5, '0')}.png`), toUint8Image(data.subarray(i * size, (i + 1) * size), c, h, w));
    }
    process.stderr.write(`wrote ${n} PNGs to ${f.outDir}\n`);
  }
}

function runSample(f: SampleFlags, nGiven: boolean): void {
  checkOutputs(f);
  const { config, model, diffusion, checkpoint, step } = loadRun(f.run!, f.checkpoint, { ema: f.ema });
  const objective = runObjective(config);
  const numClasses = runNumClasses(config);
  const T = diffusion.T;
  // The defaults follow the run: the sampler of its own epoch grids unless --sampler names another.
  const def = samplerDefaults(runSampling(config, step), f.sampler);
  const sampler = def.sampler;
  checkSamplerFlags(f, sampler);
  if (f.steps !== undefined && f.steps > T) throw new Error(`sample: --steps ${f.steps} exceeds the run's T = ${T} timesteps; a sampler visits at most T of them`);
  // Classifier guidance: the classifier's classes stand in for an unconditional run's.
  const clf = openClassifier(f, config, f.run!, f.device as Device);
  const layout = classLayout(f, numClasses, nGiven, clf?.numClasses ?? 0);
  if (layout.n !== f.n) process.stderr.write(`drawing ${layout.n} images (${layout.perRow} per class row) instead of ${f.n}\n`);
  const { imageChannels: c, imageSize: s } = config.model;
  const note = runLearnVariance(config) ? learnedVarianceNote(sampler, f.eta) : null;
  if (note) process.stderr.write(`sample: note: ${note}\n`);
  const steps = f.steps ?? def.steps;
  const clip = f.clip ?? def.x0Processing;

  // Trajectory: 10 evenly spaced positions of the sampler's own step list (the notebook's spacing for ddpm).
  const keepAt = new Set(trajectorySteps(steps, 10).map((p) => steps - 1 - p));
  const rows = layout.trajectoryRows;
  const shots: { t: number; parts: Tensor[] }[] = [];
  const onStep = (st: StepResult, offset: number): void => {
    if (!keepAt.has(st.index)) return;
    const local = rows.filter((r) => r >= offset && r < offset + st.x.shape[0]!).map((r) => r - offset);
    if (local.length === 0) return;
    let shot = shots.find((sh) => sh.t === st.t);
    if (!shot) shots.push(shot = { t: st.t, parts: [] });
    shot.parts.push(keep(tidy(() => {
      const pick = (x: Tensor): Tensor => cat(local.map((i) => x.narrow(0, i, 1)), 0); // (R, C, H, W)
      // With --trajectory-x0 each image gets two rows: x_t, then x0_hat under it.
      return f.trajectoryX0 ? stack([pick(st.x), pick(st.x0)], 1).reshape([2 * local.length, c, s, s]) : pick(st.x);
    })));
  };

  const t0 = performance.now();
  if (f.device !== 'cpu') model.to(f.device as Device);
  setNumThreads(f.threads);
  const predictor = inferencePredictor(model);
  let x: Tensor;
  try {
    x = sample({
      model: modelOn((xt, t, cond) => predictor.forward(xt, t, cond), f.device as Device),
      diffusion, objective, shape: [layout.n, c, s, s], sampler, steps, x0Processing: clip,
      generator: new Generator(f.seed), batchSize: f.batchSize ?? Math.min(layout.n, 500),
      ...(f.eta !== undefined ? { eta: f.eta } : {}),
      ...(def.spacing !== null ? { spacing: f.spacing ?? def.spacing } : {}),
      ...(def.variance !== null ? { variance: f.variance ?? def.variance } : {}),
      ...(runLearnVariance(config) ? { learnVariance: true } : {}),
      ...(sampler === 'pc' ? { correctorSteps: f.correctorSteps ?? def.correctorSteps!, snr: f.snr ?? def.snr! } : {}),
      ...(numClasses > 0 ? { numClasses, labels: layout.labels, guidance: f.guidance ?? 0 } : {}),
      ...(clf ? { classifier: clf.guidance(layout.labels!) } : {}),
      ...(f.trajectory ? { onStep } : {}),
    });
  } finally {
    predictor.dispose();
    clf?.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  assertFinite(x, `samples of ${checkpoint}`);
  const what = [`${sampler}, ${steps} steps`, f.eta ? `eta ${f.eta}` : '', clip !== 'none' ? `x0 ${clip}` : '', f.guidance ? `guidance ${f.guidance}` : '', clf ? `classifier scale ${clf.scale}` : ''].filter(Boolean).join(', ');
  process.stderr.write(`sampled ${layout.n} images in ${seconds.toFixed(1)} s (${(layout.n / seconds).toFixed(1)} img/s; ${what}) from ${checkpoint}\n`);
  writeImages(f, x.float().dataSync() as Float32Array, [layout.n, c, s, s], layout.perRow);
  if (f.trajectory) {
    const snapshots = shots.map((sh) => {
      const all = sh.parts.length === 1 ? sh.parts[0]! : keep(cat(sh.parts, 0));
      if (sh.parts.length > 1) for (const p of sh.parts) p.dispose();
      return all;
    });
    writePng(f.trajectory, tensorTrajectoryGrid(snapshots, { scale: f.scale }));
    for (const sn of snapshots) sn.dispose();
    process.stderr.write(`wrote ${f.trajectory} (x_t${f.trajectoryX0 ? ' and x0_hat' : ''} at t = ${shots.map((sh) => sh.t).join(', ')})\n`);
  }
  x.dispose();
}
