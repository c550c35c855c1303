// The native boundary: the addon refuses what it does not own (Node-API type tags, typed argument
// readers), and importing the library changes nothing process-wide (configureRuntime is the one call
// that does). Crashes and process state are observed in child processes, so a segfault fails a test
// instead of killing the runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { native } from '../src/tensor/native.js';
import { Generator, zeros } from '../src/tensor/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function nodeChild(args: string[], env: NodeJS.ProcessEnv): { status: number | null; signal: string | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', env, timeout: 120_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

test('every entry point, fuzzed with wrong types and foreign handles, returns or throws an Error naming itself (child process)', () => {
  const r = nodeChild([path.join(ROOT, 'dist/tools/fuzz-native.js'), '--seed', '3', '--random', '20', '--trace'], { ...process.env, OPENBLAS_NUM_THREADS: '1' });
  const lastOp = r.stderr.split('\n').filter((l) => l.startsWith('fuzz-native: ')).pop()?.slice('fuzz-native: '.length);
  assert.equal(r.signal, null, `the fuzzed addon crashed the process (${r.signal}) in ${lastOp}`);
  assert.equal(r.status, 0, `fuzz-native failed: ${r.stdout}\n${r.stderr.slice(-2000)}`);
  const s = JSON.parse(r.stdout) as { entryPoints: number; calls: number; refused: number; failures: string[]; typeErrors: number };
  assert.deepEqual(s.failures, []);
  assert.ok(s.entryPoints > 150, `only ${s.entryPoints} entry points were fuzzed`);
  assert.ok(s.typeErrors > s.calls / 2, `only ${s.typeErrors} of ${s.calls} calls were refused by the type checks`);
});

test('a value that is not the expected handle is refused with a TypeError naming the op, the argument and what it got', () => {
  const t = zeros([2]);
  const g = new Generator(1);
  const gone = zeros([2]);
  const goneHandle = gone.handle;
  gone.dispose();
  const cases: [unknown[], RegExp][] = [
    [[null, t.handle], /^add: argument 0 must be a tensor handle made by ddpm-ts, got null$/],
    [[t.handle, 3], /^add: argument 1 must be a tensor handle made by ddpm-ts, got the number 3$/],
    [[{ handle: t.handle }, t.handle], /^add: argument 0 must be a tensor handle made by ddpm-ts, got an object$/],
    [[g.handle, t.handle], /^add: argument 0 must be a tensor handle made by ddpm-ts, got a generator handle$/],
  ];
  for (const [args, re] of cases) assert.throws(() => native.add!(...args), (e: Error) => e instanceof TypeError && re.test(e.message), String(re));
  assert.throws(() => native.add!(goneHandle, t.handle), { message: /^add: argument 0 is a tensor that was disposed and cannot be used$/ });
  assert.throws(() => native.randn!([2], t.handle, 6), { message: /^randn: argument 1 must be a generator handle made by ddpm-ts, got a tensor handle$/ });
  assert.throws(() => native.generatorSeed!(t.handle, 1), { message: /^generatorSeed: argument 0 must be a generator handle made by ddpm-ts, got a tensor handle$/ });
  assert.throws(() => native.dispose!(g.handle), { message: /^dispose: argument 0 must be a tensor handle made by ddpm-ts, got a generator handle$/ });
  assert.throws(() => native.cat!([t.handle, 'x'], 0), { message: /^cat: argument 0\[1\] must be a tensor handle made by ddpm-ts, got a string$/ });
  assert.throws(() => native.reshape!(t.handle, [2, 'x']), { message: /^reshape: argument 1\[1\] must be an integer, got a string$/ });
  assert.throws(() => native.zeros!([2], 99), { message: /^zeros: argument 1 is dtype code 99, not a libtorch ScalarType$/ });
  // from_blob trusts its shape: more values than the bytes hold would read past the buffer.
  assert.throws(() => native.fromBuffer!(new Float32Array(2), [3], 6), { message: /^fromBuffer: 8 bytes cannot hold 3 values of Float$/ });
  t.dispose();
});

// Observes, in a fresh process, what the library leaves changed: the environment, libtorch's and
// OpenBLAS's thread counts, and the glibc malloc parameters set through the addon.
const PROBE = `
import { configureRuntime, getNumThreads, getBlasThreads, mallocSettings, allocatorStats } from './dist/src/index.js';
import { trainTinyRun } from './dist/test/tiny-run.js';
const state = () => ({ env: process.env.OPENBLAS_NUM_THREADS ?? null, threads: getNumThreads(), blas: getBlasThreads(), malloc: mallocSettings(), cachingAllocator: allocatorStats().active });
if (process.argv[1] === 'configure') console.log(JSON.stringify({ configured: configureRuntime() }));
const before = state();
await trainTinyRun(process.argv[2]);
console.log(JSON.stringify({ before, after: state() }));
`;

function probe(mode: string): Record<string, unknown> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ddpm-runtime-'));
  try {
    const env = { ...process.env };
    delete env.OPENBLAS_NUM_THREADS;
    delete env.DDPM_MALLOC;
    delete env.DDPM_ALLOCATOR;
    delete env.DDPM_ALLOCATOR_CAP;
    const r = nodeChild(['--input-type=module', '-e', PROBE, mode, path.join(dir, 'run')], env);
    assert.equal(r.status, 0, r.stderr);
    return Object.assign({}, ...r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)) as Record<string, unknown>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('importing the library and training leave the environment, thread counts and malloc settings as they were', () => {
  const { before, after } = probe('plain') as { before: { env: null; threads: number; blas: number | null; malloc: unknown[]; cachingAllocator: boolean }; after: unknown };
  assert.equal(before.env, null, 'import set OPENBLAS_NUM_THREADS');
  assert.deepEqual(before.malloc, [], 'import changed glibc malloc parameters');
  assert.equal(before.cachingAllocator, false, 'import registered the caching allocator');
  assert.deepEqual(after, before, 'train() left process-wide state changed');
});

test('configureRuntime applies the command\'s settings once, before libtorch loads, and train() keeps them', () => {
  const { configured, before, after } = probe('configure') as {
    configured: { blasThreads: number | null; malloc: string; allocator: string }; before: { env: string; blas: number | null; malloc: number[][]; cachingAllocator: boolean }; after: unknown;
  };
  assert.equal(configured.malloc, 'tensors');
  assert.equal(configured.allocator, 'caching');
  assert.equal(before.cachingAllocator, true, 'configureRuntime registers the caching allocator');
  assert.equal(before.env, '1', 'OPENBLAS_NUM_THREADS is set before the addon loads OpenBLAS');
  if (before.blas !== null) assert.equal(before.blas, 1);
  assert.deepEqual(before.malloc, [[-3, 32 * 1024 * 1024], [-1, 1024 * 1024 * 1024], [-8, 1]]); // M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_ARENA_MAX
  assert.deepEqual(after, before);
});
