// `npm run bench`: ddpm-ts against the PyTorch eager twins (tools/reference/) on the same machine, the
// same libtorch and BLAS, preset by preset and workload by workload: a training step of `ddpm train`
// at the preset's batch size, and the preset's default reverse process at a small and a large batch.
// Every run is its own process (so its peak resident memory, VmHWM, is the workload's), engines and
// configurations alternate within each round and the order reverses every other round, so that
// machine noise hits both. Prints medians, their ratio (above 1: ddpm-ts is faster), both engines'
// peak memory and minor page faults per step, as a table to paste into the README's Speed section.
//   node dist/bench/compare.js [--presets dli02,dli03,ddpm] [--only train,sample-small,sample-large,stack,opcall]
//     [--rounds 3] [--quick] [--conditional ddpm] [--guidance 1.5] [--explore]
// Each engine runs at its best configuration as measured (README, Speed): one OpenBLAS thread, two
// libtorch threads, and for PyTorch glibc's malloc thresholds raised as ddpm-ts raises its own
// (configureRuntime, src/tensor/runtime.ts). --explore also times two OpenBLAS threads and, for
// PyTorch, glibc's default thresholds, and takes each engine's best.
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values: a } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' }, presets: { type: 'string', default: 'dli02,dli03,ddpm' },
    only: { type: 'string', default: 'train,sample-small,sample-large' }, quick: { type: 'boolean', default: false },
    conditional: { type: 'string', default: 'ddpm' }, guidance: { type: 'string', default: '1.5' }, explore: { type: 'boolean', default: false },
  },
});
const rounds = Number(a.rounds);
const quick = a.quick === true;
const presets = a.presets!.split(',');
const only = a.only!.split(',');
const conditional = new Set(a.conditional!.split(',').filter(Boolean));
const KNOWN_PRESETS = ['dli02', 'dli03', 'ddpm'];
const KNOWN_WORKLOADS = ['train', 'sample-small', 'sample-large', 'stack', 'opcall'];
for (const p of presets) if (!KNOWN_PRESETS.includes(p)) throw new Error(`--presets: unknown preset "${p}"; expected some of ${KNOWN_PRESETS.join(', ')}`);
for (const w of only) if (!KNOWN_WORKLOADS.includes(w)) throw new Error(`--only: unknown workload "${w}"; expected some of ${KNOWN_WORKLOADS.join(', ')}`);

interface Result { median: number; per_repeat: number[]; unit: string; peak_rss_mb: number; minor_faults_per_step: number; loadavg: number[]; blas?: string }
interface Workload { preset: string; what: string; label: string; args: string[] }

/** The preset's default sampler and its step count (src/train/config.ts presetDefaults). */
const SAMPLER: Record<string, { name: string; steps: number; size: number; trainBatch: number }> = {
  dli02: { name: 'DDPM', steps: 150, size: 16, trainBatch: 128 },
  dli03: { name: 'DDPM', steps: 150, size: 16, trainBatch: 128 },
  ddpm: { name: 'DDIM', steps: 50, size: 28, trainBatch: 128 },
};

function workloads(preset: string): Workload[] {
  const s = SAMPLER[preset]!;
  const cond = conditional.has(preset);
  const classArgs = cond ? ['--classes', '10'] : [];
  const guided = cond ? [...classArgs, '--guidance', a.guidance!] : [];
  const condWords = cond ? `, 10 classes${Number(a.guidance) ? `, guidance ${a.guidance}` : ''}` : '';
  // --quick: fewer training steps and the first 10 reverse steps, scaled to the full loop's rate.
  const sampleSteps = quick ? ['--steps', String(Math.min(10, s.steps)), '--warmup', '2'] : ['--warmup', '3'];
  const [small, large] = s.size === 16 ? [64, 500] : [64, 256];
  const all: Workload[] = [
    { preset, what: 'train', label: `train step, batch ${s.trainBatch}${cond ? ', 10 classes' : ''}`, args: ['--what', 'train', ...classArgs, '--steps', quick ? '3' : '10', '--repeats', '3', '--warmup', '2'] },
    { preset, what: 'sample-small', label: `${s.name} ${s.steps} steps, batch ${small}${condWords}`, args: ['--what', 'sample', '--batch', String(small), ...guided, ...sampleSteps, '--repeats', quick ? '1' : '2'] },
    { preset, what: 'sample-large', label: `${s.name} ${s.steps} steps, batch ${large}${condWords}`, args: ['--what', 'sample', '--batch', String(large), ...guided, ...sampleSteps, '--repeats', '1'] },
  ];
  if (preset === presets[0]) {
    all.push(
      { preset: 'dli02', what: 'stack', label: 'conv/BN/ReLU stack train step, batch 128', args: ['--what', 'stack', '--steps', quick ? '3' : '10'] },
      { preset: 'dli02', what: 'opcall', label: 'one tiny op call (us, lower is better)', args: ['--what', 'opcall'] },
    );
  }
  return all.filter((w) => only.includes(w.what));
}

const MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: String(32 * 1024 * 1024), MALLOC_TRIM_THRESHOLD_: String(1024 * 1024 * 1024) };
interface Config { engine: 'ddpm-ts' | 'pytorch'; label: string; env: Record<string, string> }
function configs(): Config[] {
  const blas = a.explore ? ['1', '2'] : ['1'];
  return blas.flatMap((b): Config[] => [
    { engine: 'ddpm-ts', label: `BLAS ${b}`, env: { OPENBLAS_NUM_THREADS: b } },
    { engine: 'pytorch', label: `BLAS ${b}, malloc tuned`, env: { OPENBLAS_NUM_THREADS: b, ...MALLOC_ENV } },
    ...(a.explore ? [{ engine: 'pytorch' as const, label: `BLAS ${b}, malloc default`, env: { OPENBLAS_NUM_THREADS: b } }] : []),
  ]);
}

