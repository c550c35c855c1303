// `npm run bench`, ONNX part: sampling speed of each preset's exported model on ONNX Runtime's CPU
// provider in Node (onnxruntime-node) beside the same weights on libtorch, and the two forms of
// the transposed convolutions (ConvTranspose, or Conv + DepthToSpace). Each measurement is its own
// process, and the configurations alternate round by round, so that machine noise hits all of them.
// The loop is deterministic DDIM (eta 0) over the preset's epoch-grid steps (150 for dli02 and dli03,
// 50 for ddpm), treating the output as eps for every preset: a timing of the model calls and the
// update arithmetic, not a sampler.
//   node dist/bench/onnx.js [--rounds 3] [--batch 64] [--only dli02,dli03,ddpm] [--repeats 2]
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DIR = path.join(ROOT, '.bench', 'onnx');
const { values: a } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' }, batch: { type: 'string', default: '64' }, only: { type: 'string' }, repeats: { type: 'string', default: '2' },
    child: { type: 'string' }, preset: { type: 'string' }, file: { type: 'string' }, steps: { type: 'string' }, threads: { type: 'string', default: '2' },
  },
});
const batch = Number(a.batch);
const threads = Number(a.threads);
const repeats = Number(a.repeats);

type Preset = 'dli02' | 'dli03' | 'ddpm';
const PRESET_SETUP: Record<Preset, { imageSize: number; T: number; steps: number; schedule: object }> = {
  dli02: { imageSize: 16, T: 150, steps: 150, schedule: { kind: 'linear', T: 150, betaStart: 1e-4, betaEnd: 0.02 } },
  dli03: { imageSize: 16, T: 150, steps: 150, schedule: { kind: 'linear', T: 150, betaStart: 1e-4, betaEnd: 0.02 } },
  ddpm: { imageSize: 28, T: 1000, steps: 50, schedule: { kind: 'cosine', T: 1000, s: 0.008 } },
};
type Engine = 'libtorch' | 'ort-subpixel' | 'ort-convtranspose';

/** DDIM's (eta 0) x_{t'} = c1 x_t + c2 eps at evenly spaced (trailing) steps: [t, c1, c2] per step. */
async function ddimPlan(preset: Preset): Promise<[number, number, number][]> {
  const { makeSchedule } = await import('../src/diffusion/index.js');
  const { T, steps, schedule } = PRESET_SETUP[preset];
  const ab = makeSchedule(schedule as Parameters<typeof makeSchedule>[0]).alphaBar;
  const ts = Array.from({ length: steps }, (_, i) => Math.round(T - 1 - (i * T) / steps));
  return ts.map((t, i) => {
    const prev = i + 1 < ts.length ? ab[ts[i + 1]!]! : 1;
    const c1 = Math.sqrt(prev / ab[t]!);
    return [t, c1, Math.sqrt(1 - prev) - c1 * Math.sqrt(1 - ab[t]!)];
  });
}

/**
 * Images per second of full reverse processes, `repeats` times after one warm-up process: by the
 * wall clock, and by the process's CPU time (user + system, all threads), which a busy shared
 * machine distorts less when each engine runs on one thread.
 */
async function child(engine: Engine, preset: Preset): Promise<{ wall: number[]; cpu: number[] }> {
  const plan = await ddimPlan(preset);
  const s = PRESET_SETUP[preset].imageSize;
  const n = batch * s * s;
  const times: number[] = [];
  const cpuTimes: number[] = [];
  const timed = async (i: number, fn: () => unknown): Promise<void> => {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await fn();
    const c = process.cpuUsage(c0);
    if (i > 0) {
      times.push((performance.now() - t0) / 1000);
      cpuTimes.push((c.user + c.system) / 1e6);
    }
  };
  if (engine === 'libtorch') {
    const { setNumThreads, manualSeed, randn, tensor, tidy, noGrad } = await import('../src/tensor/index.js');
    const { createModel, inferencePredictor } = await import('../src/models/index.js');
    setNumThreads(threads);
    manualSeed(0);
    const model = createModel({ preset, imageChannels: 1, imageSize: s, T: PRESET_SETUP[preset].T }).eval();
    const predictor = inferencePredictor(model);
    const sample = (): number => noGrad(() => tidy(() => {
      let x = randn([batch, 1, s, s]);
      for (const [t, c1, c2] of plan) {
        const next = tidy(() => x.mul(c1).add(predictor.forward(x, tensor(new Array<number>(batch).fill(t), [batch], { dtype: 'int64' })).mul(c2)));
        x.dispose();
        x = next;
      }
      return x.sum().item();
    }));
    for (let i = 0; i <= repeats; i++) await timed(i, sample);
  } else {
    const { OnnxRuntimeModel } = await import('../src/models/onnx-runtime.js');
    const model = await OnnxRuntimeModel.open(a.file!, { threads });
    const sample = async (): Promise<void> => {
      let x = Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
      for (const [t, c1, c2] of plan) {
        const eps = await model.run(x, new Array<number>(batch).fill(t));
        const next = new Float32Array(n);
        for (let j = 0; j < n; j++) next[j] = c1 * x[j]! + c2 * eps[j]!;
        x = next;
      }
    };
    for (let i = 0; i <= repeats; i++) await timed(i, sample);
    await model.release();
  }
  return { wall: times.map((sec) => batch / sec), cpu: cpuTimes.map((sec) => batch / sec) };
}

