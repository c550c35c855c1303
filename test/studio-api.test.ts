// The studio's HTTP API (issue #7): shapes of what it answers, 4xx with messages for malformed and
// out-of-range requests, names that cannot leave --runs, one heavy job per kind, a status answer
// while training runs in its worker process, a clean stop, a crash, and a generation's PNG and GIF.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { presetDefaults, type RunConfig } from '../src/train/config.js';
import { decodePng } from '../src/io/png.js';
import { startStudio, type Studio } from '../src/studio/server.js';
import { Jobs } from '../src/studio/jobs.js';
import { RequestError } from '../src/studio/validate.js';
import { trainTinyRun, trainTinyClassifier } from './tiny-run.js';
import type { GenerateFrame, JobInfo, LogRow, RunDetail, RunSummary, Status, TrainProgress } from '../src/studio/protocol.js';

const hasData = existsSync('/usr/share/datasets/fashion-mnist') || process.env.FASHION_MNIST_DIR !== undefined;
const work = mkdtempSync(path.join(tmpdir(), 'ddpm-studio-'));
const runs = path.join(work, 'runs');
const pub = path.join(work, 'public');
let studio: Studio;

before(async () => {
  await trainTinyRun(path.join(runs, 'tiny'), 0, { sampleGrids: true });
  await trainTinyRun(path.join(runs, 'cond'), 10, { sampleGrids: true });
  await trainTinyClassifier(path.join(runs, 'clf'), path.join(runs, 'tiny'));
  mkdirSync(pub);
  writeFileSync(path.join(pub, 'index.html'), '<!doctype html><title>studio</title>');
  writeFileSync(path.join(pub, 'app.css'), 'body{}');
  // A run-shaped folder beside --runs: a name that escaped would find it.
  mkdirSync(path.join(work, 'secret', 'samples'), { recursive: true });
  writeFileSync(path.join(work, 'secret', 'config.json'), JSON.stringify(presetDefaults('dli02')));
  writeFileSync(path.join(work, 'secret', 'samples', 'x.png'), 'SECRET');
  studio = await startStudio({ runsDir: runs, port: 0, publicDir: pub, threads: 1, stopGraceMs: 20000 });
});
after(async () => {
  await studio?.close();
  rmSync(work, { recursive: true, force: true });
});

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer; json: () => unknown }

/** A request with the path sent exactly as given (fetch and URL() would normalise '..' and '%2e%2e' away). */
function raw(method: string, p: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: studio.port, method, path: p, headers: body !== undefined ? { 'content-type': 'application/json', ...headers } : headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const b = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b, json: () => JSON.parse(b.toString('utf8')) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}
const getJson = async <T>(p: string): Promise<T> => {
  const r = await raw('GET', p);
  assert.equal(r.status, 200, `GET ${p}: ${r.body.toString()}`);
  return r.json() as T;
};
const post = (p: string, body: unknown): Promise<Reply> => raw('POST', p, typeof body === 'string' ? body : JSON.stringify(body));

/** Reads an event stream until `until` says stop (or `ms` pass); returns the events. */
function events(p: string, until: (e: { event: string; data: unknown }) => boolean, ms = 60000): Promise<{ event: string; data: unknown }[]> {
  return new Promise((resolve, reject) => {
    const got: { event: string; data: unknown }[] = [];
    const req = request({ host: '127.0.0.1', port: studio.port, path: p }, (res) => {
      assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
      let buf = '';
      const timer = setTimeout(() => { req.destroy(); reject(new Error(`${p}: no end after ${ms} ms; got ${got.map((e) => e.event).join(', ')}`)); }, ms);
      res.on('data', (c: Buffer) => {
        buf += c.toString('utf8');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event === undefined || data === undefined) continue;
          const e = { event, data: JSON.parse(data) as unknown };
          got.push(e);
          if (until(e)) { clearTimeout(timer); req.destroy(); resolve(got); return; }
        }
      });
    });
    req.on('error', (e) => { if (!(e as { code?: string }).code?.includes('ECONNRESET')) reject(e); });
    req.end();
  });
}

