import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  digestOf, DownloadError, downloadFashionMnist, FASHION_MNIST_PINS, type DownloadProgress, type FilePin,
} from '../src/data/download.js';
import { readIdxFile } from '../src/data/idx.js';

const DEBIAN_DIR = '/usr/share/datasets/fashion-mnist';

type Route = { body: Uint8Array } | { status: number } | { redirect: string } | 'hang';

/** A local HTTP server; `routes` may be changed between calls; `hits` counts requests. */
async function serve(t: TestContext, routes: Map<string, Route>): Promise<{ base: string; hits: string[] }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url ?? '');
    const r = routes.get(req.url ?? '');
    if (r === 'hang') return; // never answers: exercises the per-file timeout
    if (r === undefined || 'status' in r) { res.writeHead(r?.status ?? 404).end('no'); return; }
    if ('redirect' in r) { res.writeHead(302, { location: r.redirect }).end(); return; }
    res.writeHead(200, { 'content-length': r.body.length }).end(r.body);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.after(() => { server.closeAllConnections(); server.close(); });
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, hits };
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'ddpm-dl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// Small fakes with the real file names; their pins are computed here and injected.
const NAMES = FASHION_MNIST_PINS.map((p) => p.name);
const fakeRaw = (i: number): Uint8Array => Buffer.from([0, 0, 8, 1, 0, 0, 0, 3, i, i + 1, i + 2]);
const fakeGz = NAMES.map((_, i) => gzipSync(fakeRaw(i)));
const fakePins: FilePin[] = NAMES.map((name, i) => ({ name, gz: digestOf(fakeGz[i]!), raw: digestOf(fakeRaw(i)) }));
const fakeRoutes = (): Map<string, Route> => new Map(NAMES.map((n, i) => [`/${n}.gz`, { body: fakeGz[i]! }]));

const rejects = async (p: Promise<unknown>, re: RegExp): Promise<void> => {
  await assert.rejects(p, (e: unknown) => e instanceof DownloadError && re.test(e.message) ? true : assert.fail(`${e}`));
};
const leftovers = (dir: string): string[] => readdirSync(dir).filter((f) => f.includes('.tmp'));

test('downloads the four files, then skips them when present', async (t) => {
  const { base, hits } = await serve(t, fakeRoutes());
  const dir = join(tempDir(t), 'nested', 'fm');
  const seen: DownloadProgress[] = [];
  const first = await downloadFashionMnist({ dir, baseUrl: base, pins: fakePins, onProgress: (p) => seen.push(p) });
  assert.deepEqual(first.files.map((f) => f.status), ['downloaded', 'downloaded', 'downloaded', 'downloaded']);
  NAMES.forEach((n, i) => assert.deepEqual(readFileSync(join(dir, `${n}.gz`)), fakeGz[i]));
  assert.ok(seen.some((p) => p.state === 'done' && p.file === 't10k-labels-idx1-ubyte.gz'));
  assert.equal(hits.length, 4);

  const again = await downloadFashionMnist({ dir, baseUrl: base, pins: fakePins });
  assert.deepEqual(again.files.map((f) => f.status), ['present', 'present', 'present', 'present']);
  assert.equal(hits.length, 4, 'no request for files already good');
  assert.deepEqual(leftovers(dir), []);
});

test('a recompressed or gunzipped copy of the right data counts as present', async (t) => {
  const { base, hits } = await serve(t, fakeRoutes());
  const dir = tempDir(t);
  writeFileSync(join(dir, `${NAMES[0]}.gz`), gzipSync(fakeRaw(0), { level: 1 })); // other gzip bytes
  writeFileSync(join(dir, NAMES[1]!), fakeRaw(1)); // raw IDX, as the locator accepts
  const r = await downloadFashionMnist({ dir, baseUrl: base, pins: fakePins });
  assert.deepEqual(r.files.map((f) => f.status), ['present', 'present', 'downloaded', 'downloaded']);
  assert.deepEqual(hits, [`/${NAMES[2]}.gz`, `/${NAMES[3]}.gz`]);
});

