// `ddpm studio`'s HTTP server (src/studio/protocol.ts is the contract): the bundled page as static
// files, the JSON API, and server-sent events. Heavy work runs in worker processes (jobs.ts); what
// runs here (listing runs, one forward-noised image) takes milliseconds.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { presetDefaults } from '../train/config.js';
import { RunFolder } from '../io/run.js';
import { PRESETS } from '../models/index.js';
import { OBJECTIVES, LOSS_WEIGHTINGS } from '../diffusion/index.js';
import { SAMPLERS } from '../samplers/index.js';
import { FashionMnistError, locateFashionMnist } from '../data/fashion-mnist.js';
import { LIMITS, type Options, type Status } from './protocol.js';
import { Fields, RequestError, badRequest, checkName, queryObject } from './validate.js';
import { isUnsafeSegment, openEventStream, readJsonBody, sendBytes, sendError, sendJson, splitUrl, type EventStream } from './http.js';
import { LogTail, checkpointInfos, listRuns, readLog, readRunConfig, runDetail, runFolder, sampleFiles, samplePath } from './runs.js';
import { TRAIN_SCHEDULES, parseGenerateRequest, parseTrainRequest } from './requests.js';
import { defaultForwardSource, forwardFrame, scheduleCurves } from './forward.js';
import { Jobs } from './jobs.js';

export interface StudioOptions {
  runsDir: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Fashion-MNIST folder for training and the forward view (default: the usual search). */
  dataDir?: string;
  /** The built page (default: dist/studio/public beside this compiled file). */
  publicDir?: string;
  /** libtorch threads of each job (default 2: this machine's cores). */
  threads?: number;
  /** How long close() lets a training job write its checkpoint before killing it (default 60 s). */
  stopGraceMs?: number;
}

export interface Studio { url: string; port: number; close(): Promise<void> }

/** How often a run's event stream looks at its folder (fs.watch misses appends on some filesystems). */
const POLL_MS = 500;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.map': 'application/json; charset=utf-8', '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.gif': 'image/gif', '.ico': 'image/x-icon', '.woff2': 'font/woff2', '.txt': 'text/plain; charset=utf-8',
};

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

type Handler = (req: IncomingMessage, res: ServerResponse, params: Record<string, string>, query: URLSearchParams) => Promise<void> | void;
interface Route { method: 'GET' | 'POST'; parts: string[]; handler: Handler }

function match(route: Route, segments: string[]): Record<string, string> | null {
  if (route.parts.length !== segments.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const p = route.parts[i]!;
    if (p.startsWith(':')) params[p.slice(1)] = segments[i]!;
    else if (p !== segments[i]) return null;
  }
  return params;
}