const waitEnd = async (id: string): Promise<JobInfo> => {
  const evs = await events(`/api/jobs/${id}/events`, (e) => e.event === 'done' || e.event === 'error');
  const last = evs[evs.length - 1]!;
  return last.event === 'done' ? last.data as JobInfo : getJson<JobInfo>(`/api/jobs/${id}`);
};

test('status, options, runs, run detail, log and schedule have the protocol shapes', async () => {
  const s = await getJson<Status>('/api/status');
  assert.equal(s.runsDir, runs);
  assert.deepEqual(s.jobs, { train: null, generate: null });
  assert.ok(s.uptime >= 0 && typeof s.version === 'string');
  const o = await getJson<{ presets: string[]; samplers: string[]; limits: { maxCount: number } }>('/api/options');
  assert.deepEqual(o.presets, ['dli02', 'dli03', 'ddpm']);
  assert.ok(o.samplers.includes('ddim') && o.limits.maxCount === 64);
  const list = await getJson<RunSummary[]>('/api/runs');
  assert.deepEqual(list.map((r) => [r.name, r.classifierOf]), [['clf', 'tiny'], ['cond', null], ['tiny', null]], 'the run-shaped folder outside --runs is not listed');
  const tiny = list.find((r) => r.name === 'tiny')!;
  assert.deepEqual({ ...tiny, lastLoss: typeof tiny.lastLoss }, {
    name: 'tiny', preset: 'dli02', imageSize: 16, channels: 1, timesteps: 10, classConditional: false, epochs: 1, lastStep: 2, lastLoss: 'number', checkpointCount: 1, training: false, classifierOf: null,
  });
  const d = await getJson<RunDetail>('/api/runs/tiny');
  assert.deepEqual(d.checkpoints, [{ name: 'step-2', step: 2, epoch: 1, hasEma: false }]);
  assert.deepEqual(d.samples, ['epoch-001.png']);
  assert.deepEqual(d.log.map((r) => r.step), [1, 2]);
  assert.equal((d.config as RunConfig).model.T, 10);
  assert.deepEqual((await getJson<LogRow[]>('/api/runs/tiny/log?after=1')).map((r) => r.step), [2]);
  const png = await raw('GET', '/api/runs/tiny/samples/epoch-001.png');
  assert.equal(png.headers['content-type'], 'image/png');
  assert.equal(decodePng(png.body, 'sample grid').channels, 1);
  const sc = await getJson<{ T: number; kind: string; beta: number[]; alphaBar: number[]; logSnr: number[] }>('/api/runs/tiny/schedule');
  assert.equal(sc.T, 10);
  assert.equal(sc.kind, 'linear');
  assert.ok(sc.beta.length === 10 && sc.alphaBar.length === 10 && sc.logSnr.length === 10);
  assert.ok(sc.alphaBar[9]! < sc.alphaBar[0]! && sc.logSnr[9]! < sc.logSnr[0]!);
  assert.equal((await getJson<{ T: number }>('/api/schedule')).T, 150, 'without a run: the dli02 preset\'s schedule');
});

test('a run\'s event stream sends the log and checkpoints that exist on connect', async () => {
  const evs = await events('/api/runs/tiny/events', (e) => e.event === 'sample');
  assert.deepEqual(evs.map((e) => e.event), ['log', 'checkpoint', 'sample']);
  assert.deepEqual((evs[0]!.data as LogRow[]).map((r) => r.step), [1, 2]);
});

test('the forward view: x_t of a dataset image at t, alphabar_t and SNR(t)', { skip: !hasData && 'Fashion-MNIST not installed' }, async () => {
  const f = await getJson<{ index: number; t: number; T: number; alphaBar: number; snr: number; label: string; x0: string; xt: string }>('/api/forward?run=tiny&index=0&t=9&seed=1');
  assert.deepEqual([f.index, f.t, f.T, f.label], [0, 9, 10, 'Ankle boot']);
  assert.ok(Math.abs(f.snr - f.alphaBar / (1 - f.alphaBar)) < 1e-9 * f.snr);
  for (const u of [f.x0, f.xt]) assert.match(u, /^data:image\/png;base64,/);
  const again = await getJson<{ xt: string }>('/api/forward?run=tiny&index=0&t=9&seed=1');
  assert.equal(again.xt, f.xt, 'seeded: the same seed gives the same x_t');
  const plain = await getJson<{ T: number }>('/api/forward?index=5&t=0');
  assert.equal(plain.T, 150, 'without a run: the dli02 schedule');
  const r = await raw('GET', '/api/forward?index=60000&t=0');
  assert.equal(r.status, 400);
  assert.match((r.json() as { error: string }).error, /index must be an integer in \[0, 59999\], got 60000/);
});