test('follows redirects', async (t) => {
  const routes = new Map<string, Route>();
  NAMES.forEach((n, i) => {
    routes.set(`/old/${n}.gz`, { redirect: `/new/${n}.gz` });
    routes.set(`/new/${n}.gz`, { body: fakeGz[i]! });
  });
  const { base } = await serve(t, routes);
  const r = await downloadFashionMnist({ dir: tempDir(t), baseUrl: `${base}old`, pins: fakePins });
  assert.equal(r.files.filter((f) => f.status === 'downloaded').length, 4);
});

test('uses an injected fetchImpl instead of the global fetch', async (t) => {
  const asked: string[] = [];
  const fetchImpl = (async (url: string | URL | Request) => {
    asked.push(String(url));
    return new Response(fakeGz[NAMES.findIndex((n) => String(url).endsWith(`/${n}.gz`))]!);
  }) as typeof fetch;
  await downloadFashionMnist({ dir: tempDir(t), baseUrl: 'https://mirror.invalid/fm', pins: fakePins, fetchImpl });
  assert.deepEqual(asked, NAMES.map((n) => `https://mirror.invalid/fm/${n}.gz`));
});

test('a corrupted download is refused with both digests, and the previous good file is untouched', async (t) => {
  const routes = fakeRoutes();
  const { base } = await serve(t, routes);
  const dir = tempDir(t);
  await downloadFashionMnist({ dir, baseUrl: base, pins: fakePins });
  const name = `${NAMES[0]}.gz`;
  const bad = Buffer.from(fakeGz[0]!);
  bad[bad.length - 1]! ^= 0xff;
  routes.set(`/${name}`, { body: bad });
  const want = fakePins[0]!.gz;
  const got = digestOf(bad);
  await rejects(downloadFashionMnist({ dir, baseUrl: base, pins: fakePins, force: true }), new RegExp(
    `^${name}: checksum mismatch for ${base}${name}; expected MD5 ${want.md5} SHA-256 ${want.sha256} \\(\\d+ bytes\\), ` +
    `found MD5 ${got.md5} SHA-256 ${got.sha256} .*The existing ${join(dir, name)} was left untouched`));
  assert.deepEqual(readFileSync(join(dir, name)), fakeGz[0]);
  assert.deepEqual(leftovers(dir), []);
});

test('both digests must match: a right MD5 with a wrong SHA-256 is refused, and the reverse', async (t) => {
  const { base } = await serve(t, fakeRoutes());
  const flip = (h: string): string => (h[0] === '0' ? '1' : '0') + h.slice(1);
  for (const which of ['md5', 'sha256'] as const) {
    const pins = fakePins.map((p) => ({ ...p, gz: { ...p.gz, [which]: flip(p.gz[which]) } }));
    await rejects(downloadFashionMnist({ dir: tempDir(t), baseUrl: base, pins }), /checksum mismatch/);
  }
});

test('a stale bad file is kept when the fresh download is also bad', async (t) => {
  const routes = fakeRoutes();
  routes.set(`/${NAMES[0]}.gz`, { body: Buffer.from('garbage') });
  const { base } = await serve(t, routes);
  const dir = tempDir(t);
  writeFileSync(join(dir, `${NAMES[0]}.gz`), 'stale');
  await rejects(downloadFashionMnist({ dir, baseUrl: base, pins: fakePins }), /checksum mismatch.*left untouched/);
  assert.equal(readFileSync(join(dir, `${NAMES[0]}.gz`), 'utf8'), 'stale');
});

