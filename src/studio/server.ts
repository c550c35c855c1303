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
import { LogTail, checkpointInfo, listRuns, readLog, chosenCheckpoint, readRunConfig, runDetail, runFolder, sampleFiles, samplePath } from './runs.js';
import { checkHostAndOrigin } from './guard.js';
import { serveFile, serveStatic } from './static.js';
import { TRAIN_SCHEDULES, parseGenerateRequest, parseTrainRequest } from './requests.js';
import { defaultForwardSource, forwardFrame, scheduleCurves } from './forward.js';
import { Jobs } from './jobs.js';
import { OnnxCache } from './onnx.js';
import { WEB_ASSETS } from '../web/site.js';

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
  const onnx = new OnnxCache();
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

  // The checkpoint (?checkpoint=step-N, default the latest) as ONNX, for generating in the browser.
  get('/api/runs/:run/model.onnx', (_q, res, p, query) => {
    const run = runFolder(runsDir, p['run']);
    const dir = chosenCheckpoint(run, new Fields(queryObject(query), ['checkpoint'], true).name('checkpoint', true));
    sendBytes(res, 'application/octet-stream', onnx.model(run, dir), { 'Cache-Control': 'no-cache' });
  });

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
        // Only a new checkpoint's state.json is read: a long run has many, and this runs twice a second.
        for (const c of run.listCheckpoints()) {
          const key = `c:${path.basename(c.dir)}`;
          if (!seen.has(key)) { seen.add(key); s.send('checkpoint', checkpointInfo(c)); }
        }
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

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      checkHostAndOrigin(req, host);
      const { segments, query } = splitUrl(req.url ?? '/');
      if (segments[0] !== 'api') {
        if (req.method !== 'GET' && req.method !== 'HEAD') { res.setHeader('Allow', 'GET, HEAD'); throw new RequestError(405, `${req.method} is not allowed on the page's files; use GET`); }
        // onnxruntime-web's WASM runtime, from the exported page's build (scripts/build-web.mjs).
        if (segments[0] === 'ort') serveFile(res, path.join(WEB_ASSETS, 'ort'), segments.slice(1));
        else serveStatic(res, publicDir, segments);
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
  const wanted = o.port ?? 7860;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') reject(new Error(`port ${wanted} on ${host} is in use (another studio?); pass --port with a free port, or --port 0 to pick one`, { cause: e }));
      else reject(e);
    });
    server.listen(wanted, host, () => { server.removeAllListeners('error'); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${browsableHost(host)}:${port}/`,
    port,
    close: () => {
      closing ??= (async () => {
        // No new connections, and no new jobs, while a training job writes its checkpoint.
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        for (const s of [...streams]) s.close();
        await jobs.close(o.stopGraceMs ?? 60000);
        onnx.close();
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}

/** The host of the URL to open: a wildcard address (0.0.0.0, ::) is listened on but cannot be browsed to everywhere. */
export function browsableHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '[::1]';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