test('the page is served from its folder only, with content types', async () => {
  const page = await raw('GET', '/');
  assert.equal(page.status, 200);
  assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal((await raw('GET', '/app.css')).headers['content-type'], 'text/css; charset=utf-8');
  assert.equal((await raw('GET', '/nope.js')).status, 404);
  for (const p of ['/../package.json', '/%2e%2e/package.json', '/..%2fpackage.json', '/%2Fetc%2Fpasswd']) assert.equal((await raw('GET', p)).status, 400, p);
  const unbuilt = await startStudio({ runsDir: runs, port: 0, publicDir: path.join(work, 'no-page') });
  try {
    const r = await fetch(unbuilt.url);
    assert.equal(r.status, 500);
    assert.match(await r.text(), /not built.*npm run build.*npm run setup/);
  } finally {
    await unbuilt.close();
  }
});

const BAD: [string, string, unknown, number, RegExp][] = [
  ['POST', '/api/generate', '{"run": "tiny",', 400, /request body is not valid JSON/],
  ['POST', '/api/generate', '[1, 2]', 400, /must be a JSON object, got \[1,2\]/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', count: 4, colour: 'red' }, 400, /unknown field "colour"; expected only run, checkpoint/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', count: 500 }, 400, /count must be an integer in \[1, 64\], got 500/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', count: 2.5 }, 400, /count must be an integer in \[1, 64\], got 2.5/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', count: '4' }, 400, /count must be an integer in \[1, 64\], got "4"/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim' }, 400, /count is required: an integer in \[1, 64\]/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'euler', count: 4 }, 400, /sampler must be one of ddpm, ddim, dpmpp2m, pc, got "euler"/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', steps: 11, count: 4 }, 400, /steps must be an integer in \[1, 10\], got 11/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', steps: 0, count: 4 }, 400, /steps must be an integer in \[1, 10\], got 0/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddpm', eta: 0.5, count: 4 }, 400, /eta applies to the ddim sampler only/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', eta: 1.5, count: 4 }, 400, /eta must be a number in \[0, 1\], got 1.5/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', guidance: 2, count: 4 }, 400, /guidance needs a class-conditional run/],
  ['POST', '/api/generate', { run: 'cond', sampler: 'ddim', class: 10, count: 4 }, 400, /class must be an integer in \[0, 9\], got 10/],
  ['POST', '/api/generate', { run: 'cond', sampler: 'ddim', guidance: -1, count: 4 }, 400, /guidance must be a number in \[0, 20\], got -1/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', seed: -1, count: 4 }, 400, /seed must be an integer in \[0, 4294967295\], got -1/],
  ['POST', '/api/generate', { run: 'tiny', checkpoint: 'step-9', sampler: 'ddim', count: 4 }, 404, /has no checkpoint "step-9"; it has step-2/],
  ['POST', '/api/generate', { run: 'nope', sampler: 'ddim', count: 4 }, 404, /no run "nope"/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddpm', count: 4, interpolateTo: 2 }, 400, /interpolation needs the ddim sampler with eta 0, got ddpm/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', eta: 0.5, count: 4, interpolateTo: 2 }, 400, /interpolation needs eta 0, got eta 0.5/],
  ['POST', '/api/generate', { run: 'tiny', count: 4, seed: 2, interpolateTo: 2 }, 400, /interpolateTo is the seed itself \(2\)/],
  ['POST', '/api/generate', { run: 'tiny', count: 1, interpolateTo: 2 }, 400, /an interpolation needs at least 2 frames \(count\), got 1/],
  ['POST', '/api/generate', { run: 'tiny', count: 4, interpolateTo: -2 }, 400, /interpolateTo must be an integer in \[0, 4294967295\], got -2/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', classifier: 'clf', count: 4 }, 400, /classifier guidance steers every image toward one class; choose a class/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', classifierScale: 2, count: 4 }, 400, /classifierScale needs a classifier run/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', classifier: 'cond', class: 1, count: 4 }, 400, /cond is a diffusion model's run, not a classifier's/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', classifier: 'clf', class: 10, count: 4 }, 400, /class must be an integer in \[0, 9\], got 10/],
  ['POST', '/api/generate', { run: 'tiny', sampler: 'ddim', classifier: 'nope', class: 1, count: 4 }, 404, /no run "nope"/],
  ['POST', '/api/train', { name: 'x', preset: 'dli04' }, 400, /preset must be one of dli02, dli03, ddpm, got "dli04"/],
  ['POST', '/api/train', { name: 'x', preset: 'dli02', epochs: 0 }, 400, /epochs must be an integer in \[1, 100\], got 0/],
  ['POST', '/api/train', { name: 'x', preset: 'dli02', batchSize: 4096 }, 400, /batchSize must be an integer in \[1, 1024\], got 4096/],
  ['POST', '/api/train', { name: 'x', preset: 'dli02', lr: 0 }, 400, /lr must be a number in \(0, 1\], got 0/],
  ['POST', '/api/train', { name: 'x', preset: 'dli02', lr: 'fast' }, 400, /lr must be a number in \(0, 1\], got "fast"/],
  ['POST', '/api/train', { name: 'x', preset: 'dli02', seed: 1.5 }, 400, /seed must be an integer/],
  ['POST', '/api/train', { name: 'x', preset: 'dli02', limit: 10 }, 400, /limit must be at least batchSize \(128\)/],
  ['POST', '/api/train', { name: 'x', preset: 'dli02', limit: -5 }, 400, /limit must be an integer in \[1, 60000\], got -5/],
  ['POST', '/api/train', { name: 'x', preset: 'dli02', imageSize: 18 }, 400, /dli02: image size 18 cannot be halved twice/],
  ['POST', '/api/train', { name: 'x', preset: 'dli02', imageSize: 512 }, 400, /imageSize must be an integer in \[8, 64\], got 512/],
  ['POST', '/api/train', { name: 'x', preset: 'dli02', timesteps: 5000 }, 400, /timesteps must be an integer in \[2, 1000\], got 5000/],
  ['POST', '/api/train', { name: 'x', preset: 'dli02', classCond: 'yes' }, 400, /classCond must be true or false, got "yes"/],
  ['POST', '/api/train', { name: 'x', preset: 'dli02', emaDecay: 1 }, 400, /emaDecay must be a number in \[0, 1\), got 1/],
  ['POST', '/api/train', { name: 'x', preset: 'dli02', schedule: 'custom' }, 400, /schedule must be one of linear, scaled-linear, cosine, sigmoid, got "custom"/],
  ['POST', '/api/train', { preset: 'dli02' }, 400, /name is required/],
  ['POST', '/api/train', { name: 'tiny', preset: 'dli02' }, 409, /name "tiny" is taken/],
  ['POST', '/api/train', { name: 'a/b', preset: 'dli02' }, 400, /name must be a single name .* got "a\/b"; paths and '\.\.' are refused/],
  ['POST', '/api/jobs/nope-1/stop', {}, 404, /no job "nope-1"/],
  ['GET', '/api/runs/tiny/log?after=x', undefined, 400, /after must be an integer in \[-1, \d+\], got "x"/],
  ['GET', '/api/forward?index=0&t=0&flip=1', undefined, 400, /unknown field "flip"/],
  ['GET', '/api/forward?run=tiny&index=0&t=10', undefined, 400, /t must be an integer in \[0, 9\], got 10/],
  ['DELETE', '/api/runs/tiny', undefined, 405, /DELETE is not allowed on \/api\/runs\/tiny; use GET/],
  ['GET', '/api/train', undefined, 405, /use POST/],
  ['GET', '/api/teapot', undefined, 404, /no such API route/],
];

