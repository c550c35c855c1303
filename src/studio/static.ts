// The built page (dist/studio/public) as static files: plain names under its folder only, never a
// path out of it, with content types and no sniffing; and onnxruntime-web's WASM runtime the same way.
import type { ServerResponse } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { sendBytes } from './http.js';
import { RequestError, checkName } from './validate.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.map': 'application/json; charset=utf-8', '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.gif': 'image/gif', '.ico': 'image/x-icon', '.woff2': 'font/woff2', '.wasm': 'application/wasm', '.txt': 'text/plain; charset=utf-8',
};

/** Answers GET `segments` (decoded path segments; none or one empty: index.html) from `publicDir`. */
export function serveStatic(res: ServerResponse, publicDir: string, segments: string[]): void {
  if (!existsSync(path.join(publicDir, 'index.html'))) {
    res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(`ddpm studio: the page is not built (${path.join(publicDir, 'index.html')} is missing). Run \`npm run build\` (or \`npm run setup\`) in the ddpm-ts folder, then reload.\n`);
    return;
  }
  serveFile(res, publicDir, segments.length === 0 || (segments.length === 1 && segments[0] === '') ? ['index.html'] : segments);
}

/** Answers GET `names` (decoded path segments, each a plain name) from the file they name under `dir`; 404 otherwise. */
export function serveFile(res: ServerResponse, dir: string, names: string[]): void {
  if (names.length === 0) throw new RequestError(404, 'no such page file: a folder is not a file', 'path');
  for (const n of names) checkName('path', n);
  const file = path.join(dir, ...names);
  if (!file.startsWith(dir + path.sep) || !existsSync(file) || !statSync(file).isFile()) throw new RequestError(404, `no such page file: /${names.join('/')}`, 'path');
  const type = CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
  sendBytes(res, type, readFileSync(file), { 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' });
}