function runOne(w: Workload, cfg: Config): Result {
  const args = ['--preset', w.preset, '--threads', '2', ...w.args];
  const [cmd, argv] = cfg.engine === 'ddpm-ts'
    ? [process.execPath, [path.join(ROOT, 'dist', 'bench', 'workloads.js'), ...args]]
    : ['/usr/bin/python3', [path.join(ROOT, 'bench', 'pytorch_bench.py'), ...args]];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, ...cfg.env }, cwd: ROOT });
  if (r.status !== 0) throw new Error(`${cfg.engine} ${w.preset} ${w.what} failed (${cmd} ${argv.join(' ')}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Result;
}

const median = (xs: number[]): number => { const s = [...xs].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/**
 * Before timing a preset, both engines run its default reverse process for 4 images from the seeded
 * weights and x_T (--what check): the twins must have the same parameter count and give the same
 * images, or the figures would compare different work.
 */
function checkTwins(preset: string): string {
  const args = ['--preset', preset, '--what', 'check', ...(conditional.has(preset) ? ['--classes', '10', '--guidance', a.guidance!] : [])];
  const run = (cmd: string, argv: string[]): { params: number; x0: number[] } => {
    const r = spawnSync(cmd, [...argv, ...args], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
    if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} --what check failed:\n${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { params: number; x0: number[] };
  };
  const ours = run(process.execPath, [path.join(ROOT, 'dist', 'bench', 'workloads.js')]);
  const theirs = run('/usr/bin/python3', [path.join(ROOT, 'bench', 'pytorch_bench.py')]);
  if (ours.params !== theirs.params) throw new Error(`${preset}: ddpm-ts's model has ${ours.params} parameters, the PyTorch twin ${theirs.params}; the benchmark would compare different models`);
  const diff = Math.max(...ours.x0.map((v, i) => Math.abs(v - theirs.x0[i]!)));
  // Float rounding differs between the engines' op orders and grows along the reverse process.
  if (!(diff <= 1e-3)) throw new Error(`${preset}: the engines' reverse processes from the same weights and x_T differ by up to ${diff} (expected <= 1e-3); the sampler arithmetic is not the same`);
  return `${preset}: ${ours.params.toLocaleString('en-US')} parameters in both; the same ${ours.x0.length / 4} pixels x 4 images from the same weights and x_T, max difference ${diff.toExponential(1)}`;
}

const checks = presets.map(checkTwins);
for (const c of checks) process.stderr.write(`  twins checked: ${c}\n`);
const rows: string[] = [];
const configRows: string[] = [];
const loads: number[] = [];
let blasLine = '';
for (const w of presets.flatMap(workloads)) {
  const all = configs();
  const per = new Map<Config, Result[]>(all.map((c) => [c, []]));
  for (let r = 0; r < rounds; r++) {
    for (const c of r % 2 ? [...all].reverse() : all) {
      const res = runOne(w, c);
      per.get(c)!.push(res);
      loads.push(...res.loadavg);
      if (res.blas && c.engine === 'ddpm-ts') blasLine = res.blas;
      process.stderr.write(`  ${w.preset} ${w.what} ${c.engine} ${c.label} round ${r + 1}: ${res.median} ${res.unit}, ${res.peak_rss_mb} MB, ${res.minor_faults_per_step} faults/step\n`);
    }
  }
  const lowerBetter = w.what === 'opcall';
  const best: Partial<Record<Config['engine'], { m: number; c: Config; rss: number; faults: number }>> = {};
  for (const c of all) {
    const rs = per.get(c)!;
    const m = median(rs.flatMap((x) => x.per_repeat));
    const rss = median(rs.map((x) => x.peak_rss_mb));
    const faults = median(rs.map((x) => x.minor_faults_per_step));
    configRows.push(`| ${w.preset} | ${w.what} | ${c.engine} | ${c.label} | ${fmt(m)} | ${rss.toFixed(0)} | ${fmt(faults)} |`);
    const b = best[c.engine];
    if (!b || (lowerBetter ? m < b.m : m > b.m)) best[c.engine] = { m, c, rss, faults };
  }
  const ours = best['ddpm-ts']!;
  const theirs = best.pytorch!;
  const ratio = lowerBetter ? theirs.m / ours.m : ours.m / theirs.m;
  rows.push(`| ${w.preset} | ${w.label} | ${fmt(ours.m)} | ${fmt(theirs.m)} | ${ratio.toFixed(2)} | ${ours.rss.toFixed(0)} / ${theirs.rss.toFixed(0)} | ${fmt(ours.faults)} / ${fmt(theirs.faults)} |`);
}

const cpu = os.cpus();
console.log(`\nddpm-ts vs PyTorch eager, ${new Date().toISOString().slice(0, 10)}: ${cpu.length} cores (${cpu[0]?.model ?? '?'}), 2 libtorch threads, ` +
  `${rounds} alternating rounds${quick ? ' (--quick: shortened loops, scaled)' : ''}, medians of all repeats; load average during the runs ${fmt(median(loads))} (median)`);
console.log(`BLAS: ${blasLine}`);
for (const c of checks) console.log(`Twins: ${c}`);
console.log('');
console.log('| preset | workload (img/s) | ddpm-ts | PyTorch | ratio | peak MB (ddpm-ts / PyTorch) | minor faults per step (ddpm-ts / PyTorch) |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) console.log(r);
console.log('\nEvery configuration (median of all its repeats):\n');
console.log('| preset | workload | engine | configuration | median | peak MB | faults/step |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const r of configRows) console.log(r);