test('malformed, unknown and out-of-range requests get a 4xx whose message names the field, the expected and the got', async () => {
  for (const [method, p, body, status, message] of BAD) {
    const r = body === undefined ? await raw(method, p) : await raw(method, p, typeof body === 'string' ? body : JSON.stringify(body));
    const what = `${method} ${p} ${JSON.stringify(body)}`;
    assert.equal(r.status, status, `${what}: ${r.body.toString()}`);
    const e = r.json() as { error: string; field?: string };
    assert.match(e.error, message, what);
  }
  const field = (await post('/api/generate', { run: 'tiny', sampler: 'ddim', count: 500 })).json() as { field: string };
  assert.equal(field.field, 'count');
  assert.equal((await raw('POST', '/api/generate', JSON.stringify({ run: 'tiny' }), { 'content-type': 'text/plain' })).status, 415);
  const big = await post('/api/generate', JSON.stringify({ run: 'tiny', pad: 'x'.repeat(70 * 1024) }));
  assert.equal(big.status, 413);
  assert.match((big.json() as { error: string }).error, /more than the 65536 bytes \(64 KiB\) allowed/);
  assert.equal((await raw('POST', '/api/generate', '{}', { 'content-type': 'application/json', origin: 'http://evil.example' })).status, 403);
  assert.equal((await raw('GET', '/api/status', undefined, { host: 'evil.example' })).status, 403, 'DNS rebinding: a foreign Host is refused');
  // A sandboxed iframe or a file: page sends Origin "null": a foreign page, even for a POST without a body.
  const nullOrigin = await raw('POST', '/api/jobs/train-1/stop', '', { origin: 'null' });
  assert.equal(nullOrigin.status, 403);
  assert.match((nullOrigin.json() as { error: string }).error, /cross-origin request from null refused/);
  assert.equal((await raw('GET', '/api/status', undefined, { host: `LOCALHOST:${studio.port}` })).status, 200, 'Host names are case-insensitive');
  const own = `127.0.0.1:${studio.port}`;
  assert.equal((await raw('POST', '/api/jobs/nope-1/stop', '', { host: own, origin: `http://${own}` })).status, 404, 'the page\'s own origin passes the guard');
});

