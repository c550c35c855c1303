// `npm run bench`: ddpm-ts against PyTorch eager on the same machine, the same libtorch and BLAS,
// workload by workload, alternating engines so that machine noise hits both. Prints medians and
// their ratio (above 1: ddpm-ts is faster). Each engine gets its best OpenBLAS threading per
// workload (README, Speed): both run with one OpenBLAS thread (two were slower for both engines here,
// for training and for sampling; pass a workload more blasThreads to check again), and
// PyTorch both with glibc's default malloc thresholds and with the raised ones that ddpm-ts sets for
// itself (configureRuntime, src/tensor/runtime.ts), through glibc's MALLOC_*_THRESHOLD_ variables.
//   node dist/bench/compare.js [--rounds 3] [--only train,sample,stack,opcall] [--quick]
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values: a } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, only: { type: 'string' }, quick: { type: 'boolean', default: false } } });
const rounds = Number(a.rounds);

interface Result { median: number; per_repeat: number[]; unit: string; blas?: string; torch?: string; libtorch?: string }
interface Workload {
  what: string; label: string; args: string[]; blasThreads: string[]; pytorchDefaultMalloc?: boolean;
  /** Also time PyTorch with ddpm-ts's speed changes to the model (--variant subpixel-cl): printed, not compared. */
  pytorchVariant?: boolean;
}

const quick = a.quick === true;
const WORKLOADS: Workload[] = [
  { what: 'opcall', label: 'one tiny op call (us, lower is better)', args: ['--repeats', '5'], blasThreads: ['1'] },
  { what: 'stack', label: 'conv/BN/ReLU stack train step, batch 128, 16x16 (img/s)', args: ['--repeats', quick ? '3' : '5', '--steps', quick ? '5' : '20'], blasThreads: ['1'] },
  { what: 'train', label: 'dli02 train step, batch 128, 16x16 (img/s)', args: ['--repeats', quick ? '3' : '5', '--steps', quick ? '5' : '20'], blasThreads: ['1'], pytorchVariant: true },
  // Two full reverse processes per run (the first pays for growing the heap: see README, Speed).
  // PyTorch with glibc's default malloc takes over a minute per run here and is
  // never its best, so it is left out of this workload.
  { what: 'sample', label: 'dli02 sampling, 150 steps, batch 500 (img/s)', args: ['--repeats', '2', '--warmup', '1'], blasThreads: ['1'], pytorchDefaultMalloc: false, pytorchVariant: true },
];

const MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: String(32 * 1024 * 1024), MALLOC_TRIM_THRESHOLD_: String(1024 * 1024 * 1024) };
// A reference configuration is timed and printed with the others but is not the engine's best: the
// ratio compares ddpm-ts with the PyTorch script as the notebook writes the model.
interface Config { label: string; env: Record<string, string>; args: string[]; reference?: boolean }
function configs(engine: 'ddpm-ts' | 'pytorch', w: Workload, blas: string): Config[] {
  const base = { label: `BLAS ${blas}`, env: { OPENBLAS_NUM_THREADS: blas }, args: [] };
  const tuned = { ...base, label: `BLAS ${blas}, malloc tuned`, env: { ...base.env, ...MALLOC_ENV } };
  if (engine === 'pytorch') {
    const variant = { ...tuned, label: `${tuned.label}, sub-pixel + channels-last (reference)`, args: ['--variant', 'subpixel-cl'], reference: true };
    return [...(w.pytorchDefaultMalloc === false ? [tuned] : [base, tuned]), ...(w.pytorchVariant ? [variant] : [])];
  }
  return [base];
}

function runOne(engine: 'ddpm-ts' | 'pytorch', w: Workload, cfg: Config): Result {
  const cmd = engine === 'ddpm-ts'
    ? [process.execPath, [path.join(ROOT, 'dist', 'bench', 'workloads.js'), '--what', w.what, '--threads', '2', ...w.args, ...cfg.args]]
    : ['/usr/bin/python3', [path.join(ROOT, 'bench', 'pytorch_dli02.py'), '--what', w.what, '--threads', '2', ...w.args, ...cfg.args]];
  const r = spawnSync(cmd[0] as string, cmd[1] as string[], { encoding: 'utf8', env: { ...process.env, ...cfg.env }, cwd: ROOT });
  if (r.status !== 0) throw new Error(`${engine} ${w.what} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Result;
}

const median = (xs: number[]): number => { const s = [...xs].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };

const only = a.only?.split(',');
const rows: string[] = [];
const configRows: string[] = [];
let blasLine = '';
for (const w of WORKLOADS.filter((x) => !only || only.includes(x.what))) {
  const best: Record<string, { median: number; blas: string; all: number[] }> = {};
  for (const engine of ['ddpm-ts', 'pytorch'] as const) best[engine] = { median: NaN, blas: '', all: [] };
  const all: { engine: 'ddpm-ts' | 'pytorch'; cfg: Config }[] = w.blasThreads.flatMap((b) => (['ddpm-ts', 'pytorch'] as const).flatMap((engine) => configs(engine, w, b).map((cfg) => ({ engine, cfg }))));
  const per = new Map<(typeof all)[number], number[]>(all.map((x) => [x, []]));
  for (let r = 0; r < rounds; r++) {
    // Alternate the order each round so that slow phases of the machine hit every configuration.
    for (const x of r % 2 ? [...all].reverse() : all) {
      const res = runOne(x.engine, w, x.cfg);
      per.get(x)!.push(...res.per_repeat);
      if (res.blas && !blasLine) blasLine = res.blas;
      process.stderr.write(`  ${w.what} ${x.engine} ${x.cfg.label} round ${r + 1}: median ${res.median} ${res.unit}\n`);
    }
  }
  for (const x of all) {
    const m = median(per.get(x)!);
    configRows.push(`| ${w.what} | ${x.engine} | ${x.cfg.label} | ${fmt(m)} |`);
    if (x.cfg.reference) continue;
    const lowerBetter = w.what === 'opcall';
    const b = best[x.engine]!;
    if (Number.isNaN(b.median) || (lowerBetter ? m < b.median : m > b.median)) Object.assign(b, { median: m, blas: x.cfg.label, all: per.get(x) });
  }
  const ours = best['ddpm-ts']!;
  const theirs = best.pytorch!;
  const ratio = w.what === 'opcall' ? theirs.median / ours.median : ours.median / theirs.median;
  rows.push(`| ${w.label} | ${fmt(ours.median)} (${ours.blas}) | ${fmt(theirs.median)} (${theirs.blas}) | ${ratio.toFixed(2)} |`);
}

function fmt(x: number): string { return x >= 100 ? x.toFixed(0) : x.toFixed(2); }

console.log(`\nddpm-ts vs PyTorch eager: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), 2 libtorch threads, ${rounds} alternating rounds, medians of all repeats`);
console.log(`BLAS: ${blasLine}\n`);
console.log('| workload | ddpm-ts | PyTorch | ratio (ddpm-ts speed / PyTorch speed) |');
console.log('| --- | --- | --- | --- |');
for (const r of rows) console.log(r);
console.log('\nEvery configuration (median of all its repeats):\n');
console.log('| workload | engine | configuration | median |');
console.log('| --- | --- | --- | --- |');
for (const r of configRows) console.log(r);