const median = (xs: number[]): number => { const q = [...xs].sort((x, y) => x - y); const m = q.length >> 1; return q.length % 2 ? q[m]! : (q[m - 1]! + q[m]!) / 2; };

async function parent(): Promise<void> {
  const { manualSeed } = await import('../src/tensor/index.js');
  const { createModel } = await import('../src/models/index.js');
  const { modelToOnnx } = await import('../src/models/onnx-export.js');
  const { encodeOnnx } = await import('../src/io/onnx.js');
  const { writeFileAtomic } = await import('../src/io/atomic.js');
  mkdirSync(DIR, { recursive: true });
  const presets = (a.only?.split(',') ?? ['dli02', 'dli03', 'ddpm']) as Preset[];
  const runs: { preset: Preset; engine: Engine; file?: string }[] = [];
  const sizes: string[] = [];
  for (const preset of presets) {
    // Random weights: the time per call does not depend on their values (the same seed as the libtorch side).
    manualSeed(0);
    const config = { preset, imageChannels: 1, imageSize: PRESET_SETUP[preset].imageSize, T: PRESET_SETUP[preset].T };
    const model = createModel(config).eval();
    runs.push({ preset, engine: 'libtorch' });
    for (const form of preset === 'ddpm' ? (['subPixel'] as const) : (['subPixel', 'convTranspose'] as const)) {
      const file = path.join(DIR, `${preset}-${form}.onnx`);
      writeFileAtomic(file, encodeOnnx(modelToOnnx(model, config, { convTranspose: form })));
      if (form === 'subPixel') sizes.push(`${preset} ${statSync(file).size.toLocaleString('en-US')} bytes`);
      runs.push({ preset, engine: form === 'subPixel' ? 'ort-subpixel' : 'ort-convtranspose', file });
    }
    model.dispose();
  }
  const per = new Map(runs.map((r) => [r, { wall: [] as number[], cpu: [] as number[] }]));
  const rounds = Number(a.rounds);
  for (let round = 0; round < rounds; round++) {
    for (const r of round % 2 ? [...runs].reverse() : runs) {
      const args = [fileURLToPath(import.meta.url), '--child', r.engine, '--preset', r.preset, '--batch', String(batch), '--repeats', String(repeats), '--threads', String(threads), ...(r.file ? ['--file', r.file] : [])];
      const p = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' }, cwd: ROOT });
      if (p.status !== 0) throw new Error(`${r.engine} ${r.preset} failed:\n${p.stderr}`);
      const ips = JSON.parse(p.stdout.trim().split('\n').pop()!) as { wall: number[]; cpu: number[] };
      per.get(r)!.wall.push(...ips.wall);
      per.get(r)!.cpu.push(...ips.cpu);
      process.stderr.write(`  ${r.preset} ${r.engine} round ${round + 1}: ${ips.wall.map((v) => v.toFixed(1)).join(', ')} img/s (per CPU second: ${ips.cpu.map((v) => v.toFixed(1)).join(', ')})\n`);
    }
  }
  const med = (preset: Preset, engine: Engine, clock: 'wall' | 'cpu'): number => { const r = runs.find((x) => x.preset === preset && x.engine === engine); return r ? median(per.get(r)![clock]) : NaN; };
  const fmt = (v: number): string => (Number.isNaN(v) ? '-' : v.toFixed(1));
  console.log(`\nSampling on libtorch and on ONNX Runtime (CPU, onnxruntime-node): ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${threads} threads each, batch ${batch}, ${rounds} alternating rounds of one process each (${repeats} reverse processes after a warm-up one), medians`);
  console.log(`ONNX files (random weights, same size as trained): ${sizes.join(', ')}\n`);
  for (const clock of ['wall', 'cpu'] as const) {
    console.log(clock === 'wall' ? 'Images per second (wall clock):\n' : '\nImages per CPU second (user + system time of the process):\n');
    console.log('| preset, steps | libtorch | ORT, Conv + DepthToSpace | ORT, ConvTranspose | ORT / libtorch (best ORT form) |');
    console.log('| --- | --- | --- | --- | --- |');
    for (const preset of presets) {
      const lt = med(preset, 'libtorch', clock);
      const sp = med(preset, 'ort-subpixel', clock);
      const ct = med(preset, 'ort-convtranspose', clock);
      const best = Number.isNaN(ct) ? sp : Math.max(sp, ct);
      console.log(`| ${preset}, ${PRESET_SETUP[preset].steps} | ${fmt(lt)} | ${fmt(sp)} | ${fmt(ct)} | ${(best / lt).toFixed(2)} |`);
    }
  }
}

if (a.child) console.log(JSON.stringify(await child(a.child as Engine, a.preset as Preset)));
else await parent();