test('a damaged or foreign run folder does not break the run list; its own routes say which file is wrong', async () => {
  const other = path.join(work, 'runs-damaged');
  mkdirSync(other);
  cpSync(path.join(runs, 'tiny'), path.join(other, 'good'), { recursive: true });
  // Rows that are JSON but no log row, and a torn line, among good ones.
  appendFileSync(path.join(other, 'good', 'log.jsonl'), 'null\n5\n{"loss": 1}\n{"step": 3, "epo\n"[1,2]"\n');
  mkdirSync(path.join(other, 'half'));
  writeFileSync(path.join(other, 'half', 'config.json'), '{"model": {"preset": "dli0');
  mkdirSync(path.join(other, 'foreign'));
  writeFileSync(path.join(other, 'foreign', 'config.json'), '{"name": "not a run"}');
  const s = await startStudio({ runsDir: other, port: 0, publicDir: pub });
  try {
    const get = (p: string): Promise<Response> => fetch(new URL(p, s.url));
    const list = await get('/api/runs');
    assert.equal(list.status, 200, await list.clone().text());
    const runsListed = (await list.json()) as RunSummary[];
    assert.deepEqual(runsListed.map((r) => [r.name, r.lastStep]), [['good', 2]]);
    const detail = (await (await get('/api/runs/good')).json()) as RunDetail;
    assert.deepEqual(detail.log.map((r) => r.step), [1, 2]);
    assert.deepEqual(((await (await get('/api/runs/good/log?after=1')).json()) as LogRow[]).map((r) => r.step), [2]);
    const half = await get('/api/runs/half');
    assert.equal(half.status, 500);
    assert.match(((await half.json()) as { error: string }).error, /half\/config\.json is not valid JSON/);
    const foreign = await get('/api/runs/foreign');
    assert.equal(foreign.status, 500);
    assert.match(((await foreign.json()) as { error: string }).error, /foreign\/config\.json is not a run config: it has no model, schedule, train objects/);
  } finally {
    await s.close();
  }
});