test('an HTTP 404 names the file and the URL', async (t) => {
  const routes = fakeRoutes();
  routes.delete(`/${NAMES[1]}.gz`);
  const { base } = await serve(t, routes);
  const dir = tempDir(t);
  await rejects(downloadFashionMnist({ dir, baseUrl: base, pins: fakePins }),
    new RegExp(`^train-labels-idx1-ubyte\\.gz: HTTP 404 Not Found from ${base}train-labels-idx1-ubyte\\.gz; expected 200.*Nothing was written`));
  assert.ok(existsSync(join(dir, `${NAMES[0]}.gz`)), 'files before the failure are kept');
  assert.ok(!existsSync(join(dir, `${NAMES[1]}.gz`)));
});

test('times out per file, and refuses a response larger than pinned', async (t) => {
  const routes = fakeRoutes();
  routes.set(`/${NAMES[0]}.gz`, 'hang');
  const { base } = await serve(t, routes);
  await rejects(downloadFashionMnist({ dir: tempDir(t), baseUrl: base, pins: fakePins, timeoutMs: 200 }),
    new RegExp(`^${NAMES[0]}\\.gz: timed out after 0\\.2 s fetching ${base}`));
  routes.set(`/${NAMES[0]}.gz`, { body: new Uint8Array(1000) });
  await rejects(downloadFashionMnist({ dir: tempDir(t), baseUrl: base, pins: fakePins }),
    /sent more than the expected \d+ bytes; refused/);
});

// Debian's .gz files hold the official deflate streams minus the header's FNAME and mtime
// (download.ts explains); putting those back must give the official bytes, pinned by MD5 and SHA-256.
const MTIME: Record<string, number> = { train: 1504176606, t10k: 1504176627 }; // 2017-08-31T10:50Z
function officialFromDebian(name: string): Uint8Array {
  const deb = readFileSync(join(DEBIAN_DIR, `${name}.gz`));
  assert.deepEqual([...deb.subarray(0, 4)], [0x1f, 0x8b, 8, 0], 'Debian header has no optional fields');
  const head = Buffer.from([0x1f, 0x8b, 8, 0x08, 0, 0, 0, 0, 0, 3]); // FLG.FNAME, XFL 0, OS Unix
  head.writeUInt32LE(MTIME[name.split('-')[0]!]!, 4);
  return Buffer.concat([head, Buffer.from(`${name}\0`, 'latin1'), deb.subarray(10)]);
}

test('the real pins match the Debian copies, and a real-size download verifies', async (t) => {
  if (!existsSync(join(DEBIAN_DIR, 'train-images-idx3-ubyte.gz'))) {
    return t.skip(`${DEBIAN_DIR} absent (apt install dataset-fashion-mnist)`);
  }
  const official = new Map<string, Route>();
  for (const pin of FASHION_MNIST_PINS) {
    assert.deepEqual(digestOf(gunzipSync(readFileSync(join(DEBIAN_DIR, `${pin.name}.gz`)))), pin.raw, `${pin.name} raw`);
    const bytes = officialFromDebian(pin.name);
    assert.deepEqual(digestOf(bytes), pin.gz, `${pin.name} gz`);
    official.set(`/${pin.name}.gz`, { body: bytes });
  }
  const { base } = await serve(t, official);
  const dir = tempDir(t);
  const r = await downloadFashionMnist({ dir, baseUrl: base });
  assert.deepEqual(r.files.map((f) => f.status), ['downloaded', 'downloaded', 'downloaded', 'downloaded']);
  assert.deepEqual(readIdxFile(join(dir, 't10k-labels-idx1-ubyte.gz')).shape, [10000]);

  // A copy of Debian's own files (other gzip bytes, same data) is accepted as present.
  const debCopy = tempDir(t);
  for (const pin of FASHION_MNIST_PINS) writeFileSync(join(debCopy, `${pin.name}.gz`), readFileSync(join(DEBIAN_DIR, `${pin.name}.gz`)));
  const again = await downloadFashionMnist({ dir: debCopy, baseUrl: 'http://127.0.0.1:9/' });
  assert.deepEqual(again.files.map((f) => f.status), ['present', 'present', 'present', 'present']);
});
