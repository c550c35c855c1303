// ddpm-ts as a dependency: `npm pack`, install the tarball into a fresh project from npm's cache only
// (--prefer-offline: the registry is asked only for package metadata npm has not cached), and use it from the project's own TypeScript, as someone adding ddpm-ts would.
// - With libtorch: the consumer type-checks under moduleResolution nodenext, node16 and bundler, trains a tiny
//   model 2 steps and samples 4 images.
// - Without (LIBTORCH at an empty folder, the addon removed, `npm rebuild`): the install script prints
//   the one line and succeeds, import works, the byte-level parts work, and a libtorch call throws that line.
// The install copies this checkout's freshly built addon (DDPM_TS_ADDON, native/install.cjs) instead
// of compiling it again: the compile path is the one `npm ci` runs in every clone (scripts/setup.sh),
// and compiling here would add a minute or more to npm test. The pack skips `prepack` (npm run build)
// for the same reason: the test runner has just built dist/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ADDON = path.join(ROOT, 'build', 'Release', 'ddpm_torch.node');
const version = (name: string): string => (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed (${r.signal ?? r.status}):\n${r.stdout}\n${r.stderr}`);
  return `${r.stdout}${r.stderr}`;
}

const WITH_LIBTORCH = `
import { train, sample, presetDefaults, RunFolder, rand, loadRun, runObjective, noGrad, Generator, type RunConfig } from 'ddpm-ts';

const base = presetDefaults('dli02');
const config: RunConfig = {
  ...base,
  model: { ...base.model, T: 10 },
  schedule: { kind: 'linear', T: 10, betaStart: 1e-3, betaEnd: 0.2 },
  train: { ...base.train, epochs: 1, batchSize: 16, limit: 32, logEvery: 1 },
  samples: { ...base.samples, count: 4 },
};
const dir = process.argv[2]!;
const images = rand([32, 1, 16, 16]).mul(2).sub(1);
const summary = await train(config, new RunFolder(dir), { sampleGrids: false, dataset: { images, labels: null, classNames: null, dataDir: 'memory' } });
const run = loadRun(dir);
const x = noGrad(() => sample({
  model: (xt, t, c) => run.model.forward(xt, t, c), diffusion: run.diffusion, objective: runObjective(run.config),
  shape: [4, 1, 16, 16], sampler: 'ddpm', generator: new Generator(0),
}));
const finite = x.isfinite().all().item() === 1;
console.log(JSON.stringify({ steps: summary.steps, shape: x.shape, finite }));
`;

const WITHOUT_LIBTORCH = `
import { serializeSafetensors, parseSafetensors, encodePng, decodePng, linearBetas, scheduleFromBetas, libtorchAvailable, zeros, LibtorchUnavailableError } from 'ddpm-ts';

const bytes = serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Uint8Array(new Float32Array([1, 2]).buffer) } });
const back = parseSafetensors(bytes);
const png = decodePng(encodePng({ width: 2, height: 1, channels: 1, data: new Uint8Array([0, 255]) }), 'memory');
const terms = scheduleFromBetas(linearBetas(10));
let message = '';
try {
  zeros([2]);
} catch (e) {
  message = e instanceof LibtorchUnavailableError ? e.message : \`not a LibtorchUnavailableError: \${String(e)}\`;
}
console.log(JSON.stringify({ tensors: [...back.tensors.keys()], png: [png.width, png.height], alphaBarLast: terms.alphaBar[9], available: libtorchAvailable(), message }));
`;

// nodenext emits the JavaScript the test runs; node16 and bundler only type-check.
const tsconfig = (moduleResolution: 'nodenext' | 'node16' | 'bundler'): string => JSON.stringify({
  compilerOptions: {
    target: 'es2022', module: moduleResolution === 'bundler' ? 'esnext' : moduleResolution, moduleResolution,
    strict: true, outDir: 'out', types: ['node'], skipLibCheck: false, ...(moduleResolution === 'nodenext' ? {} : { noEmit: true }),
  },
  include: ['*.ts'],
});

test('npm pack, install the tarball offline into a TypeScript project: it type-checks, trains and samples; without libtorch it loads and says how to get it', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'ddpm-consumer-'));
  try {
    sh('npm', ['pack', '--ignore-scripts', '--pack-destination', tmp, '--loglevel=error'], ROOT);
    const tarball = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack wrote no tarball');
    const app = path.join(tmp, 'app');
    mkdirSync(app);
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    writeFileSync(path.join(app, 'main.ts'), WITH_LIBTORCH);
    writeFileSync(path.join(app, 'nolib.ts'), WITHOUT_LIBTORCH);
    writeFileSync(path.join(app, 'tsconfig.json'), tsconfig('nodenext'));
    writeFileSync(path.join(app, 'tsconfig.bundler.json'), tsconfig('bundler'));
    writeFileSync(path.join(app, 'tsconfig.node16.json'), tsconfig('node16'));
    const env = { ...process.env, DDPM_TS_ADDON: ADDON };
    const installed = sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', '--loglevel=error',
      path.join(tmp, tarball), `typescript@${version('typescript')}`, `@types/node@${version('@types/node')}`], app, env);
    assert.match(installed, /ddpm-ts: installed the prebuilt addon/);
    const pkg = path.join(app, 'node_modules', 'ddpm-ts');
    for (const absent of ['test', 'tools', 'dist/test', 'dist/tools', 'bench', 'docs', 'scripts']) assert.ok(!existsSync(path.join(pkg, absent)), `the package holds ${absent}`);
    for (const needed of ['assets/fmnist-features.safetensors', 'dist/studio/public/app.js', 'dist/src/index.d.ts', 'native/addon.cc']) assert.ok(existsSync(path.join(pkg, needed)), `the package lacks ${needed}`);

    const tsc = path.join(app, 'node_modules', 'typescript', 'bin', 'tsc');
    sh(process.execPath, [tsc, '-p', 'tsconfig.bundler.json'], app);
    sh(process.execPath, [tsc, '-p', 'tsconfig.node16.json'], app);
    sh(process.execPath, [tsc, '-p', 'tsconfig.json'], app);
    const out = sh(process.execPath, ['out/main.js', path.join(tmp, 'run')], app, { ...process.env, OPENBLAS_NUM_THREADS: '1' });
    assert.deepEqual(JSON.parse(out.trim().split('\n').pop()!), { steps: 2, shape: [4, 1, 16, 16], finite: true });

    // libtorch hidden: the install script finds none, says so in one line, and succeeds.
    const empty = path.join(tmp, 'no-libtorch');
    mkdirSync(empty);
    rmSync(path.join(pkg, 'build'), { recursive: true, force: true });
    const noLib: NodeJS.ProcessEnv = { ...process.env, LIBTORCH: empty };
    delete noLib.DDPM_TS_ADDON;
    const rebuilt = sh('npm', ['rebuild', 'ddpm-ts', '--foreground-scripts', '--loglevel=error'], app, noLib);
    const hint = rebuilt.split('\n').filter((l) => l.startsWith('ddpm-ts:'));
    assert.equal(hint.length, 1, `expected one line from the install script, got:\n${rebuilt}`);
    assert.match(hint[0]!, /^ddpm-ts: libtorch was not found, .*apt-get install libtorch-dev.*pip install torch.*LIBTORCH=.*npm rebuild ddpm-ts/);
    assert.ok(!existsSync(path.join(pkg, 'build', 'Release', 'ddpm_torch.node')));
    const r = JSON.parse(sh(process.execPath, ['out/nolib.js'], app, noLib).trim().split('\n').pop()!) as Record<string, unknown>;
    assert.deepEqual(r.tensors, ['w']);
    assert.deepEqual(r.png, [2, 1]);
    assert.ok(Math.abs((r.alphaBarLast as number) - Array.from({ length: 10 }, (_, i) => 1 - (1e-4 + (0.02 - 1e-4) * i / 9)).reduce((a, b) => a * b, 1)) < 1e-12);
    assert.equal(r.available, false);
    assert.equal(r.message, hint[0]);

    // Still without libtorch: an exported model samples on ONNX Runtime, through the command, once the
    // optional peer onnxruntime-node is installed (from npm's cache, without its download script).
    sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error', `onnxruntime-node@${version('onnxruntime-node')}`], app, noLib);
    const grid = path.join(tmp, 'onnx-grid.png');
    const sampled = sh(process.execPath, [path.join(pkg, 'bin', 'ddpm.js'), 'sample', '--model', path.join(ROOT, 'test', 'fixtures', 'onnx', 'tiny-cond.onnx'),
      '--sampler', 'ddim', '--steps', '4', '-n', '2', '--class', '1', '--grid', grid], app, noLib);
    assert.match(sampled, /on ONNX Runtime/);
    assert.ok(existsSync(grid), `no grid was written:\n${sampled}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