test('the printed address: a wildcard host is shown as loopback, --port 0 as the port chosen; a busy port says what to do', async () => {
  const s = await startStudio({ runsDir: runs, host: '0.0.0.0', port: 0, publicDir: pub });
  try {
    assert.ok(s.port > 0);
    assert.equal(s.url, `http://127.0.0.1:${s.port}/`);
    assert.equal((await fetch(new URL('/api/status', s.url))).status, 200, 'the printed address answers');
    await assert.rejects(startStudio({ runsDir: runs, host: '0.0.0.0', port: s.port, publicDir: pub }), new RegExp(`port ${s.port} on 0\\.0\\.0\\.0 is in use .*--port 0`));
  } finally {
    await s.close();
  }
});

test('once closing, the studio starts no new job (it would outlive the server)', async () => {
  const jobs = new Jobs(1);
  await jobs.close(0);
  assert.throws(() => jobs.start('generate', 'tiny', { kind: 'generate', runDir: path.join(runs, 'tiny'), sampler: 'ddim', steps: 1, nrow: 1, seed: 0, count: 1, maxFrames: 1 }),
    (e: unknown) => e instanceof RequestError && e.status === 503 && /shutting down/.test(e.message));
});

test('run, checkpoint and sample names cannot leave --runs: 400 before any file is read; unknown names 404', async () => {
  const traversal = [
    '/api/runs/..', '/api/runs/%2e%2e', '/api/runs/..%2fsecret', '/api/runs/%2e%2e%2fsecret', '/api/runs/%2Fetc%2Fpasswd', '/api/runs/..%5Csecret',
    '/api/runs/tiny%00', '/api/runs/.hidden', '/api/runs/../secret', '/api/runs/../../etc/passwd', '/api/runs//etc/passwd',
    '/api/runs/%2e%2e/samples/x.png', '/api/runs/tiny/samples/..%2f..%2fsecret%2fsamples%2fx.png', '/api/runs/tiny/samples/%2e%2e',
    '/api/runs/..%2fsecret/schedule', '/api/runs/..%2fsecret/events', '/api/runs/%2e%2e/log', '/api/forward?run=..%2Fsecret&index=0&t=0',
    '/api/jobs/..%2f..%2fetc/grid.png',
  ];
  for (const p of traversal) {
    const r = await raw('GET', p);
    assert.equal(r.status, 400, `${p}: ${r.body.toString()}`);
    assert.doesNotMatch(r.body.toString(), /SECRET/, p);
    assert.match((r.json() as { error: string }).error, /refused/, p);
  }
  for (const body of [{ run: '../secret' }, { run: '/etc' }, { run: '%2e%2e' }, { run: '..\\secret' }, { run: 'tiny\u0000' }, { run: 'tiny', checkpoint: '../../secret' }, { run: 'tiny', checkpoint: '/etc/passwd' }]) {
    const r = await post('/api/generate', { sampler: 'ddim', count: 1, ...body });
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match((r.json() as { error: string }).error, /must be a single name .*paths and '\.\.' are refused/);
  }
  for (const p of ['/api/runs/secret', '/api/runs/tiny/samples/epoch-009.png', '/api/runs/tiny/samples/config.json', '/api/jobs/train-99']) {
    assert.equal((await raw('GET', p)).status, 404, p);
  }
});

