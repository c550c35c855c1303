// The caching CPU allocator and inference mode, measured: each configuration in its own process (the
// allocator and the heap are process-wide), rounds alternated, medians printed. Per workload and
// configuration: img/s, minor page faults per model step (/proc/self/stat) and peak resident memory
// (VmHWM), all over the measured part after a warm-up.
//   node dist/bench/allocator.js [--rounds 3] [--only sample-ddpm,sample-dli02,train-ddpm] [--steps 20]
//   (npm run bench -- allocator [...])
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import {
  type Tensor, type CpuAllocator, Generator, configureRuntime, noGrad, tidy, keep, rand, manualSeed, allocatorStats,
  minorFaults, peakResidentBytes, setNumThreads,
} from '../src/tensor/index.js';
import { Adam } from '../src/nn/index.js';
import { createModel, inferencePredictor, type PresetName } from '../src/models/index.js';
import { Diffusion, makeSchedule, simpleLoss } from '../src/diffusion/index.js';
import { sample, resolveSampling, reverseProcess, runSync, tensorOps, callModel, type SamplerOptions } from '../src/samplers/index.js';
import { presetDefaults } from '../src/train/config.js';

const { values: a } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' }, only: { type: 'string' }, steps: { type: 'string' },
    // The child's own options: one workload in one configuration.
    child: { type: 'string' }, allocator: { type: 'string' }, mode: { type: 'string' }, threads: { type: 'string', default: '2' },
  },
});

interface Workload { name: string; label: string; preset: PresetName; kind: 'sample' | 'train'; batch: number; steps: number; repeats: number }
const WORKLOADS: Workload[] = [
  // DDIM, class-conditional with guidance 1.5 (each step runs the model on 2x the batch), as issue 17 times it.
  { name: 'sample-ddpm', label: 'ddpm preset, 28x28, DDIM 20 steps, guidance 1.5, batch 256', preset: 'ddpm', kind: 'sample', batch: 256, steps: 20, repeats: 1 },
  { name: 'sample-dli02', label: 'dli02, 16x16, DDIM 20 steps, batch 500', preset: 'dli02', kind: 'sample', batch: 500, steps: 20, repeats: 2 },
  { name: 'train-ddpm', label: 'ddpm preset, 28x28, Adam training step, batch 64', preset: 'ddpm', kind: 'train', batch: 64, steps: 10, repeats: 1 },
];

interface Config { allocator: CpuAllocator; mode: 'no-grad' | 'inference' }
const SAMPLE_CONFIGS: Config[] = [
  { allocator: 'default', mode: 'no-grad' }, { allocator: 'default', mode: 'inference' },
  { allocator: 'caching', mode: 'no-grad' }, { allocator: 'caching', mode: 'inference' },
];
const TRAIN_CONFIGS: Config[] = [{ allocator: 'default', mode: 'no-grad' }, { allocator: 'caching', mode: 'no-grad' }];

interface Result { imgPerSec: number; faultsPerStep: number; peakRssMiB: number; cacheHitRate: number | null }