export async function startStudio(o: StudioOptions): Promise<Studio> {
  const runsDir = path.resolve(o.runsDir);
  if (existsSync(runsDir) && !statSync(runsDir).isDirectory()) throw new Error(`--runs ${runsDir} is not a folder`);
  const host = o.host ?? '127.0.0.1';
  const publicDir = path.resolve(o.publicDir ?? fileURLToPath(new URL('../../studio/public/', import.meta.url)));
  const dataDir = o.dataDir !== undefined ? path.resolve(o.dataDir) : undefined;
  const jobs = new Jobs(o.threads ?? 2);
  const streams = new Set<EventStream>();
  const started = performance.now();
  const ver = version();
  const trainingRun = (): string | null => jobs.active('train')?.run ?? null;

  const stream = (res: ServerResponse, onClose: () => void): EventStream => {
    const s = openEventStream(res, () => { streams.delete(s); onClose(); });
    streams.add(s);
    return s;
  };

  const routes: Route[] = [];
  const get = (p: string, handler: Handler): void => { routes.push({ method: 'GET', parts: p.split('/').slice(1), handler }); };
  const post = (p: string, handler: Handler): void => { routes.push({ method: 'POST', parts: p.split('/').slice(1), handler }); };

  get('/api/status', (_q, res) => {
    const status: Status = {
      version: ver, runsDir, jobs: { train: jobs.active('train'), generate: jobs.active('generate') }, uptime: (performance.now() - started) / 1000,
    };
    sendJson(res, 200, status);
  });

  get('/api/options', (_q, res) => {
    const options: Options = {
      presets: [...PRESETS],
      presetDefaults: Object.fromEntries(PRESETS.map((p) => {
        const c = presetDefaults(p);
        return [p, { epochs: c.train.epochs, batchSize: c.train.batchSize, lr: c.train.lr, imageSize: c.model.imageSize, timesteps: c.model.T, schedule: c.schedule.kind, objective: c.objective ?? 'eps' }];
      })),
      samplers: [...SAMPLERS], schedules: [...TRAIN_SCHEDULES], objectives: [...OBJECTIVES], lossWeightings: [...LOSS_WEIGHTINGS], limits: LIMITS,
    };
    sendJson(res, 200, options);
  });

  get('/api/runs', (_q, res) => sendJson(res, 200, listRuns(runsDir, trainingRun())));
  get('/api/runs/:run', (_q, res, p) => sendJson(res, 200, runDetail(runsDir, checkName('run', p['run']), trainingRun())));

  get('/api/runs/:run/log', (_q, res, p, query) => {
    const run = runFolder(runsDir, p['run']);
    const after = new Fields(queryObject(query), ['after'], true).optInt('after', -1, Number.MAX_SAFE_INTEGER) ?? -1;
    sendJson(res, 200, readLog(run, after));
  });

  get('/api/runs/:run/samples/:file', (_q, res, p) => {
    const file = samplePath(runFolder(runsDir, p['run']), p['file']);
    sendBytes(res, 'image/png', readFileSync(file), { 'Cache-Control': 'no-cache' });
  });

  get('/api/runs/:run/schedule', (_q, res, p) => sendJson(res, 200, scheduleCurves(readRunConfig(runFolder(runsDir, p['run'])).schedule)));

  get('/api/schedule', (_q, res) => sendJson(res, 200, scheduleCurves(defaultForwardSource().schedule)));

  get('/api/runs/:run/events', (_q, res, p) => {
    // The run a training job is starting has no config.json until its data has loaded; it can be followed already.
    const name = checkName('run', p['run']);
    const run = name === trainingRun() ? new RunFolder(path.join(runsDir, name)) : runFolder(runsDir, name);
    const tail = new LogTail(run.logPath);
    const seen = new Set<string>();
    let first = true;
    const poll = (): void => {
      try {
        const rows = tail.poll();
        // The first batch is sent even when empty: the page then knows it has the whole log.
        if (rows.length > 0 || first) s.send('log', rows);
        first = false;
        for (const c of checkpointInfos(run)) if (!seen.has(`c:${c.name}`)) { seen.add(`c:${c.name}`); s.send('checkpoint', c); }
        for (const f of sampleFiles(run)) if (!seen.has(`s:${f}`)) { seen.add(`s:${f}`); s.send('sample', f); }
      } catch {
        // The folder went away (deleted by hand); the stream stays open and quiet.
      }
    };
    const timer = setInterval(poll, POLL_MS);
    const s = stream(res, () => clearInterval(timer));
    poll();
  });

  get('/api/forward', (_q, res, _p, query) => {
    const q = new Fields(queryObject(query), ['run', 'index', 't', 'seed'], true);
    let src = defaultForwardSource();
    const name = q.name('run', true);
    if (name !== undefined) {
      const c = readRunConfig(runFolder(runsDir, name));
      src = { schedule: c.schedule, imageSize: c.model.imageSize };
    }
    sendJson(res, 200, forwardFrame(q, src, dataDir));
  });

  post('/api/train', async (req, res) => {
    const body = await readJsonBody(req);
    const { name, runDir, config } = parseTrainRequest(body, runsDir);
    try {
      locateFashionMnist(dataDir !== undefined ? { dir: dataDir } : {});
    } catch (e) {
      if (e instanceof FashionMnistError) throw new RequestError(503, `training needs the Fashion-MNIST training images: ${e.message}`);
      throw e;
    }
    sendJson(res, 202, jobs.start('train', name, { kind: 'train', config, runDir, ...(dataDir !== undefined ? { dataDir } : {}) }));
  });

  post('/api/generate', async (req, res) => {
    const { run, input } = parseGenerateRequest(await readJsonBody(req), runsDir);
    sendJson(res, 202, jobs.start('generate', run, input));
  });

  const jobId = (p: Record<string, string>): string => checkName('id', p['id']);
  get('/api/jobs/:id', (_q, res, p) => sendJson(res, 200, jobs.get(jobId(p)).info));
  post('/api/jobs/:id/stop', (_q, res, p) => sendJson(res, 202, jobs.stop(jobId(p))));
  get('/api/jobs/:id/grid.png', (_q, res, p) => sendBytes(res, 'image/png', jobs.file(jobId(p), 'grid'), { 'Content-Disposition': `attachment; filename="${jobId(p)}-grid.png"` }));
  get('/api/jobs/:id/trajectory.gif', (_q, res, p) => sendBytes(res, 'image/gif', jobs.file(jobId(p), 'gif'), { 'Content-Disposition': `attachment; filename="${jobId(p)}-trajectory.gif"` }));
  get('/api/jobs/:id/events', (_q, res, p) => {
    const id = jobId(p);
    jobs.get(id);
    let unsubscribe = (): void => undefined;
    const s = stream(res, () => unsubscribe());
    unsubscribe = jobs.subscribe(id, (e) => s.send(e.event, e.data));
  });

  /** The built page: only plain names under publicDir, never a path out of it. */
  const serveStatic = (res: ServerResponse, segments: string[]): void => {
    if (!existsSync(path.join(publicDir, 'index.html'))) {
      res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(`ddpm studio: the page is not built (${path.join(publicDir, 'index.html')} is missing). Run \`npm run build\` (or \`npm run setup\`) in the ddpm-ts folder, then reload.\n`);
      return;
    }
    const names = segments.length === 0 || (segments.length === 1 && segments[0] === '') ? ['index.html'] : segments;
    for (const n of names) checkName('path', n);
    const file = path.join(publicDir, ...names);
    if (!file.startsWith(publicDir + path.sep) || !existsSync(file) || !statSync(file).isFile()) throw new RequestError(404, `no such page file: /${names.join('/')}`, 'path');
    const type = CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
    sendBytes(res, type, readFileSync(file), { 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' });
  };

  /** DNS rebinding guard: on a loopback address, only loopback Host names; a POST from another origin is refused. */
  const checkOrigin = (req: IncomingMessage): void => {
    const hostHeader = req.headers.host ?? '';
    const hostname = hostHeader.replace(/:\d+$/, '');
    if (LOOPBACK.has(host) && !LOOPBACK.has(hostname)) throw new RequestError(403, `the studio listens on ${host} and answers only requests addressed to it (Host ${JSON.stringify(hostHeader)} refused)`);
    const origin = req.headers.origin;
    if (req.method === 'POST' && origin !== undefined && origin !== 'null') {
      let originHost = '';
      try { originHost = new URL(origin).host; } catch { /* an unparsable Origin is refused below */ }
      if (originHost !== hostHeader) throw new RequestError(403, `cross-origin request from ${origin} refused: the studio's API is for its own page`);
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      checkOrigin(req);
      const { segments, query } = splitUrl(req.url ?? '/');
      if (segments[0] !== 'api') {
        if (req.method !== 'GET' && req.method !== 'HEAD') { res.setHeader('Allow', 'GET, HEAD'); throw new RequestError(405, `${req.method} is not allowed on the page's files; use GET`); }
        serveStatic(res, segments);
        return;
      }
      const matched = routes.map((r) => ({ r, params: match(r, segments) })).filter((m) => m.params !== null);
      if (matched.length === 0) {
        const bad = segments.find(isUnsafeSegment);
        if (bad !== undefined) badRequest(`the path segment ${JSON.stringify(bad)} is refused: names are single segments (no '..', '/', '\\', NUL or empty names)`, 'path');
        throw new RequestError(404, `no such API route: ${req.method} /${segments.join('/')} (see src/studio/protocol.ts)`);
      }
      const route = matched.find((m) => m.r.method === req.method);
      if (!route) {
        const allow = [...new Set(matched.map((m) => m.r.method))].join(', ');
        res.setHeader('Allow', allow);
        throw new RequestError(405, `${req.method} is not allowed on /${segments.join('/')}; use ${allow}`);
      }
      await route.r.handler(req, res, route.params!, query);
    } catch (e) {
      if (e instanceof RequestError && e.status === 413) res.setHeader('Connection', 'close');
      sendError(res, e);
    }
  };

  const server = createServer((req, res) => { void handle(req, res); });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 7860, host, () => { server.off('error', reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${shownHost}:${port}/`,
    port,
    close: () => {
      closing ??= (async () => {
        for (const s of [...streams]) s.close();
        await jobs.close(o.stopGraceMs ?? 60000);
        await new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); });
      })();
      return closing;
    },
  };
}