test('a generation job streams x_t and x0_hat frames, ends done, and serves a valid grid PNG and trajectory GIF; a second one meanwhile gets 409', async () => {
  const r = await post('/api/generate', { run: 'cond', sampler: 'ddim', steps: 2, count: 4, seed: 3, class: 7, guidance: 1 });
  assert.equal(r.status, 202, r.body.toString());
  const job = r.json() as JobInfo;
  assert.deepEqual([job.kind, job.state, job.run], ['generate', 'running', 'cond']);
  const busy = await post('/api/generate', { run: 'tiny', sampler: 'ddim', steps: 2, count: 4 });
  assert.equal(busy.status, 409);
  assert.match((busy.json() as { error: string }).error, new RegExp(`a generation job is already running: ${job.id} on run "cond"`));
  const evs = await events(`/api/jobs/${job.id}/events`, (e) => e.event === 'done' || e.event === 'error');
  const frames = evs.filter((e) => e.event === 'progress').map((e) => e.data as GenerateFrame);
  assert.deepEqual(evs[evs.length - 1]!.event, 'done', JSON.stringify(evs[evs.length - 1]));
  assert.deepEqual(frames.map((f) => [f.index, f.steps, f.t]), [[0, 2, 9], [1, 2, 4]], 'ddim trailing steps 9 then 4');
  for (const f of frames) {
    assert.match(f.xt, /^data:image\/png;base64,/);
    const img = decodePng(Buffer.from(f.x0.split(',')[1]!, 'base64'), 'x0 frame');
    assert.ok(img.width >= 2 * 64 && img.height >= 2 * 64, `4 images of 16 px in a 2x2 grid, upscaled to about 64 px each: ${img.width}x${img.height}`);
  }
  const grid = await raw('GET', `/api/jobs/${job.id}/grid.png`);
  assert.equal(grid.headers['content-type'], 'image/png');
  const g = decodePng(grid.body, 'grid.png');
  assert.equal(g.width, g.height);
  const gif = await raw('GET', `/api/jobs/${job.id}/trajectory.gif`);
  assert.equal(gif.headers['content-type'], 'image/gif');
  assert.equal(gif.body.subarray(0, 6).toString('latin1'), 'GIF89a');
  assert.equal(gif.body[gif.body.length - 1], 0x3b, 'GIF trailer');
  assert.equal((await getJson<JobInfo>(`/api/jobs/${job.id}`)).state, 'done');
  // Classifier guidance of the unconditional run toward class 3, in the same worker.
  const guided = await post('/api/generate', { run: 'tiny', sampler: 'ddim', steps: 2, count: 2, classifier: 'clf', classifierScale: 2, class: 3 });
  assert.equal(guided.status, 202, guided.body.toString());
  const gEvs = await events(`/api/jobs/${(guided.json() as JobInfo).id}/events`, (e) => e.event === 'done' || e.event === 'error');
  assert.deepEqual(gEvs[gEvs.length - 1]!.event, 'done', JSON.stringify(gEvs[gEvs.length - 1]));
});

test('an interpolation job posts its frames once, alpha 0 to 1, x_T beside the image; frame 0 is the plain generation of the seed', async () => {
  const done = async (body: Record<string, unknown>): Promise<{ job: JobInfo; frames: GenerateFrame[] }> => {
    const r = await post('/api/generate', body);
    assert.equal(r.status, 202, r.body.toString());
    const job = r.json() as JobInfo;
    const evs = await events(`/api/jobs/${job.id}/events`, (e) => e.event === 'done' || e.event === 'error');
    assert.equal(evs[evs.length - 1]!.event, 'done', JSON.stringify(evs[evs.length - 1]));
    return { job, frames: evs.filter((e) => e.event === 'progress').map((e) => e.data as GenerateFrame) };
  };
  // No sampler named: an interpolation takes ddim (the run's own, ddpm, would be refused).
  const { job, frames } = await done({ run: 'tiny', steps: 2, count: 3, seed: 5, interpolateTo: 9 });
  assert.deepEqual(frames.map((f) => [f.index, f.steps, f.alpha, f.tPrev, f.sigma]), [[0, 3, 0, -1, 0], [1, 3, 0.5, -1, 0], [2, 3, 1, -1, 0]]);
  assert.notEqual(frames[0]!.x0, frames[2]!.x0);
  const strip = decodePng((await raw('GET', `/api/jobs/${job.id}/grid.png`)).body, 'grid.png');
  assert.ok(strip.width > 2.5 * strip.height, `one row of 3 frames: ${strip.width}x${strip.height}`);
  assert.equal((await raw('GET', `/api/jobs/${job.id}/trajectory.gif`)).body.subarray(0, 6).toString('latin1'), 'GIF89a');
  const plain = await done({ run: 'tiny', sampler: 'ddim', steps: 2, count: 1, seed: 5 });
  const last = plain.frames[plain.frames.length - 1]!;
  assert.equal(frames[0]!.xt, plain.frames[0]!.xt, 'the x_T of seed 5');
  const grid = (await raw('GET', `/api/jobs/${plain.job.id}/grid.png`)).body;
  assert.deepEqual(decodePng(Buffer.from(frames[0]!.x0.split(',')[1]!, 'base64'), 'frame 0').data, decodePng(grid, 'plain grid').data, `the image of seed 5 (last plain x0 at t = ${last.t})`);
});