/** One workload in one configuration, in this process: what a child prints. */
function runChild(w: Workload, c: Config): Result {
  configureRuntime({ allocator: c.allocator });
  setNumThreads(Number(a.threads));
  manualSeed(0);
  const config = presetDefaults(w.preset);
  const numClasses = w.kind === 'sample' && w.preset === 'ddpm' ? 10 : 0;
  const model = createModel({ ...config.model, numClasses });
  const diffusion = new Diffusion(makeSchedule(config.schedule));
  const { imageChannels: ch, imageSize: s } = config.model;
  let step: () => void;
  let modelCalls: number;
  if (w.kind === 'sample') {
    model.eval();
    const predictor = inferencePredictor(model);
    const labels = numClasses > 0 ? Array.from({ length: w.batch }, (_, i) => i % numClasses) : undefined;
    const o: SamplerOptions = {
      model: (x, t, cond) => predictor.forward(x, t, cond), diffusion, objective: config.objective ?? 'eps', shape: [w.batch, ch, s, s],
      sampler: 'ddim', steps: w.steps, ...(labels ? { numClasses, labels, guidance: 1.5 } : {}),
    };
    // 'no-grad' drives the same reverse process as sample() under noGrad, as sample() did before inference mode.
    const noGradSample = (g: Generator): Tensor => noGrad(() => runSync(
      reverseProcess({ ops: tensorOps(g), terms: diffusion.terms, sampling: resolveSampling({ ...o, generator: g }), shape: o.shape, ...(labels ? { labels } : {}) }),
      (call) => callModel(o.model, numClasses, call.x, call.t, call.labels),
    ));
    step = () => {
      const g = new Generator(1);
      (c.mode === 'inference' ? sample({ ...o, generator: g }) : noGradSample(g)).dispose();
    };
    modelCalls = w.steps;
  } else {
    model.train();
    const opt = new Adam(model.namedParameters(), { lr: 1e-3 });
    const g = new Generator(1);
    const x = keep(rand([w.batch, ch, s, s], { generator: g }).mul(2).sub(1)); // (B, C, H, W)
    step = () => {
      for (let i = 0; i < w.steps; i++) {
        tidy(() => {
          opt.zeroGrad();
          simpleLoss(diffusion, (xt, t) => model.forward(xt, t), x, g).backward();
          opt.step();
        });
      }
    };
    modelCalls = w.steps;
  }
  step(); // warm-up: the heap (or the cache) grows to the workload's size here
  const s0 = allocatorStats();
  const f0 = minorFaults()!;
  const t0 = performance.now();
  for (let r = 0; r < w.repeats; r++) step();
  const seconds = (performance.now() - t0) / 1000;
  const faults = minorFaults()! - f0;
  const s1 = allocatorStats();
  const asked = s1.hits + s1.misses - s0.hits - s0.misses;
  return {
    imgPerSec: (w.batch * (w.kind === 'train' ? w.steps : 1) * w.repeats) / seconds,
    faultsPerStep: faults / (modelCalls * w.repeats),
    peakRssMiB: peakResidentBytes()! / 2 ** 20,
    cacheHitRate: c.allocator === 'caching' && asked > 0 ? (s1.hits - s0.hits) / asked : null,
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function main(): void {
  const only = a.only?.split(',');
  const rounds = Number(a.rounds);
  const here = fileURLToPath(import.meta.url);
  console.log(`allocator bench: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}, ${rounds} rounds`);
  for (const w0 of WORKLOADS.filter((x) => !only || only.includes(x.name))) {
    const w = a.steps !== undefined ? { ...w0, steps: Number(a.steps) } : w0;
    const configs = w.kind === 'sample' ? SAMPLE_CONFIGS : TRAIN_CONFIGS;
    const results = configs.map((): Result[] => []);
    for (let r = 0; r < rounds; r++) {
      // Alternate the order each round, so machine noise does not favour one configuration.
      const order = configs.map((_, i) => i);
      if (r % 2) order.reverse();
      for (const i of order) {
        const c = configs[i]!;
        const p = spawnSync(process.execPath, [here, '--child', w.name, '--allocator', c.allocator, '--mode', c.mode, '--threads', a.threads!, ...(a.steps ? ['--steps', a.steps] : [])],
          { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS ?? '1' } });
        if (p.status !== 0) throw new Error(`${w.name} ${c.allocator}/${c.mode} failed:\n${p.stderr}`);
        results[i]!.push(JSON.parse(p.stdout.trim().split('\n').pop()!) as Result);
      }
    }
    console.log(`\n${w.label} (${w.steps} ${w.kind === 'train' ? 'training steps' : 'model steps'} per repeat, ${w.repeats} measured after 1 warm-up; medians of ${rounds})`);
    console.log('| allocator | autograd | img/s | min..max | minor faults per step | peak RSS (MiB) | cache hit rate |');
    console.log('|---|---|---|---|---|---|---|');
    configs.forEach((c, i) => {
      const rs = results[i]!;
      const ips = rs.map((x) => x.imgPerSec);
      const hit = rs[0]!.cacheHitRate === null ? '' : `${(100 * median(rs.map((x) => x.cacheHitRate!))).toFixed(2)}%`;
      console.log(`| ${c.allocator} | ${w.kind === 'train' ? 'training' : c.mode} | ${median(ips).toFixed(1)} | ${Math.min(...ips).toFixed(1)}..${Math.max(...ips).toFixed(1)} | ` +
        `${median(rs.map((x) => x.faultsPerStep)).toFixed(0)} | ${median(rs.map((x) => x.peakRssMiB)).toFixed(0)} | ${hit} |`);
    });
  }
}

if (a.child !== undefined) {
  const w = WORKLOADS.find((x) => x.name === a.child);
  if (!w) throw new Error(`--child ${a.child}: no such workload; expected one of ${WORKLOADS.map((x) => x.name).join(', ')}`);
  const steps = a.steps !== undefined ? Number(a.steps) : w.steps;
  console.log(JSON.stringify(runChild({ ...w, steps }, { allocator: a.allocator as CpuAllocator, mode: a.mode as Config['mode'] })));
} else {
  main();
}
