// Who may talk to the studio. On a loopback address only loopback Host names are answered, so a web
// page whose name is re-pointed at 127.0.0.1 (DNS rebinding) cannot read the API; and a POST must
// come from the studio's own page, since a form on any site can POST to localhost without CORS.
import type { IncomingMessage } from 'node:http';
import { RequestError } from './validate.js';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host.toLowerCase());
}

/** 403 for a foreign Host on a loopback listener, and for a POST whose Origin is not the studio's. */
export function checkHostAndOrigin(req: IncomingMessage, listenHost: string): void {
  const hostHeader = (req.headers.host ?? '').toLowerCase();
  const hostname = hostHeader.replace(/:\d+$/, '');
  if (isLoopback(listenHost) && !isLoopback(hostname)) {
    throw new RequestError(403, `the studio listens on ${listenHost} and answers only requests addressed to it (Host ${JSON.stringify(req.headers.host ?? '')} refused)`);
  }
  const origin = req.headers.origin;
  // No Origin: not a browser (curl, the tests). "null" is what sandboxed iframes and file: pages send,
  // so it is a foreign page, not a missing header.
  if (req.method === 'POST' && origin !== undefined) {
    let originHost = '';
    try { originHost = new URL(origin).host; } catch { /* "null" and unparsable origins match no host */ }
    if (originHost === '' || originHost !== hostHeader) throw new RequestError(403, `cross-origin request from ${origin} refused: the studio's API is for its own page`);
  }
}