/** The pid of this test's worker process running `file` (a child of this process, started by the server in it). */
function workerPid(file: string): number {
  const lines = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' }).trim().split('\n');
  const line = lines.find((l) => l.includes(file));
  assert.ok(line, `no ${file} child in:\n${lines.join('\n')}`);
  return Number(line.trim().split(/\s+/)[0]);
}

const firstStep = (id: string): Promise<unknown> => events(`/api/jobs/${id}/events`, (e) => e.event !== 'progress' || (e.data as TrainProgress).step > 0);

test('training runs in a worker: status answers at once, a second training gets 409, a crash fails the job, a stop checkpoints and ends stopped', { skip: !hasData && 'Fashion-MNIST not installed' }, async () => {
  // A worker killed mid-training: the job fails with the reason, and the next job may start.
  const a = (await post('/api/train', { name: 'crash', preset: 'dli02', batchSize: 16, timesteps: 10, epochs: 1 })).json() as JobInfo;
  await firstStep(a.id);
  process.kill(workerPid('train-worker.js'), 'SIGKILL');
  const failed = await waitEnd(a.id);
  assert.equal(failed.state, 'failed');
  assert.match(failed.error ?? '', /the train worker was killed by SIGKILL before finishing/);
  assert.equal((await getJson<Status>('/api/status')).jobs.train, null);

  const r = await post('/api/train', { name: 'live', preset: 'dli02', batchSize: 16, timesteps: 10, epochs: 1, seed: 1, limit: null });
  assert.equal(r.status, 202, r.body.toString());
  const job = r.json() as JobInfo;
  const busy = await post('/api/train', { name: 'other', preset: 'dli02' });
  assert.equal(busy.status, 409);
  assert.match((busy.json() as { error: string }).error, new RegExp(`a training job is already running: ${job.id} on run "live"`));
  await firstStep(job.id);
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const s = await getJson<Status>('/api/status');
    const ms = performance.now() - t0;
    assert.ok(ms < 2000, `status took ${ms.toFixed(0)} ms while training`);
    assert.equal(s.jobs.train?.id, job.id);
    assert.equal(s.jobs.train?.progress?.kind, 'train');
  }
  assert.ok((await getJson<RunSummary[]>('/api/runs')).find((x) => x.name === 'live')?.training, 'the run being trained is marked');
  // The loss curve's feed: rows of log.jsonl arrive as the trainer appends them (every 10 steps).
  const logged = await events('/api/runs/live/events', (e) => e.event === 'log' && (e.data as LogRow[]).length > 0, 30000);
  assert.ok((logged.find((e) => e.event === 'log' && (e.data as LogRow[]).length > 0)!.data as LogRow[])[0]!.step >= 10);
  const stop = await post(`/api/jobs/${job.id}/stop`, {});
  assert.equal(stop.status, 202);
  assert.equal((stop.json() as JobInfo).state, 'stopping');
  const again = await post(`/api/jobs/${job.id}/stop`, {});
  assert.equal(again.status, 202, 'a second stop while stopping is a no-op');
  assert.equal((again.json() as JobInfo).state, 'stopping');
  const end = await waitEnd(job.id);
  assert.equal(end.state, 'stopped', JSON.stringify(end));
  const ckpts = readdirSync(path.join(runs, 'live', 'checkpoints')).filter((n) => /^step-\d+$/.test(n));
  assert.equal(ckpts.length, 1, 'the stop wrote a checkpoint');
  const detail = await getJson<RunDetail>('/api/runs/live');
  assert.equal(detail.checkpoints[0]!.name, ckpts[0]);
  assert.equal((await post(`/api/jobs/${job.id}/stop`, {})).status, 409, 'an ended job cannot be stopped');
});
