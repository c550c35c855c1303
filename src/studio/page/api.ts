// The page's client of the studio server: typed JSON requests and server-sent event streams over the
// routes of ../protocol.ts. Every failed request (an ApiError answer, or no answer) goes to the error
// sink, which shows it on the page, before the promise rejects.
import type {
  ApiError, CheckpointInfo, ForwardFrame, GenerateFrame, GenerateRequest, JobInfo, LogRow, Options,
  RunDetail, RunSummary, ScheduleCurves, Status, TrainProgress, TrainRequest,
} from '../protocol.js';
import { describeThrown } from '../../web/page/thrown.js';

/** A request the server refused (status 4xx/5xx) or never answered (status 0). */
export class StudioError extends Error {
  constructor(message: string, readonly status: number, readonly field?: string) {
    super(message);
    this.name = 'StudioError';
  }
}

export type ErrorSink = (e: StudioError) => void;
let sink: ErrorSink = (e) => console.error(e.message);

/** Where refused requests are reported (main.ts points it at the page's error banner). */
export function setErrorSink(s: ErrorSink): void { sink = s; }

/** Reports an error to the sink; StudioErrors were reported where they arose, so they are not repeated. */
export function report(err: unknown): void {
  if (err instanceof StudioError) return;
  sink(new StudioError(describeThrown(err), 0));
}

/** Runs an async UI action, reporting what it throws (event handlers have no one else to tell). */
export function guard(action: () => Promise<void>): void {
  action().catch(report);
}

/** A GET whose 404 means "not offered by this server" (optional routes): null then, nothing shown. */
async function optional<T>(path: string): Promise<T | null> {
  const res = await fetch(path).catch(() => null);
  if (res?.status === 404) return null;
  if (res?.ok) return (await res.json()) as T;
  return request<T>('GET', path);
}

async function request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, body === undefined
      ? { method }
      : { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch (err) {
    const e = new StudioError(`${method} ${path}: no answer from the studio server (${String(err)}); is \`ddpm studio\` still running?`, 0);
    sink(e);
    throw e;
  }
  if (!res.ok) {
    const e = await readError(res, `${method} ${path}`);
    sink(e);
    throw e;
  }
  return (await res.json()) as T;
}

async function readError(res: Response, what: string): Promise<StudioError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as Partial<ApiError>;
    if (typeof body.error === 'string') return new StudioError(body.error, res.status, typeof body.field === 'string' ? body.field : undefined);
  } catch {
    // Not JSON: fall through and show the status line and text.
  }
  return new StudioError(`${what}: ${res.status} ${res.statusText}${text ? `: ${text.slice(0, 300)}` : ''}`, res.status);
}

const seg = encodeURIComponent;

export const api = {
  status: () => request<Status>('GET', '/api/status'),
  options: () => request<Options>('GET', '/api/options'),
  runs: () => request<RunSummary[]>('GET', '/api/runs'),
  run: (run: string) => request<RunDetail>('GET', `/api/runs/${seg(run)}`),
  schedule: (run: string) => request<ScheduleCurves>('GET', `/api/runs/${seg(run)}/schedule`),
  defaultSchedule: () => optional<ScheduleCurves>('/api/schedule'),
  forward: (q: { run?: string; index: number; t: number; seed?: number }) => {
    const p = new URLSearchParams();
    if (q.run) p.set('run', q.run);
    p.set('index', String(q.index));
    p.set('t', String(q.t));
    if (q.seed !== undefined) p.set('seed', String(q.seed));
    return request<ForwardFrame>('GET', `/api/forward?${p.toString()}`);
  },
  train: (req: TrainRequest) => request<JobInfo>('POST', '/api/train', req),
  generate: (req: GenerateRequest) => request<JobInfo>('POST', '/api/generate', req),
  stop: (id: string) => request<JobInfo>('POST', `/api/jobs/${seg(id)}/stop`),
  job: (id: string) => request<JobInfo>('GET', `/api/jobs/${seg(id)}`),
};

export const urls = {
  sample: (run: string, file: string) => `/api/runs/${seg(run)}/samples/${seg(file)}`,
  grid: (jobId: string) => `/api/jobs/${seg(jobId)}/grid.png`,
  trajectory: (jobId: string) => `/api/jobs/${seg(jobId)}/trajectory.gif`,
};

/** Events of GET /api/runs/:run/events (on connect it sends what exists already, then what appears). */
export interface RunEvents { log: LogRow[]; checkpoint: CheckpointInfo; sample: string }
/** Events of GET /api/jobs/:id/events. */
export interface JobEvents { progress: TrainProgress | GenerateFrame; done: JobInfo; error: ApiError }

export type Handlers<M> = { [K in keyof M]?: (data: M[K]) => void };

/**
 * Listens to a text/event-stream route; returns the function that closes it. A job stream is closed
 * here after its `done` or `error` event, so EventSource does not reconnect to a finished job.
 * `error` events carrying an ApiError are shown like any refused request.
 */
export function subscribe<M extends object>(path: string, handlers: Handlers<M>, final: (keyof M & string)[] = []): () => void {
  const es = new EventSource(path);
  const close = (): void => es.close();
  for (const name of Object.keys(handlers) as (keyof M & string)[]) {
    if (name === 'error') continue;
    es.addEventListener(name, (ev) => {
      const handle = handlers[name];
      if (handle) handle(JSON.parse((ev as MessageEvent<string>).data) as M[typeof name]);
      if (final.includes(name)) close();
    });
  }
  es.addEventListener('error', (ev) => {
    // A named `error` event from the server carries data; a dropped connection is a bare Event.
    if (ev instanceof MessageEvent && typeof ev.data === 'string' && ev.data) {
      const body = JSON.parse(ev.data) as ApiError;
      sink(new StudioError(body.error, 0, body.field));
      (handlers as Handlers<{ error: ApiError }>).error?.(body);
      close();
    } else if (es.readyState === EventSource.CLOSED) {
      sink(new StudioError(`${path}: the event stream closed; reload the page to reconnect`, 0));
    }
  });
  return close;
}
