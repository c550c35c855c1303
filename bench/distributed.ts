// `npm run bench`, data-parallel part: training throughput of 1 process against 2 (c10d Gloo over
// loopback) at the same global batch and the same total cores, per preset, with the time each step
// spends in the gradient allreduce; then, on paper, the bytes a step moves and the scaling that
// 1 and 10 Gbit/s networks would allow, from the measured compute time per step.
//   node dist/bench/distributed.js [--presets dli02,ddpm] [--steps N] [--repeats 2] [--threads 2] [--out .bench/distributed.json]
// Three layouts at the preset's global batch: 1 process x --threads, 1 process x 1 thread, and 2 processes x --threads/2.
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createModel, type PresetName } from '../src/models/index.js';
import { presetDefaults } from '../src/train/config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values: a } = parseArgs({
  options: {
    presets: { type: 'string', default: 'dli02,ddpm' }, steps: { type: 'string' }, repeats: { type: 'string', default: '2' },
    threads: { type: 'string', default: '2' }, out: { type: 'string', default: '.bench/distributed.json' },
  },
});
const threads = Number(a.threads);
const repeats = Number(a.repeats);
const LOG_EVERY = 10;

interface LogLine { step: number; imagesPerSecond: number; allreduceSeconds?: number }

/** Seconds per step over the log windows after the first (warm-up), and the allreduce seconds per step. */
function run(preset: PresetName, procs: number, threadsTotal: number, globalBatch: number, steps: number): { stepSeconds: number; allreduceSeconds: number } {
  const dir = mkdtempSync(path.join(tmpdir(), 'ddpm-bench-dist-'));
  try {
    const args = [path.join(ROOT, 'bin', 'ddpm.js'), 'train', '--preset', preset, '--out', path.join(dir, 'run'), '--limit', String(globalBatch * (steps + 1)),
      '--epochs', '1', '--max-steps', String(steps), '--batch-size', String(globalBatch / procs), '--threads', String(threadsTotal), '--no-sample-grids',
      ...(procs > 1 ? ['--nproc-per-node', String(procs)] : [])];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
    if (r.status !== 0) throw new Error(`ddpm train (${preset}, ${procs} processes) failed:\n${r.stderr}`);
    const log = readFileSync(path.join(dir, 'run', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LogLine);
    const windows = log.slice(1);
    const stepSeconds = median(windows.map((w) => globalBatch / w.imagesPerSecond));
    const ar = windows.map((w, i) => ((w.allreduceSeconds ?? 0) - (log[i]!.allreduceSeconds ?? 0)) / LOG_EVERY);
    return { stepSeconds, allreduceSeconds: median(ar) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const results = [];
for (const preset of a.presets!.split(',') as PresetName[]) {
  const cfg = presetDefaults(preset);
  const params = createModel(cfg.model).numParameters();
  const globalBatch = cfg.train.batchSize;
  const steps = Number(a.steps ?? (preset === 'ddpm' ? 30 : 40));
  const one: number[] = [];
  const oneSingle: number[] = [];
  const two: number[] = [];
  const ar: number[] = [];
  for (let i = 0; i < repeats; i++) {
    // Alternate, so a change in the machine's load hits all three.
    one.push(run(preset, 1, threads, globalBatch, steps).stepSeconds);
    oneSingle.push(run(preset, 1, 1, globalBatch, steps).stepSeconds);
    const t = run(preset, 2, threads, globalBatch, steps);
    two.push(t.stepSeconds);
    ar.push(t.allreduceSeconds);
  }
  const s1 = median(one);
  const s11 = median(oneSingle);
  const s2 = median(two);
  const allreduce = median(ar);
  const bytes = 4 * params;
  // A ring allreduce of B bytes over W ranks sends 2 (W - 1) / W x B per rank: B for W = 2.
  const project = (gbit: number): { commSeconds: number; efficiency: number } => {
    const comm = (bytes * 8) / (gbit * 1e9);
    const compute = s2 - allreduce;
    return { commSeconds: comm, efficiency: compute / (compute + comm) };
  };
  const row = {
    preset, params, globalBatch, steps, repeats, cores: cpus().length, threadsTotal: threads,
    oneProcess: { threads, stepSeconds: s1, imagesPerSecond: globalBatch / s1 },
    oneProcessOneThread: { threads: 1, stepSeconds: s11, imagesPerSecond: globalBatch / s11 },
    twoProcesses: { threadsEach: Math.max(1, Math.floor(threads / 2)), stepSeconds: s2, imagesPerSecond: globalBatch / s2, allreduceSeconds: allreduce, allreduceShare: allreduce / s2 },
    bytesPerStep: bytes, at1Gbit: project(1), at10Gbit: project(10),
  };
  results.push(row);
  process.stdout.write(`${JSON.stringify(row)}\n`);
}
mkdirSync(path.dirname(a.out!), { recursive: true });
writeFileSync(a.out!, `${JSON.stringify(results, null, 2)}\n`);
