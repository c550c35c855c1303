// Small node:http helpers for the studio: JSON and error answers, bounded JSON bodies, raw path
// segments, server-sent events. The path is split before it is decoded, so "%2e%2e" and "%2F" are
// seen as what they decode to inside one segment, and never normalised away as URL() would.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiError } from './protocol.js';
import { RequestError, badRequest, parseBody } from './validate.js';

/** Largest request body; the API's bodies are a few hundred bytes. */
export const MAX_BODY = 64 * 1024;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

export function sendError(res: ServerResponse, e: unknown): void {
  if (res.headersSent) { res.destroy(); return; }
  if (e instanceof RequestError) {
    const body: ApiError = { error: e.message, ...(e.field !== undefined ? { field: e.field } : {}) };
    sendJson(res, e.status, body);
    return;
  }
  const message = e instanceof Error ? e.message : String(e);
  process.stderr.write(`ddpm studio: internal error: ${e instanceof Error && e.stack ? e.stack : message}\n`);
  sendJson(res, 500, { error: `internal error: ${message}` } satisfies ApiError);
}

export function sendBytes(res: ServerResponse, type: string, bytes: Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': bytes.length, ...extra });
  res.end(bytes);
}

/** The request's path as decoded segments (no leading empty one) and its query; 400 for bad percent-encoding. */
export function splitUrl(raw: string): { segments: string[]; query: URLSearchParams } {
  const q = raw.indexOf('?');
  const pathname = q < 0 ? raw : raw.slice(0, q);
  const parts = pathname.split('/').slice(1);
  // "/api/runs/" is "/api/runs".
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  const segments = parts.map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return badRequest(`the path segment ${JSON.stringify(p)} is not valid percent-encoding`, 'path');
    }
  });
  return { segments, query: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
}

/** A segment that could leave a folder if used as a name: refused wherever it appears. */
export function isUnsafeSegment(s: string): boolean {
  return s === '' || s === '.' || s === '..' || /[/\\\0]/.test(s);
}

/** The JSON object body of a POST; 415 unless sent as JSON, 413 past MAX_BODY, 400 when not a JSON object. */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new RequestError(415, `the request body must be JSON sent with Content-Type: application/json, got Content-Type ${type ? JSON.stringify(type) : '(none)'}`);
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  const tooLarge = (n: number): RequestError => new RequestError(413, `the request body is ${n} bytes, more than the ${MAX_BODY} bytes (64 KiB) allowed`);
  if (declared > MAX_BODY) throw tooLarge(declared);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw tooLarge(size);
    chunks.push(chunk);
  }
  return parseBody(Buffer.concat(chunks).toString('utf8'));
}

/** An open text/event-stream answer. */
export interface EventStream {
  send(event: string, data: unknown): void;
  close(): void;
  readonly closed: boolean;
}

/** Starts an event stream; `onClose` runs once when the client goes or the server closes it. */
export function openEventStream(res: ServerResponse, onClose: () => void): EventStream {
  res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  res.write('retry: 2000\n\n');
  // A comment now and then keeps proxies and idle timers from closing a quiet stream.
  const ping = setInterval(() => res.write(': ping\n\n'), 15000);
  let closed = false;
  const finish = (): void => {
    if (closed) return;
    closed = true;
    clearInterval(ping);
    onClose();
  };
  res.on('close', finish);
  return {
    send(event, data) {
      if (!closed) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    close() {
      finish();
      res.end();
    },
    get closed() { return closed; },
  };
}
